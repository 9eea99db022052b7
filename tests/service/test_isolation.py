"""One bad record never costs its neighbours: hostile numbers, times and scores are dead letters of that record."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import SENSORS, WRITE_TOKEN, normal_readings, payload, record

from vigil.alerts import SqlAlertStore
from vigil.service.app import create_app
from vigil.service.auth import TokenAuth
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.runtime import Decision, Runtime

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}", "Content-Type": "application/json"}


def raw_record(device: str, time: str, temp: str) -> bytes:
    """A record whose time and first reading are written verbatim (numbers JSON cannot round-trip)."""
    rest = ", ".join(f'"{name}": 0.5' for name in SENSORS[1:])
    return f'{{"device": "{device}", "time": {time}, "readings": {{"temp_c": {temp}, {rest}}}}}'.encode()


def raw_batch(*records: bytes) -> bytes:
    return b"[" + b", ".join(records) + b"]"


HOSTILE = {
    "int_4301_digits": (raw_record("bad", "1", "1" * 4301), "wrong_type"),
    "reading_401_digits": (raw_record("bad", "1", "1" * 401), "wrong_type"),
    "time_401_digits": (raw_record("bad", "1" * 401, "0.5"), "invalid_record"),
    "time_overflows_after_offset": (raw_record("bad", '"9999-12-31T23:59:59-23:59"', "0.5"), "invalid_record"),
    "time_underflows_after_offset": (raw_record("bad", '"0001-01-01T00:00:00+01:00"', "0.5"), "invalid_record"),
    "reading_1e308": (raw_record("bad", "1", "1e308"), "non_finite_score"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_record_is_a_dead_letter_and_its_batch_neighbours_are_scored(runtime: Runtime, name: str) -> None:
    hostile, kind = HOSTILE[name]
    rng = np.random.default_rng(0)
    good = [json.dumps(record(f"good-{i}", 5.0, normal_readings(rng))).encode() for i in range(3)]
    outcomes = runtime.submit(raw_batch(good[0], hostile, good[1], good[2]), "test").result(timeout=10)
    assert [type(o).__name__ for o in outcomes] == ["Decision", "DeadLetter", "Decision", "Decision"]
    assert outcomes[1].kind == kind, outcomes[1].reason
    assert all(np.isfinite(o.score) for o in outcomes if isinstance(o, Decision))


def test_neighbours_score_as_if_the_hostile_record_had_never_come(runtime: Runtime, fitted) -> None:
    rng = np.random.default_rng(1)
    records = [record(f"d{i}", 1.0, normal_readings(rng)) for i in range(6)]
    body = raw_batch(*(json.dumps(r).encode() for r in records[:3]), HOSTILE["reading_1e308"][0])
    body = body[:-1] + b", " + b", ".join(json.dumps(r).encode() for r in records[3:]) + b"]"
    outcomes = runtime.submit(body, "test").result(timeout=10)
    decisions = [o for o in outcomes if isinstance(o, Decision)]
    expected = fitted.score_samples(np.array([[r["readings"][s] for s in fitted.feature_names_in_] for r in records]))
    assert np.allclose([d.score for d in decisions], expected)
    assert [o.kind for o in outcomes if isinstance(o, DeadLetter)] == ["non_finite_score"]


def test_hostile_posts_in_separate_submissions_spare_the_other_devices(runtime: Runtime, store: SqlAlertStore) -> None:
    rng = np.random.default_rng(2)
    futures = []
    for i in range(40):
        futures.append(runtime.submit(payload(record(f"ok-{i}", 1.0, normal_readings(rng))), "test"))
        futures.append(runtime.submit(raw_record(f"bad-{i}", "1", "1e308"), "test"))
    outcomes = [f.result(timeout=10)[0] for f in futures]
    assert all(isinstance(o, Decision) for o in outcomes[0::2])
    assert all(isinstance(o, DeadLetter) and o.kind == "non_finite_score" for o in outcomes[1::2])
    assert store.count_dead_letters("non_finite_score") == 40
    assert store.count_dead_letters("internal") == 0


def test_the_valid_neighbour_of_a_refused_record_is_not_lost_to_a_duplicate(runtime: Runtime) -> None:
    rng = np.random.default_rng(3)
    good = json.dumps(record("p1", 7.0, normal_readings(rng))).encode()
    first = runtime.submit(raw_batch(good, HOSTILE["time_overflows_after_offset"][0]), "test").result(timeout=10)
    assert isinstance(first[0], Decision)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write"}))) as c:
        yield c


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_http_answers_hostile_records_with_4xx_and_keeps_serving(client: TestClient, name: str) -> None:
    hostile, kind = HOSTILE[name]
    response = client.post("/ingest", content=hostile, headers=WRITE)
    assert response.status_code == 422, response.text
    assert response.json()["results"][0]["dead_letter"] == kind
    rng = np.random.default_rng(4)
    after = client.post("/ingest", content=payload(record("next", 1.0, normal_readings(rng))), headers=WRITE)
    assert after.status_code == 200, after.text
    letters = client.get("/dead-letters", headers=WRITE).json()["dead_letters"]
    assert [letter["kind"] for letter in letters] == [kind]


def test_a_redelivered_reading_is_acknowledged_and_counted_not_dead_lettered(
    runtime: Runtime, store: SqlAlertStore
) -> None:
    rng = np.random.default_rng(5)
    first = [record("p1", float(t), normal_readings(rng)) for t in range(5)]
    assert all(isinstance(o, Decision) for o in runtime.submit(payload(*first), "test").result(timeout=10))
    again = runtime.submit(payload(*first[1:3]), "test").result(timeout=10)
    assert [type(o).__name__ for o in again] == ["Redelivery", "Redelivery"]
    changed = dict(first[4], readings={**first[4]["readings"], "temp_c": 99.0})
    refused = runtime.submit(payload(changed), "test").result(timeout=10)
    assert refused[0].kind == "duplicate"  # the same time with other readings is not a redelivery
    runtime.drain()
    assert runtime.metrics.snapshot()["redeliveries"] == 2
    assert store.count_dead_letters() == 1


def test_http_retry_of_a_committed_reading_is_200(client: TestClient) -> None:
    body = payload(record("p1", 3.0, normal_readings(np.random.default_rng(6))))
    assert client.post("/ingest", content=body, headers=WRITE).status_code == 200
    retry = client.post("/ingest", content=body, headers=WRITE)
    assert retry.status_code == 200 and retry.json()["results"][0]["redelivery"] is True
