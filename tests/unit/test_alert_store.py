from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigil.alerts import SCHEMA_VERSION, Alert, AlertTracker, SqlAlertStore, alert_id, open_store
from vigil.errors import InvalidInputError, VigilError
from vigil.streaming.dead_letters import DeadLetter

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_alert(device: str = "pump2", start: float = 0.0, **changes: object) -> Alert:
    fields: dict[str, object] = {
        "id": alert_id(device, "m1", at(start)),
        "device": device,
        "start": at(start),
        "end": at(start + 5),
        "peak_time": at(start + 2.5),
        "score": 4.2,
        "threshold": 1.0,
        "model_version": "m1",
        "top_features": [("pump2.flow_m3h", 0.5), ("pump2.outlet_pressure_bar", 0.28)],
        "incident_type": "multi-sensor deviation",
        "status": "closed",
        "n_points": 6,
        "feedback": [],
        "explanation": "pump2.flow_m3h and pump2.outlet_pressure_bar drove 78 % of the score",
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(store_url: str) -> Iterator[SqlAlertStore]:
    """Each behaviour test runs on SQLite and on PostgreSQL (see tests/conftest.py)."""
    with SqlAlertStore(store_url) as s:
        yield s


def row_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])


def test_round_trip_keeps_every_field(store: SqlAlertStore) -> None:
    alert = make_alert(
        feedback=[{"time": at(60).isoformat(), "verdict": "note", "note": "ünïcode ✓", "user": "ana"}],
        peak_time=at(2.123456),
    )
    stored = store.upsert(alert)
    assert stored == alert
    again = store.get(alert.id)
    assert again == alert
    assert again is not None
    assert again.top_features == [("pump2.flow_m3h", 0.5), ("pump2.outlet_pressure_bar", 0.28)]
    assert again.peak_time.tzinfo is not None
    assert store.get("no-such-id") is None


def test_upsert_is_idempotent(store: SqlAlertStore) -> None:
    alert = make_alert()
    for _ in range(3):
        store.upsert(alert)
    grown = replace(alert, end=at(20), n_points=9, score=6.0, status="open")
    store.upsert(grown)
    assert store.count() == 1
    assert store.get(alert.id) == grown


def test_one_id_twice_in_a_batch_is_merged_in_order(store: SqlAlertStore) -> None:
    alert = make_alert(status="open")
    stored = store.upsert_many([alert, replace(alert, n_points=9, status="closed")])
    assert [a.n_points for a in stored] == [6, 9]
    assert store.count() == 1 and store.get(alert.id) == stored[-1]


