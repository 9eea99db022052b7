from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigil.alerts import (
    SCHEMA_VERSION,
    Alert,
    AlertEvent,
    AlertSink,
    AssetIncident,
    AssetMap,
    IncidentCorrelator,
    IncidentEvent,
    SqlAlertStore,
    alert_id,
    incident_id,
)
from vigil.errors import InvalidInputError
from vigil.streaming.dead_letters import DeadLetter

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_alert(
    device: str, modality: str, start: float, end: float, status: str = "closed", features=(("x", 1.0),)
) -> Alert:
    return Alert(
        id=alert_id(device, f"{modality}-model", at(start)),
        device=device,
        start=at(start),
        end=at(end),
        peak_time=at(start),
        score=3.0,
        threshold=1.0,
        model_version=f"{modality}-model",
        top_features=list(features),
        incident_type={"telemetry": "multi-sensor deviation", "network": "port_scan", "camera": "visual_defect"}[
            modality
        ],
        status=status,
        explanation=f"{modality} evidence on {device}",
        modality=modality,
    )


ASSETS = AssetMap({"10.0.0.12": "pump2", "cam-7": "pump2", "10.0.0.13": "pump3"}, line_devices=["line-1"])


@pytest.fixture
def store(store_url: str) -> Iterator[SqlAlertStore]:
    with SqlAlertStore(store_url) as s:
        yield s


# -- the asset map -------------------------------------------------------------------------------------


def test_asset_map_explicit_then_line_sensor_then_device_part() -> None:
    line = make_alert("line-1", "telemetry", 0, 10, features=[("pump3.vibration_mms", 0.6), ("pump2.rpm", 0.3)])
    assert ASSETS.asset_of(line) == "pump3"
    assert ASSETS.asset_of(make_alert("10.0.0.12", "network", 0, 1)) == "pump2"
    assert ASSETS.asset_of(make_alert("tank/level", "telemetry", 0, 1)) == "tank"
    assert ASSETS.asset_of(make_alert("10.0.0.99", "network", 0, 1)) == "10.0.0.99"
    # only telemetry of a line device is attributed by sensor: a network alert's features are not sensors
    assert ASSETS.asset_of(make_alert("line-1", "network", 0, 1, features=[("pump3.x", 1.0)])) == "line-1"


def test_asset_map_file_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "assets.json"
    good.write_text(json.dumps({"devices": {"10.0.0.12": "pump2"}, "line_devices": ["line-1"]}))
    assert AssetMap.from_file(good).devices == {"10.0.0.12": "pump2"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"device": {}}))
    with pytest.raises(InvalidInputError, match=r"bad.json.*unknown: \['device'\]"):
        AssetMap.from_file(bad)
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="cannot read the asset map"):
        AssetMap.from_file(bad)
    with pytest.raises(InvalidInputError, match="non-empty text"):
        AssetMap({"10.0.0.12": ""})


def test_bad_correlator_parameters_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="incident window"):
        IncidentCorrelator(window_seconds=float("nan"))
    with pytest.raises(InvalidInputError, match="incident window"):
        IncidentCorrelator(window_seconds=-1)
    with pytest.raises(InvalidInputError, match="min_modalities"):
        IncidentCorrelator(min_modalities=0)


def test_unknown_modality_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="modality 'radar'"):
        make_alert("pump2", "telemetry", 0, 1).__class__(
            id="a", device="d", start=at(0), end=at(0), peak_time=at(0), score=1, threshold=1, model_version="m",
            modality="radar",
        )  # fmt: skip


# -- grouping ------------------------------------------------------------------------------------------


def test_alerts_of_one_asset_across_modalities_within_the_window_form_one_incident() -> None:
    correlator = IncidentCorrelator(ASSETS, window_seconds=60)
    telemetry = make_alert("line-1", "telemetry", 0, 100, "open", features=[("pump2.flow_m3h", 0.8)])
    assert correlator.observe([telemetry]) == []  # one modality alone is an alert, not an incident
    scan = make_alert("10.0.0.12", "network", 150, 170)  # 50 s after the telemetry alert ended: within 60 s
    (opened,) = correlator.observe([scan])
    assert opened.kind == "opened"
    incident = opened.incident
    assert incident.asset == "pump2" and incident.status == "open"
    assert incident.alert_ids == [telemetry.id, scan.id]
    assert incident.modalities == ["network", "telemetry"]
    assert incident.devices == ["10.0.0.12", "line-1"]
    assert (incident.start, incident.end) == (at(0), at(170))
    assert incident.id == incident_id("pump2", telemetry.id)
    # the telemetry alert closing changes nothing an operator sees of the incident yet
    assert correlator.observe([Alert.from_dict({**telemetry.to_dict(), "status": "closed"})]) == []
    camera = make_alert("cam-7", "camera", 200, 200)
    (grown,) = correlator.observe([camera])
    assert grown.kind == "grown" and grown.incident.id == incident.id
    assert grown.incident.modalities == ["camera", "network", "telemetry"]
    assert grown.incident.revision > incident.revision
    # another asset's evidence at the same time is not part of it, nor is pump2 evidence outside the window
    other = make_alert("10.0.0.13", "network", 160, 170)
    late = make_alert("10.0.0.12", "network", 261, 262)
    assert correlator.observe([other]) == []
    assert correlator.open_incidents()[0].alert_ids == [telemetry.id, scan.id, camera.id]
    # ... which moves the evidence clock past the window: the incident, whose alerts all closed, closes
    (closed,) = correlator.observe([late])
    assert closed.kind == "closed" and closed.incident.alert_ids == [telemetry.id, scan.id, camera.id]
    assert correlator.open_incidents() == []


