"""The streaming runtime: batching, dead letters, alert growth, hot swap, restart, recalibration, drift."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from service_helpers import (
    SENSORS,
    anomalous_readings,
    normal_readings,
    payload,
    record,
    training_frame,
)

from vigil.alerts import SqlAlertStore
from vigil.pipeline import Pipeline
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Decision, Runtime, RuntimeConfig


def test_batched_scores_equal_the_pipeline_scores(runtime: Runtime, fitted: Pipeline) -> None:
    rng = np.random.default_rng(1)
    records = [record(f"p{i % 3}", float(i), normal_readings(rng)) for i in range(60)]
    futures = [runtime.submit(payload(*records[i : i + 7]), "http") for i in range(0, 60, 7)]
    outcomes = [o for f in futures for o in f.result(timeout=10)]
    assert all(isinstance(o, Decision) for o in outcomes)
    expected = fitted.score_samples(np.array([[r["readings"][s] for s in fitted.feature_names_in_] for r in records]))
    assert np.allclose([o.score for o in outcomes], expected)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"device": "p1", "time": 0}', "invalid_record"),
        (b'{"device": "p1", "time": 0, "readings": {"temp_c": 1}, "extra": 1}', "invalid_record"),
        (b'{"device": "p1", "time": "2024-01-01T00:00:00", "readings": {"temp_c": 1}}', "invalid_record"),
        (b'{"device": "", "time": 0, "readings": {"temp_c": 1}}', "invalid_record"),
        (b'{"device": "p1", "time": 0, "readings": {"temp_c": 1}}', "sensors_mismatch"),
        (
            b'{"device": "p1", "time": 0, "readings": {"temp_c": "hot", "pressure_bar": 1, "flow_m3h": 1, '
            b'"current_a": 1}}',
            "wrong_type",
        ),
        (
            b'{"device": "p1", "time": 0, "readings": {"temp_c": NaN, "pressure_bar": 1, "flow_m3h": 1, '
            b'"current_a": 1}}',
            "non_finite",
        ),
        (
            b'{"device": "p1", "time": 0, "readings": {"temp_c": 1e999, "pressure_bar": 1, "flow_m3h": 1, '
            b'"current_a": 1}}',
            "non_finite",
        ),
        (
            b'{"device": "p1", "time": 0, "readings": {"temp_c": 1, "pressure_bar": 1, "flow_m3h": 1, '
            b'"current_a": 1, "rpm": 3}}',
            "sensors_mismatch",
        ),
        (
            b'{"device": "p1", "time": 0, "asset_type": "valve", "readings": {"temp_c": 1, "pressure_bar": 1, '
            b'"flow_m3h": 1, "current_a": 1}}',
            "unknown_device",
        ),
    ],
)
def test_bad_messages_become_dead_letters_and_valid_ones_still_pass(
    runtime: Runtime, store: SqlAlertStore, body: bytes, kind: str
) -> None:
    rng = np.random.default_rng(2)
    bad = runtime.submit(body, "test").result(timeout=10)
    good = runtime.submit(payload(record("p9", 1.0, normal_readings(rng))), "test").result(timeout=10)
    assert len(bad) == 1 and isinstance(bad[0], DeadLetter)
    assert bad[0].kind == kind
    assert isinstance(good[0], Decision)
    stored = store.list_dead_letters()
    assert [letter.kind for letter in stored] == [kind]
    assert runtime.metrics.snapshot()["dead_letters"] == {kind: 1}


def test_oversized_payloads_and_batches_are_refused(store: SqlAlertStore, registry: ModelRegistry) -> None:
    config = RuntimeConfig(max_payload_bytes=200, max_batch_records=2)
    rng = np.random.default_rng(3)
    with Runtime(store, registry, config=config) as runtime:
        big = runtime.submit(b" " * 201, "test").result(timeout=10)
        many = runtime.submit(payload(*[record("p1", i, normal_readings(rng)) for i in range(3)]), "test")
        assert big[0].kind == "oversized"
        assert many.result(timeout=10)[0].kind == "oversized"


def test_out_of_order_and_duplicate_times_are_refused_per_device(runtime: Runtime) -> None:
    rng = np.random.default_rng(4)
    batch = [
        record("p1", 10.0, normal_readings(rng)),
        record("p1", 10.0, normal_readings(rng)),
        record("p1", 9.0, normal_readings(rng)),
        record("p2", 9.0, normal_readings(rng)),  # another device keeps its own clock
        record("p1", 11.0, normal_readings(rng)),
    ]
    outcomes = runtime.submit(payload(*batch), "test").result(timeout=10)
    kinds = [o.kind if isinstance(o, DeadLetter) else "ok" for o in outcomes]
    assert kinds == ["ok", "duplicate", "out_of_order", "ok", "ok"]


def test_unknown_device_without_a_route(store: SqlAlertStore, registry: ModelRegistry) -> None:
    rng = np.random.default_rng(5)
    with Runtime(store, registry, routes=[("pump-*", "pump")]) as runtime:
        known = runtime.submit(payload(record("pump-1", 0.0, normal_readings(rng))), "t").result(timeout=10)
        unknown = runtime.submit(payload(record("valve-1", 0.0, normal_readings(rng))), "t").result(timeout=10)
    assert isinstance(known[0], Decision) and known[0].model == "pump"
    assert unknown[0].kind == "unknown_device"


def test_a_sustained_anomaly_is_one_growing_alert(runtime: Runtime, store: SqlAlertStore) -> None:
    rng = np.random.default_rng(6)
    records = [record("p1", float(t), normal_readings(rng)) for t in range(20)]
    records += [record("p1", float(t), anomalous_readings(rng)) for t in range(20, 320)]
    for i in range(0, len(records), 25):
        runtime.submit(payload(*records[i : i + 25]), "test")
    runtime.drain()
    alerts = store.list(limit=None)
    assert len(alerts) == 1
    assert alerts[0].status == "open"
    assert alerts[0].n_points == 300
    assert alerts[0].top_features[0][0] == "flow_m3h"


def test_hot_swap_loses_no_message(runtime: Runtime, registry: ModelRegistry, fitted_v2: Pipeline) -> None:
    new_version = registry.add("pump", fitted_v2)
    rng = np.random.default_rng(7)
    sent = 2000
    futures = []
    started, swapped = threading.Event(), threading.Event()

    def produce() -> None:
        for i in range(sent):
            if i == sent // 2:
                started.set()  # the swap is requested while this producer keeps submitting
            if i == 3 * sent // 4:
                assert swapped.wait(30)  # the last quarter surely arrives after the swap
            futures.append(runtime.submit(payload(record(f"p{i % 10}", float(i), normal_readings(rng))), "t"))

    producer = threading.Thread(target=produce)
    producer.start()
    assert started.wait(30)
    runtime.activate("pump", new_version)
    swapped.set()
    producer.join()
    outcomes = [o for f in futures for o in f.result(timeout=30)]
    assert len(outcomes) == sent
    assert all(isinstance(o, Decision) for o in outcomes)
    assert {o.version for o in outcomes[-sent // 4 :]} == {new_version}
    assert outcomes[0].version != new_version
    # decisions switch version once, never back
    switched = [o.version == new_version for o in sorted(outcomes, key=lambda o: o.time)]
    assert switched == sorted(switched)


def test_a_version_activated_elsewhere_is_picked_up(
    runtime: Runtime, registry: ModelRegistry, fitted_v2: Pipeline
) -> None:
    version = registry.add("pump", fitted_v2, activate=True)  # as `vigil retrain` in another process would
    rng = np.random.default_rng(8)
    for t in range(200):
        outcome = runtime.submit(payload(record("p1", float(t), normal_readings(rng))), "t").result(timeout=10)[0]
        if outcome.version == version:
            return
        threading.Event().wait(0.02)
    pytest.fail("the runtime never swapped in the version activated in the registry")


def test_restart_resumes_open_alerts_instead_of_duplicating(
    tmp_path: Path, registry: ModelRegistry, config: RuntimeConfig
) -> None:
    rng = np.random.default_rng(9)
    with SqlAlertStore(tmp_path / "a.db") as store:
        with Runtime(store, registry, config=config) as first:
            for t in range(10):
                first.submit(payload(record("p1", float(t), anomalous_readings(rng))), "t")
            first.drain()
        before = store.list()
        with Runtime(store, registry, config=config) as second:
            for t in range(10, 15):
                second.submit(payload(record("p1", float(t), anomalous_readings(rng))), "t")
            second.drain()
        after = store.list()
    assert len(before) == len(after) == 1
    assert after[0].id == before[0].id
    assert after[0].n_points == 15


def test_false_positives_raise_the_device_threshold_within_the_bounds(
    runtime: Runtime, store: SqlAlertStore, fitted: Pipeline
) -> None:
    rng = np.random.default_rng(10)
    # p1 runs hotter than the training data: its normal correlations are off, and its recent scores' 0.99
    # quantile is about three times the model's threshold, more than feedback may set on its own
    t = 0.0
    for _ in range(8):
        batch = []
        for _ in range(50):
            readings = normal_readings(rng)
            readings["flow_m3h"] += 0.35
            batch.append(record("p1", t, readings))
            t += 1.0
        runtime.submit(payload(*batch), "t")
    runtime.drain()
    flagged_before = np.mean([p["anomaly"] for p in runtime.timeline("p1")])
    assert flagged_before > 0.05
    alert = store.list(device="p1")[0]
    rejected = store.add_verdict(alert.id, "false_positive", note="runs hot", user="ana")
    model = fitted.threshold_
    expected = [1.25 * model, 1.5625 * model, 1.953125 * model, 2.0 * model, 2.0 * model]
    changes = [runtime.apply_verdict(rejected) for _ in expected]
    assert [c.new for c in changes] == pytest.approx(expected)
    assert [c.limited_by for c in changes] == ["step", "step", "step", "total", "total"]
    assert all(c.who == "ana" and c.alert_id == alert.id and c.proposed > 2 * model for c in changes)
    assert changes[-1].old == changes[-1].new  # at the ceiling: unchanged, and not recorded
    view = runtime.device_threshold("p1")
    assert [c["new"] for c in view["history"]] == pytest.approx(expected[:4])
    assert view["threshold"] == pytest.approx(2 * model) and view["guard"] == pytest.approx(1.5 * model)
    later = runtime.submit(payload(record("p1", t + 1, normal_readings(rng))), "t").result(timeout=10)[0]
    assert later.threshold == pytest.approx(1.5 * model)  # the guard caps what feedback hides
    other = runtime.submit(payload(record("p2", t + 1, normal_readings(rng))), "t").result(timeout=10)[0]
    assert other.threshold == fitted.threshold_


def test_drift_is_reported_when_scores_move(runtime: Runtime) -> None:
    rng = np.random.default_rng(11)
    for i in range(4):
        runtime.submit(payload(*[record("p1", float(i * 100 + j), normal_readings(rng)) for j in range(100)]), "t")
    runtime.drain()
    assert not runtime.drift("pump").drifted
    shifted = training_frame(seed=12, n=400).to_numpy(copy=True)
    shifted[:, 2] += 0.4
    records = [record("p2", float(j), dict(zip(SENSORS, row.tolist(), strict=True))) for j, row in enumerate(shifted)]
    runtime.submit(payload(*records), "t")
    runtime.drain()
    report = runtime.drift("pump")
    assert report.drifted, report.message


def test_drift_is_logged_when_it_starts(
    store: SqlAlertStore, registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    config = RuntimeConfig(drift_check_seconds=0.0)
    shifted = training_frame(seed=13, n=400).to_numpy(copy=True)
    shifted[:, 2] += 0.4
    records = [record("p1", float(j), dict(zip(SENSORS, row.tolist(), strict=True))) for j, row in enumerate(shifted)]
    with caplog.at_level("WARNING", logger="vigil.streaming.runtime"), Runtime(store, registry, config=config) as rt:
        rt.submit(payload(*records), "t").result(timeout=10)
        rt.drain()  # housekeeping runs between batches
        rt.drain()
    assert any("drift" in message and "vigil retrain" in message for message in caplog.messages)


def test_models_per_asset_type(tmp_path: Path, store: SqlAlertStore, fitted: Pipeline) -> None:
    from vigil.detectors.pca import PCADetector

    registry = ModelRegistry(tmp_path / "registry")
    registry.add("pump", fitted, activate=True)
    valve_data = training_frame(seed=14)[["temp_c", "pressure_bar"]].rename(columns={"temp_c": "position"})
    valve = Pipeline(PCADetector(n_components=1)).fit(valve_data)
    registry.add("valve", valve, activate=True)
    rng = np.random.default_rng(15)
    routes = [("pump-*", "pump"), ("valve-*", "valve")]
    with Runtime(store, registry, routes=routes) as runtime:
        pump = runtime.submit(payload(record("pump-1", 0.0, normal_readings(rng))), "t").result(timeout=10)[0]
        valve_reading = {"position": 0.1, "pressure_bar": 0.2}
        valve_out = runtime.submit(payload(record("valve-1", 0.0, valve_reading)), "t").result(timeout=10)[0]
        typed = {"device": "other-1", "time": 0.0, "asset_type": "valve", "readings": valve_reading}
        by_type = runtime.submit(payload(typed), "t").result(timeout=10)[0]
        wrong = runtime.submit(payload(record("valve-2", 0.0, normal_readings(rng))), "t").result(timeout=10)[0]
    assert (pump.model, valve_out.model, by_type.model) == ("pump", "valve", "valve")
    assert valve_out.version == valve.version_
    assert wrong.kind == "sensors_mismatch"


def test_a_runtime_serves_from_postgres(postgres_url: str, registry) -> None:
    rng = np.random.default_rng(0)
    with SqlAlertStore(postgres_url) as pg, Runtime(pg, registry) as runtime:
        for t in range(5):
            runtime.submit(payload(record("p1", float(t), anomalous_readings(rng))), "t")
        runtime.submit(b"nope", "t")
        runtime.drain()
        alerts = pg.list()
        assert len(alerts) == 1 and alerts[0].n_points == 5
        assert pg.count_dead_letters("invalid_json") == 1


def test_a_windowed_network_explains_its_alerts_from_the_pass_that_scored_them(
    tmp_path: Path, store: SqlAlertStore, config: RuntimeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from vigil.detectors.autoencoders import AutoencoderDetector

    pipe = Pipeline(AutoencoderDetector(latent=1, window=4, epochs=20, random_state=0)).fit(training_frame())
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("pump", pipe, activate=True)
    passes = []
    errors = AutoencoderDetector._errors
    monkeypatch.setattr(AutoencoderDetector, "_errors", lambda self, *a: passes.append(1) or errors(self, *a))

    rng = np.random.default_rng(3)
    records = [record("p1", float(t), normal_readings(rng)) for t in range(20)]
    records += [record("p1", float(t), anomalous_readings(rng)) for t in range(20, 40)]
    with Runtime(store, registry, config=config) as rt:
        passes.clear()  # loading the model scores a probe row once
        outcomes = rt.submit(payload(*records), "test").result(timeout=30)
        rt.drain()
    assert sum(o.anomaly for o in outcomes) >= 15
    # One batch of one device: the network runs once (windows go in chunks of 256) for scores and shares.
    assert len(passes) == 1
    X = np.array([[r["readings"][s] for s in pipe.feature_names_in_] for r in records])
    (alert,) = store.list(limit=None)
    assert alert.top_features[0][0] == pipe.explain(X)[-1][0][0] == "flow_m3h"