def test_sqlite_file_keeps_one_row_per_id(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    with SqlAlertStore(path) as store:
        for _ in range(3):
            store.upsert(make_alert())
    assert row_count(path) == 1


def test_replayed_tracker_stream_creates_no_duplicates(store: SqlAlertStore) -> None:
    def replay() -> None:
        tracker = AlertTracker(device_gap_seconds=30, model_version="m1")
        for t in [0, 1, 2, 60, 61]:
            for event in tracker.update("pump2", at(t), 2.0, 1.0, True, {"pump2.rpm": 1.0}):
                store.upsert(event.alert)
        for event in tracker.close_all():
            store.upsert(event.alert)

    replay()
    first = store.list()
    replay()
    assert store.list() == first
    assert store.count() == 2
    assert sorted(a.n_points for a in first) == [2, 3]


def test_upsert_never_erases_a_verdict(store: SqlAlertStore) -> None:
    alert = make_alert(status="open")
    store.upsert(alert)
    store.add_verdict(alert.id, "confirmed", note="seal leak", user="ana", time=at(10))
    # The tracker knows nothing about the verdict and reports the alert growing, then closing.
    store.upsert(replace(alert, n_points=8, end=at(30)))
    after = store.upsert(replace(alert, n_points=9, end=at(31), status="closed"))
    assert after.status == "confirmed"
    assert [entry["verdict"] for entry in after.feedback] == ["confirmed"]
    assert store.get(alert.id) == after
    assert after.n_points == 9


def test_add_verdict_changes_status_and_appends_feedback(store: SqlAlertStore) -> None:
    alert = make_alert()
    store.upsert(alert)
    confirmed = store.add_verdict(alert.id, "confirmed", note="bearing", user="ana", time=at(100))
    assert confirmed.status == "confirmed"
    assert confirmed.feedback == [
        {"time": "2024-05-01T12:01:40.000000+00:00", "verdict": "confirmed", "note": "bearing", "user": "ana"}
    ]
    noted = store.add_verdict(alert.id, "note", note="replaced the bearing", user="bo")
    assert noted.status == "confirmed"
    rejected = store.add_verdict(alert.id, "false_positive", user="cy")
    assert rejected.status == "false_positive"
    assert [entry["verdict"] for entry in rejected.feedback] == ["confirmed", "note", "false_positive"]
    assert store.get(alert.id) == rejected
    assert datetime.fromisoformat(rejected.feedback[1]["time"]).tzinfo is not None


def test_add_verdict_rejects_unknown_id_and_verdict(store: SqlAlertStore) -> None:
    alert = make_alert()
    store.upsert(alert)
    with pytest.raises(InvalidInputError, match="no alert with id 'nope'"):
        store.add_verdict("nope", "confirmed")
    with pytest.raises(InvalidInputError, match="verdict must be one of"):
        store.add_verdict(alert.id, "resolved")
    with pytest.raises(InvalidInputError, match="note"):
        store.add_verdict(alert.id, "note", note=3)  # type: ignore[arg-type]
    assert store.get(alert.id) == alert


def test_list_is_newest_first_with_paging(store: SqlAlertStore) -> None:
    for start in [0, 100, 50, 200]:
        store.upsert(make_alert(start=start))
    starts = [a.start for a in store.list()]
    assert starts == [at(200), at(100), at(50), at(0)]
    assert [a.start for a in store.list(limit=2, offset=1)] == [at(100), at(50)]
    assert store.list(limit=0) == []
    assert len(store.list(limit=None)) == 4


def test_filters(store: SqlAlertStore) -> None:
    store.upsert(make_alert("a", 0, status="closed"))
    store.upsert(make_alert("a", 100, status="open"))
    store.upsert(make_alert("b", 50, status="confirmed"))
    store.upsert(make_alert("b", 300, status="false_positive"))

    assert [a.start for a in store.list(device="a")] == [at(100), at(0)]
    assert [a.device for a in store.list(status="confirmed")] == ["b"]
    assert [a.start for a in store.list(device="b", status="false_positive")] == [at(300)]
    # Each alert lasts 5 s: since/until keep the alerts that overlap [since, until).
    assert [a.start for a in store.list(since=at(52))] == [at(300), at(100), at(50)]
    assert [a.start for a in store.list(until=at(50))] == [at(0)]
    assert [a.start for a in store.list(since=at(10), until=at(101))] == [at(100), at(50)]
    assert store.count() == 4
    assert store.count(device="b") == 2
    assert store.count(status="open", since=at(0), until=at(1000)) == 1
    assert store.count(device="nobody") == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"status": "resolved"}, "status"),
        ({"since": datetime(2024, 5, 1)}, "time zone"),  # naive on purpose
        ({"limit": -1}, "limit"),
        ({"offset": -5}, "offset"),
        ({"device": 3}, "device"),
    ],
)
def test_bad_filters_are_rejected(store: SqlAlertStore, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        store.list(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "evil",
    [
        "x' OR '1'='1",
        "x'; DROP TABLE alerts; --",
        '" OR 1=1 --',
        "pump2%",
    ],
)
def test_sql_injection_in_filters_is_harmless(store: SqlAlertStore, evil: str) -> None:
    store.upsert(make_alert("pump2"))
    assert store.list(device=evil) == []
    assert store.count(device=evil) == 0
    assert store.get(evil) is None
    with pytest.raises(InvalidInputError):
        store.add_verdict(evil, "confirmed")
    with pytest.raises(InvalidInputError):
        store.list(status=evil)
    assert store.count() == 1


def test_injection_strings_are_stored_verbatim(store: SqlAlertStore) -> None:
    evil = "x'); DROP TABLE alerts; --"
    alert = make_alert(evil)
    store.upsert(alert)
    store.add_verdict(alert.id, "note", note=evil, user=evil)
    assert [a.device for a in store.list(device=evil)] == [evil]
    assert store.count() == 1


def test_persists_across_reopen(store_url: str) -> None:
    alert = make_alert()
    with SqlAlertStore(store_url) as store:
        store.upsert(alert)
        store.add_verdict(alert.id, "false_positive", note="maintenance", user="ana", time=at(9))
        expected = store.get(alert.id)
    with SqlAlertStore(store_url) as store:
        assert store.get(alert.id) == expected
        assert store.count() == 1


def test_wal_mode_and_schema_version_on_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    with SqlAlertStore(path) as store:
        assert store.journal_mode == "wal"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_memory_store_works_without_wal() -> None:
    with SqlAlertStore(":memory:") as store:
        assert store.journal_mode == "memory"
        store.upsert(make_alert())
        assert store.count() == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    SqlAlertStore(path).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.commit()
    with pytest.raises(InvalidInputError, match="upgrade Vigil"):
        SqlAlertStore(path)


def test_foreign_databases_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    with closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE things (x)")
        conn.commit()
    with pytest.raises(InvalidInputError, match="another application"):
        SqlAlertStore(foreign)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, just text" * 100)
    with pytest.raises(InvalidInputError, match="not a usable Vigil alert store"):
        SqlAlertStore(junk)
    with pytest.raises(InvalidInputError, match="cannot open"):
        SqlAlertStore(tmp_path / "missing-folder" / "alerts.db")


def test_closed_store_raises_and_close_is_idempotent(store_url: str) -> None:
    store = SqlAlertStore(store_url)
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(VigilError, match="closed"):
        store.list()
    with pytest.raises(VigilError, match="closed"):
        store.upsert(make_alert())


def test_upsert_rejects_non_alerts(store: SqlAlertStore) -> None:
    with pytest.raises(InvalidInputError, match="Alert"):
        store.upsert({"id": "x"})  # type: ignore[arg-type]


def test_concurrent_writers_share_one_store(store_url: str) -> None:
    errors: list[BaseException] = []
    with SqlAlertStore(store_url) as store:

        def work(device: str) -> None:
            try:
                for i in range(20):
                    alert = store.upsert(make_alert(device, float(i)))
                    store.add_verdict(alert.id, "confirmed", user=device)
                    store.list(device=device, limit=5)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(f"d{k}",)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert store.count() == 80
        assert store.count(status="confirmed") == 80


def test_dead_letters_newest_first_and_by_kind(store: SqlAlertStore) -> None:
    letters = [
        DeadLetter(kind="invalid_json", reason="not JSON", source="mqtt:a/b", payload="{\x00"),
        DeadLetter(kind="non_finite", reason="NaN", source="http", payload="{}", device="p1"),
    ]
    store.upsert_many([make_alert()], letters)
    assert store.count_dead_letters() == 2 and store.count() == 1
    assert [d.kind for d in store.list_dead_letters()] == ["non_finite", "invalid_json"]
    assert store.list_dead_letters(kind="non_finite")[0].device == "p1"
    assert store.count_dead_letters("invalid_json") == 1
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        store.list_dead_letters(kind="nope")


def test_a_failed_batch_stores_nothing(store: SqlAlertStore) -> None:
    letter = DeadLetter(kind="non_finite", reason="NaN", source="http")
    with pytest.raises(InvalidInputError, match="DeadLetter"):
        store.upsert_many([make_alert()], [letter, "not a letter"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="JSON"):
        store.upsert_many([make_alert("a"), make_alert("b", top_features=[("x", float("nan"))])])
    assert store.count() == 0 and store.count_dead_letters() == 0


def test_postgres_schema_from_the_url_and_newer_versions_refused(postgres_url: str) -> None:
    with SqlAlertStore(postgres_url) as store:
        assert store.dialect == "postgresql" and store.schema.startswith("vigil_test_")
        import sqlalchemy as sa

        engine = sa.create_engine(store.url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {store.schema}.meta SET value = '{SCHEMA_VERSION + 1}'"))
        engine.dispose()
    with pytest.raises(InvalidInputError, match="upgrade Vigil"):
        SqlAlertStore(postgres_url)
    with pytest.raises(InvalidInputError, match="schema must be"):
        SqlAlertStore(postgres_url, schema="Bad-Name")


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="cannot connect"):
        SqlAlertStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=1)


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///nested/alerts.db") as store:
        store.upsert(make_alert())
    assert row_count(tmp_path / "nested" / "alerts.db") == 1
    with open_store(tmp_path / "nested" / "alerts.db") as store:
        assert store.count() == 1
    with pytest.raises(InvalidInputError, match="names no file"):
        open_store("sqlite://")


def test_counters_add_up_and_refuse_what_is_not_a_count(store: SqlAlertStore) -> None:
    assert store.counters() == {}
    store.add_counts({"scored:pump": 3, "dead_letters:invalid_json": 0})
    store.add_counts({"scored:pump": 2, "received:mqtt": 5})
    assert store.counters() == {"scored:pump": 5, "received:mqtt": 5}
    for bad in ({"scored:pump": -1}, {"": 1}, {"x": 1.5}, {"x": True}):
        with pytest.raises(InvalidInputError, match="a counter is"):
            store.add_counts(bad)
    assert store.counters() == {"scored:pump": 5, "received:mqtt": 5}


def test_an_alert_keeps_one_image_beside_it(store: SqlAlertStore, tmp_path: Path) -> None:
    alert = store.upsert(make_alert(device="cam-1"))
    assert store.get_image(alert.id) is None
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # binary bytes survive both backends unchanged
    store.put_image(alert.id, png)
    assert store.get_image(alert.id) == ("image/png", png)
    store.put_image(alert.id, b"\xff\xd8\xff", media_type="image/jpeg")  # a second image replaces the first
    assert store.get_image(alert.id) == ("image/jpeg", b"\xff\xd8\xff")
    for data, kind, match in ((b"", "image/png", "must be 1 to"), (b"x", "text/html", "must be one of")):
        with pytest.raises(InvalidInputError, match=match):
            store.put_image(alert.id, data, media_type=kind)
    assert store.list(device="cam-1")[0].id == alert.id  # listing alerts is unchanged by the image
