"""The PostgreSQL alert store behaves as the SQLite one (each test in its own schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from service_helpers import port_open

from vigil.errors import InvalidInputError
from vigil.streaming.alert_store import AlertStore
from vigil.streaming.alerts import Alert, alert_id
from vigil.streaming.dead_letters import DeadLetter

URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_alert(device: str = "pump2", start: float = 0.0, **changes: object) -> Alert:
    fields: dict[str, object] = {
        "id": alert_id(device, "m1", T0 + timedelta(seconds=start)),
        "device": device,
        "start": T0 + timedelta(seconds=start),
        "end": T0 + timedelta(seconds=start + 5),
        "peak_time": T0 + timedelta(seconds=start + 2.123456),
        "score": 4.2,
        "threshold": 1.0,
        "model_version": "m1",
        "top_features": [("pump2.flow_m3h", 0.5), ("pump2.rpm", 0.28)],
        "incident_type": "multi-sensor deviation",
        "status": "open",
        "n_points": 6,
        "feedback": [],
        "explanation": "ünïcode ✓",
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


@pytest.fixture
def pg() -> Iterator[object]:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432 (database 'test', trust auth)")
    from vigil.service.postgres_store import PostgresAlertStore

    store = PostgresAlertStore(URL, schema=f"vigil_test_{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        store.drop_schema()
        store.close()


@pytest.fixture
def sqlite() -> Iterator[AlertStore]:
    with AlertStore(":memory:") as store:
        yield store


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest) -> object:
    return request.getfixturevalue("pg" if request.param == "postgres" else "sqlite")


def test_round_trip_and_upsert_keeps_verdicts(any_store) -> None:
    alert = make_alert()
    any_store.upsert(alert)
    assert any_store.get(alert.id) == alert
    any_store.add_verdict(alert.id, "confirmed", note="seal leak", user="ana")
    grown = make_alert(n_points=9, status="closed")
    stored = any_store.upsert_many([grown])[0]
    assert stored.status == "confirmed" and stored.n_points == 9
    assert [f["verdict"] for f in any_store.get(alert.id).feedback] == ["confirmed"]
    assert any_store.count() == 1


def test_filters_paging_and_injection(any_store) -> None:
    any_store.upsert_many([make_alert("p1", 0), make_alert("p2", 100), make_alert("p1", 200)])
    assert [a.start for a in any_store.list(device="p1")] == [T0 + timedelta(seconds=200), T0]
    assert len(any_store.list(limit=1, offset=1)) == 1
    assert any_store.count(since=T0 + timedelta(seconds=50), until=T0 + timedelta(seconds=150)) == 1
    assert any_store.list(device="p1' OR '1'='1") == []
    with pytest.raises(InvalidInputError):
        any_store.list(status="open' OR 1=1 --")
    assert any_store.count() == 3


def test_dead_letters(any_store) -> None:
    letters = [
        DeadLetter(kind="invalid_json", reason="not JSON", source="mqtt:a/b", payload="{\x00"),
        DeadLetter(kind="non_finite", reason="NaN", source="http", payload="{}", device="p1"),
    ]
    any_store.add_dead_letters(letters)
    assert any_store.count_dead_letters() == 2
    assert [d.kind for d in any_store.list_dead_letters()] == ["non_finite", "invalid_json"]
    assert any_store.list_dead_letters(kind="non_finite")[0].device == "p1"


def test_verdict_on_a_missing_alert_is_refused(any_store) -> None:
    with pytest.raises(InvalidInputError):
        any_store.add_verdict("nope", "confirmed")


def test_a_runtime_serves_from_postgres(pg, registry) -> None:
    import numpy as np
    from service_helpers import anomalous_readings, payload, record

    from vigil.streaming.runtime import Runtime

    rng = np.random.default_rng(0)
    with Runtime(pg, registry) as runtime:
        for t in range(5):
            runtime.submit(payload(record("p1", float(t), anomalous_readings(rng))), "t")
        runtime.submit(b"nope", "t")
        runtime.drain()
    alerts = pg.list()
    assert len(alerts) == 1 and alerts[0].n_points == 5
    assert pg.count_dead_letters("invalid_json") == 1


def test_unreachable_server_is_a_clear_error() -> None:
    from vigil.service.postgres_store import PostgresAlertStore

    with pytest.raises(InvalidInputError, match="cannot connect"):
        PostgresAlertStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
