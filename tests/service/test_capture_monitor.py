"""`vigil serve --capture`: a capture being written is scored live and its typed incidents become alerts."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dpkt", reason="packet captures need dpkt: pip install 'vigil[network]'")

from vigil.alerts import SqlAlertStore
from vigil.pipeline import Pipeline
from vigil.service.cli import main
from vigil.service.server import Service, ServiceConfig
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.sources.capture import CaptureMonitor


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            msg = "timed out"
            raise AssertionError(msg)
        time.sleep(0.1)


def test_serve_scores_a_growing_capture_and_stores_a_typed_alert(
    tmp_path: Path, capture_setup, registry: ModelRegistry
) -> None:
    live = tmp_path / "live.pcap"
    live.write_bytes(capture_setup["benign"].read_bytes())
    config = ServiceConfig(
        registry=registry.root,  # the telemetry models; the captures have their own
        store=f"sqlite:///{tmp_path / 'alerts.db'}",
        captures=[str(live)],
        capture_model=capture_setup["model"],
        capture_gap_seconds=5.0,
    )
    with Service(config) as service:
        _wait_for(lambda: service.status()["captures"][0]["packets"] > 0)
        with live.open("ab") as handle:  # the capture grows while the service follows it
            handle.write(capture_setup["attack_records"])
        _wait_for(lambda: any(a.incident_type == "port_scan" for a in service.store.list()))
        _wait_for(lambda: service.status()["captures"][0]["packets"] == capture_setup["n_packets"])
        status = service.status()["captures"][0]
        assert status["running"] and status["error"] is None and status["read"]["malformed"] == 0
        scan = next(a for a in service.store.list() if a.incident_type == "port_scan")
        assert scan.device == "10.0.0.12" and scan.status == "open"
        assert "10.0.0.66" in scan.explanation and scan.score > scan.threshold
        assert scan.top_features and scan.model_version == service.captures[0].pipe.version_
        store_path = tmp_path / "alerts.db"
    with SqlAlertStore(store_path) as store:  # stopping the service closes what is still open
        assert store.get(scan.id).status == "closed"


def test_a_capture_that_is_not_a_pcap_stops_its_monitor_not_the_service(
    tmp_path: Path, capture_setup, registry: ModelRegistry
) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    config = ServiceConfig(
        registry=registry.root,  # the telemetry models; the captures have their own
        store=f"sqlite:///{tmp_path / 'alerts.db'}",
        captures=[str(bad), str(capture_setup["benign"])],
        capture_model=capture_setup["model"],
    )
    with Service(config) as service:
        _wait_for(lambda: not service.captures[0].running)
        broken, healthy = service.status()["captures"]
        assert "not a pcap or pcapng capture" in broken["error"]
        assert healthy["error"] is None and healthy["running"]
        assert service.runtime.running


class _FailsOnce:
    """A real alert store whose first write fails, as during a database restart."""

    def __init__(self, store: SqlAlertStore) -> None:
        self.store, self.failed = store, False

    def upsert_many(self, alerts: list[Any], dead_letters: Any = ()) -> list[Any]:
        if not self.failed:
            self.failed = True
            msg = "database is locked"
            raise sqlite3.OperationalError(msg)
        return self.store.upsert_many(alerts, dead_letters)


class _Collect:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, events: Any, dead_letters: Any) -> None:
        self.events.extend(events)


def test_alert_events_refused_by_the_store_are_kept_and_stored_later(tmp_path: Path, capture_setup) -> None:
    capture = tmp_path / "whole.pcap"
    capture.write_bytes(capture_setup["benign"].read_bytes() + capture_setup["attack_records"])
    sink = _Collect()
    with SqlAlertStore(tmp_path / "alerts.db") as real:
        store = _FailsOnce(real)
        monitor = CaptureMonitor(Pipeline.load(capture_setup["model"]), capture, store, sinks=[sink], follow=False)
        monitor.start().join(timeout=60)
        assert store.failed and monitor.status()["unsaved_events"] == 0
        stored = {a.id: a for a in real.list()}
        assert {e.alert.id for e in sink.events} == set(stored)  # published once stored, none lost
        assert all(a.status == "closed" for a in stored.values())
        assert any(a.incident_type == "port_scan" for a in stored.values())


def test_an_incident_read_in_several_batches_is_one_alert_with_its_total(tmp_path: Path, capture_setup) -> None:
    capture = tmp_path / "whole.pcap"
    capture.write_bytes(capture_setup["benign"].read_bytes() + capture_setup["attack_records"])
    with SqlAlertStore(tmp_path / "alerts.db") as store:
        monitor = CaptureMonitor(Pipeline.load(capture_setup["model"]), capture, store, batch_size=256, follow=False)
        monitor.start().join(timeout=60)
        scans = [a for a in store.list() if a.incident_type == "port_scan"]
    assert len(scans) == 1  # the scan spans many 256-packet batches
    assert scans[0].n_points > 256 and f"In all: {scans[0].n_points} flagged packets" in scans[0].explanation


def test_serve_needs_a_model_for_its_captures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], registry: ModelRegistry
) -> None:
    argv = ["serve", "--registry", str(registry.root), "--store", f"sqlite:///{tmp_path / 'a.db'}"]
    assert main([*argv, "--capture", str(tmp_path / "x.pcap")]) == 2
    assert "--capture-model" in capsys.readouterr().err