def test_incident_closes_once_its_alerts_closed_and_the_window_passed() -> None:
    correlator = IncidentCorrelator(ASSETS, window_seconds=30)
    telemetry = make_alert("pump2", "telemetry", 0, 20, "open")
    correlator.observe([telemetry, make_alert("10.0.0.12", "network", 10, 15)])
    # the clock moves far ahead, but the telemetry alert is still open: the incident stays open
    assert correlator.observe([make_alert("tank", "telemetry", 500, 510)]) == []
    closed = Alert.from_dict({**telemetry.to_dict(), "status": "closed"})
    (event,) = correlator.observe([closed])
    assert event.kind == "closed" and event.incident.status == "closed"
    assert correlator.open_incidents() == []


def test_an_alert_bridging_two_incidents_merges_them_into_the_earlier() -> None:
    correlator = IncidentCorrelator(ASSETS, window_seconds=10)
    first = correlator.observe(
        [make_alert("pump2", "telemetry", 0, 10, "open"), make_alert("10.0.0.12", "network", 5, 6)]
    )
    second = correlator.observe(
        [make_alert("pump2", "telemetry", 100, 110, "open"), make_alert("cam-7", "camera", 105, 105)]
    )
    assert [e.kind for e in first + second] == ["opened", "opened"]
    bridge = make_alert("10.0.0.12", "network", 15, 95)
    events = {e.kind: e.incident for e in correlator.observe([bridge])}
    assert set(events) == {"grown", "merged"}
    assert events["grown"].id == first[0].incident.id
    assert events["merged"].id == second[0].incident.id
    assert events["merged"].merged_into == first[0].incident.id and events["merged"].status == "merged"
    assert len(events["grown"].alert_ids) == 5
    assert events["grown"].modalities == ["camera", "network", "telemetry"]


def test_min_modalities_one_makes_every_group_an_incident() -> None:
    correlator = IncidentCorrelator(window_seconds=5, min_modalities=1)
    (event,) = correlator.observe([make_alert("pump2", "telemetry", 0, 1)])
    assert event.kind == "opened" and event.incident.modalities == ["telemetry"]


# -- the store, on SQLite and PostgreSQL ---------------------------------------------------------------


def test_incidents_round_trip_and_a_newer_revision_is_never_replaced(store: SqlAlertStore) -> None:
    correlator = IncidentCorrelator(ASSETS, window_seconds=60)
    alerts = [make_alert("pump2", "telemetry", 0, 30), make_alert("10.0.0.12", "network", 20, 25)]
    (opened,) = correlator.observe(alerts)
    store.upsert_many(alerts, incidents=[opened.incident])
    assert store.get_incident(opened.incident.id) == opened.incident
    camera = make_alert("cam-7", "camera", 40, 40)
    (grown,) = correlator.observe([camera])
    store.upsert_many([camera], incidents=[grown.incident])
    store.upsert_many([], incidents=[opened.incident])  # a late commit of an older state
    stored = store.get_incident(opened.incident.id)
    assert stored == grown.incident and stored.modalities == ["camera", "network", "telemetry"]
    assert [a.modality for a in store.get_many(stored.alert_ids)] == ["telemetry", "network", "camera"]
    assert store.get_many(["missing", camera.id]) == [camera]
    assert store.get_incident("missing") is None


def test_incident_listing_filters_and_paging(store: SqlAlertStore) -> None:
    incidents = [
        AssetIncident(f"i{n}", asset, at(100 * n), at(100 * n + 50), status=status, alert_ids=["a"])
        for n, (asset, status) in enumerate([("pump2", "open"), ("pump3", "closed"), ("pump2", "closed")])
    ]
    store.upsert_many([], incidents=incidents)
    assert [i.id for i in store.list_incidents()] == ["i2", "i1", "i0"]
    assert [i.id for i in store.list_incidents(asset="pump2")] == ["i2", "i0"]
    assert [i.id for i in store.list_incidents(status="closed", limit=1)] == ["i2"]
    assert [i.id for i in store.list_incidents(since=at(140), until=at(200))] == ["i1"]
    assert store.count_incidents(asset="pump2", status="open") == 1
    with pytest.raises(InvalidInputError, match="status must be one of open, closed, merged"):
        store.list_incidents(status="confirmed")
    with pytest.raises(InvalidInputError, match="expected an AssetIncident"):
        store.upsert_many([], incidents=[{"id": "x"}])  # type: ignore[list-item]


