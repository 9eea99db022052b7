"""/health tells the truth: degraded, with the reason, on many dead letters, a stall, a failing store or drift."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from service_helpers import anomalous_readings, normal_readings, payload, record

from vigil.alerts import SqlAlertStore
from vigil.service.app import create_app
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime, RuntimeConfig


def health(runtime: Runtime) -> dict:
    with TestClient(create_app(runtime)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    return response.json()


def test_health_is_ok_with_few_dead_letters_and_degraded_with_many(runtime: Runtime) -> None:
    rng = np.random.default_rng(0)
    runtime.submit(payload(*[record(f"d{i}", 1.0, normal_readings(rng)) for i in range(30)]), "t").result(10)
    for _ in range(5):
        runtime.submit(b"{broken", "t").result(10)
    assert health(runtime) == {**health(runtime), "status": "ok", "reasons": []}
    for _ in range(40):
        runtime.submit(b"{broken", "t").result(10)
    state = health(runtime)
    assert state["status"] == "degraded"
    assert "45 of the last 75 records (60%) were dead-lettered" in state["reasons"][0]


def test_scores_drifting_from_training_degrade_health_with_the_reason(tmp_path: Path, registry: ModelRegistry) -> None:
    rng = np.random.default_rng(2)
    config = RuntimeConfig(drift_check_seconds=0.05)
    with SqlAlertStore(tmp_path / "alerts.db") as store, Runtime(store, registry, config=config) as runtime:
        runtime.submit(payload(*[record("d1", float(t), normal_readings(rng)) for t in range(300)]), "t").result(10)
        time.sleep(0.3)
        assert health(runtime)["reasons"] == []
        worn = [record("d1", float(t), anomalous_readings(rng)) for t in range(300, 700)]
        runtime.submit(payload(*worn), "t").result(10)
        deadline = time.monotonic() + 10
        while not health(runtime)["reasons"] and time.monotonic() < deadline:
            time.sleep(0.05)
        state = health(runtime)
        assert state["status"] == "degraded"
        (reason,) = state["reasons"]
        assert reason.startswith("model pump (pca-") and "score drift: " in reason and "vigil retrain" in reason
        (device,) = runtime.devices()
        assert device["drift"]["drifted"] and device["drift"]["z"] > 4 and device["drift"]["n"] == 600


def test_a_failing_store_and_the_stall_it_causes_are_reported(tmp_path: Path, registry: ModelRegistry) -> None:
    db = tmp_path / "alerts.db"
    config = RuntimeConfig(stall_seconds=0.5)
    with SqlAlertStore(db) as store, Runtime(store, registry, config=config) as runtime:
        assert health(runtime)["status"] == "ok"
        with sqlite3.connect(db) as raw:
            raw.execute("DROP TABLE dead_letters")  # the store now refuses every batch with a dead letter
        runtime.submit(b"{broken", "t")
        deadline = time.monotonic() + 20
        while len(health(runtime)["reasons"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker retries the commit with back-off: poll with a deadline
        reasons = health(runtime)["reasons"]
        assert any(r.startswith("the alert store is failing") for r in reasons), reasons
        assert any(r.startswith("ingestion stalled: 1 records received") for r in reasons), reasons


def test_counts_carry_across_a_restart_and_a_kill_loses_at_most_one_flush(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    rng = np.random.default_rng(1)
    db = tmp_path / "alerts.db"
    with SqlAlertStore(db) as store, Runtime(store, registry) as runtime:
        runtime.submit(payload(*[record(f"d{i}", 1.0, normal_readings(rng)) for i in range(7)]), "http").result(10)
        runtime.submit(b"{broken", "http").result(10)
        runtime.submit(payload(record("d0", 1.0, normal_readings(rng))), "http").result(10)  # not the same reading
    with SqlAlertStore(db) as store:
        assert store.counters()["scored:pump"] == 7
        runtime = Runtime(store, registry, config=RuntimeConfig(counter_flush_seconds=0.1)).start()
        try:
            runtime.submit(payload(record("d9", 2.0, normal_readings(rng))), "http").result(10)
            snap = runtime.metrics.snapshot()
            assert snap["scored"] == {"pump": 8}
            assert snap["dead_letters"] == {"invalid_json": 1, "duplicate": 1}
            assert snap["received"] == {"http": 10}
            assert runtime.metrics.counts()["scored:pump"] == 1  # this run's own
            deadline = time.monotonic() + 10
            while store.counters().get("scored:pump") != 8 and time.monotonic() < deadline:
                time.sleep(0.05)  # the worker flushes every 0.1 s: poll with a deadline
            assert store.counters()["scored:pump"] == 8  # flushed while running: a kill now loses nothing
        finally:
            runtime.stop()
        assert store.counters()["scored:pump"] == 8  # stopping does not count anything twice
