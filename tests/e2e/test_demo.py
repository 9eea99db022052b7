"""The demo end to end, on a shortened (one-hour) plant run."""

from __future__ import annotations

import sqlite3

import pytest

from vigil.alerts import SqlAlertStore
from vigil.cli import main
from vigil.data.simulator import INCIDENT_CATEGORIES, simulate_plant
from vigil.demo import run_demo
from vigil.pipeline import Pipeline


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return run_demo(output=tmp_path_factory.mktemp("demo"), hours=1.0, seed=7, progress=False)


def test_every_incident_category_is_injected_and_detected(demo):
    categories = {o.incident.category for o in demo.outcomes}
    assert categories == set(INCIDENT_CATEGORIES.values())
    missed = [o.incident.kind for o in demo.outcomes if not o.detected]
    assert not missed, f"missed incidents: {missed}"
    assert all(o.delay_seconds is not None and o.delay_seconds >= 0 for o in demo.outcomes)
    assert demo.metrics["far"] < 0.02


def test_alerts_are_explained_by_the_sensors_the_incident_hit(demo):
    explained = [o.explained for o in demo.outcomes]
    assert sum(explained) >= len(explained) - 1, [(o.incident.kind, o.top_features) for o in demo.outcomes]


def test_alert_store_holds_complete_alerts(demo):
    pipe = Pipeline.load(demo.model_dir)
    with SqlAlertStore(demo.store) as store:
        alerts = store.list(limit=None)
    assert len(alerts) == len(demo.alerts) >= len(demo.outcomes)
    assert not pipe.alarm_.is_plain  # the recommended rule: its set level follows the plant
    for alert in alerts:
        assert alert.id and alert.device == "line-1"
        assert alert.score > alert.threshold > 0
        assert alert.model_version == pipe.version_
        assert alert.top_features and all(name in pipe.feature_names_in_ for name, _ in alert.top_features)
        assert alert.incident_type and alert.explanation
        assert alert.status == "closed"
    # the file is a plain SQLite database a user can open with any tool
    with sqlite3.connect(demo.store) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_report_is_self_contained_html_with_its_sections(demo):
    page = demo.report.read_text()
    for heading in ("Injected incidents", "Alerts", "Honest evaluation of the live period", "point-adjusted"):
        assert heading in page
    assert page.count("data:image/png;base64,") >= 2
    assert "http://" not in page and "https://" not in page  # opens offline


def test_demo_is_deterministic(demo, tmp_path):
    again = run_demo(output=tmp_path, hours=1.0, seed=7, progress=False)
    assert again.metrics == demo.metrics
    assert [a.id for a in again.alerts] == [a.id for a in demo.alerts]


def test_demo_command_prints_the_summary(tmp_path, capsys):
    assert main(["demo", "--hours", "1", "--output", str(tmp_path), "--quiet", "--no-network"]) == 0
    out = capsys.readouterr().out
    assert "detected 5/5 incidents" in out
    assert "is among the top 3 at detection for 5/5" in out  # each incident names a sensor it hit
    assert "false-alarm rate" in out and "report:" in out


@pytest.fixture(scope="module")
def demo_with_network(tmp_path_factory):
    pytest.importorskip("dpkt", reason="the plant network's capture needs dpkt: pip install 'vigil[network]'")
    return run_demo(output=tmp_path_factory.mktemp("demo-net"), hours=1.0, seed=7, progress=False, network=True)


def test_a_port_scan_of_a_machines_controller_and_its_deviation_are_one_incident(demo_with_network, demo) -> None:
    from vigil.demo_incident import CONTROLLER

    (incident,) = demo_with_network.incidents
    assert incident.asset == "pump2" and incident.status == "closed"
    assert incident.modalities == ["network", "telemetry"]
    with SqlAlertStore(demo_with_network.store) as store:
        alerts = store.get_many(incident.alert_ids)
        assert store.count_incidents() == 1
    (network,) = [a for a in alerts if a.modality == "network"]
    assert (network.device, network.incident_type) == (CONTROLLER, "port_scan")
    telemetry = [a for a in alerts if a.modality == "telemetry"]
    # every telemetry alert of the incident is pump2's (an earlier one of that machine may join within the window)
    assert telemetry and all(a.device == "line-1" and a.top_features[0][0].startswith("pump2.") for a in telemetry)
    # the scan falls inside the valve closing that the simulator injected on that machine, and so does an alert
    valve = next(o.incident for o in demo_with_network.outcomes if o.incident.kind == "valve_closing")
    index = simulate_plant(hours=1.0, seed=7).frame.index.tz_localize("UTC")
    assert index[valve.start] <= network.start < index[valve.end]
    assert any(index[valve.start] <= a.start < index[valve.end] for a in telemetry)
    assert "Asset incidents" in demo_with_network.report.read_text()
    # the telemetry part of the demo is the same with the network beside it
    assert [a.id for a in demo_with_network.alerts] == [a.id for a in demo.alerts]
    assert demo_with_network.metrics == demo.metrics