def test_a_refused_batch_stores_no_incident_either(store: SqlAlertStore) -> None:
    incident = AssetIncident("i1", "pump2", at(0), at(1), alert_ids=["a"])
    bad = Alert.from_dict({**make_alert("pump2", "telemetry", 0, 1).to_dict(), "top_features": [["x", float("nan")]]})
    with pytest.raises(InvalidInputError):
        store.upsert_many([bad], incidents=[incident])
    assert store.count_incidents() == 0


class _Recorder:
    def __init__(self) -> None:
        self.alerts: list[str] = []
        self.incidents: list[IncidentEvent] = []

    def publish(self, events, dead_letters) -> None:
        self.alerts += [e.kind for e in events]

    def publish_incidents(self, events) -> None:
        self.incidents += list(events)


class _FlakyStore:
    """Refuses the first ``failures`` commits, then behaves as the store it wraps."""

    def __init__(self, store: SqlAlertStore, failures: int) -> None:
        self.store, self.failures = store, failures

    def upsert_many(self, alerts, dead_letters=(), incidents=()):
        if self.failures:
            self.failures -= 1
            msg = "store down"
            raise ConnectionError(msg)
        return self.store.upsert_many(alerts, dead_letters, incidents)


def test_sink_stores_incidents_with_the_alerts_then_publishes_them(store: SqlAlertStore) -> None:
    recorder = _Recorder()
    correlator = IncidentCorrelator(ASSETS, window_seconds=60)
    flaky = _FlakyStore(store, failures=2)
    sink = AlertSink(flaky, [recorder], correlator=correlator, first_delay=0.001)  # type: ignore[arg-type]
    telemetry = make_alert("pump2", "telemetry", 0, 30, "open")
    scan = make_alert("10.0.0.12", "network", 20, 25)
    acked = []
    letter = DeadLetter(received=at(0), kind="invalid_json", reason="r", source="s", device="pump2", payload="{}")
    assert sink.deliver(
        [AlertEvent("opened", telemetry), AlertEvent("opened", scan)], [letter], ack=lambda: acked.append(1)
    )
    assert acked == [1] and flaky.failures == 0
    (event,) = recorder.incidents
    assert event.kind == "opened"
    assert store.get_incident(event.incident.id) == event.incident
    assert correlator.unsaved() == []
    assert recorder.alerts == ["opened", "opened"]


def test_an_incident_of_a_batch_given_up_is_stored_with_the_next(store: SqlAlertStore) -> None:
    correlator = IncidentCorrelator(ASSETS, window_seconds=60)
    flaky = _FlakyStore(store, failures=100)
    sink = AlertSink(flaky, correlator=correlator, first_delay=0.001, max_delay=0.001)  # type: ignore[arg-type]
    alerts = [make_alert("pump2", "telemetry", 0, 30), make_alert("10.0.0.12", "network", 20, 25)]
    assert not sink.deliver([AlertEvent("opened", a) for a in alerts], timeout=0.02)
    assert store.count_incidents() == 0
    flaky.failures = 0
    # the source redelivers the same evidence: the correlator has it already, the store takes the incident now
    assert sink.deliver([AlertEvent("opened", a) for a in alerts])
    assert store.count_incidents() == 1 and store.count() == 2


# -- an existing store gains the new layout -----------------------------------------------------------


def test_a_version_1_sqlite_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    with SqlAlertStore(path) as store:
        store.upsert(make_alert("pump2", "network", 0, 1))
    with closing(sqlite3.connect(path)) as conn:  # back to the version-1 layout
        conn.execute("DROP TABLE incidents")
        conn.execute("ALTER TABLE alerts DROP COLUMN modality")
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    with SqlAlertStore(path) as store:
        (old,) = store.list()
        assert old.modality == ""  # not recorded by version 1: no guess
        store.upsert_many([], incidents=[AssetIncident("i1", "pump2", at(0), at(1), alert_ids=[old.id])])
        assert store.count_incidents() == 1
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


def test_a_version_1_postgres_schema_is_upgraded_in_place(postgres_url: str) -> None:
    import sqlalchemy as sa

    with SqlAlertStore(postgres_url) as store:
        store.upsert(make_alert("pump2", "camera", 0, 1))
        schema = store.schema
        engine = sa.create_engine(store.url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {schema}.incidents"))
        conn.execute(sa.text(f"ALTER TABLE {schema}.alerts DROP COLUMN modality"))
        conn.execute(sa.text(f"UPDATE {schema}.meta SET value = '1'"))
    with SqlAlertStore(postgres_url) as store:
        (old,) = store.list()
        assert old.modality == ""
        assert store.count_incidents() == 0
    with engine.begin() as conn:
        assert conn.execute(sa.text(f"SELECT value FROM {schema}.meta")).scalar_one() == str(SCHEMA_VERSION)
    engine.dispose()
