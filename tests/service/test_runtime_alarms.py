"""The runtime decides with the pipeline's own alarm stage: streamed decisions equal the batch ones, and the
adaptive state of every device survives a restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from service_helpers import anomalous_readings, normal_readings, payload, record, training_frame

from vigil.alarms import AlarmPolicy, AlarmStage
from vigil.alerts import SqlAlertStore
from vigil.calibration.online import RollingBaselineThreshold
from vigil.detectors.pca import PCADetector
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Decision, Runtime, RuntimeConfig


def _pipeline() -> Pipeline:
    stage = AlarmStage(
        threshold=RollingBaselineThreshold(memory=30), policy=AlarmPolicy(on_delay=3, window=5, off_delay=4)
    )
    return Pipeline(PCADetector(n_components=1), alarm=stage).fit(training_frame())


def _series(seed: int, n: int = 240) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        values = anomalous_readings(rng) if 100 <= i < 130 or i in (40, 41, 170) else normal_readings(rng)
        rows.append(record("p1", float(i), values))
    return rows


def _stream(tmp_path: Path, pipe: Pipeline, records: list[dict], chunk: int, store_name: str) -> list[Decision]:
    registry = ModelRegistry(tmp_path / "registry")
    if registry.active("pump") is None:
        registry.add("pump", pipe, activate=True)
    config = RuntimeConfig(device_gap_seconds=5.0, registry_poll_seconds=60.0)
    with SqlAlertStore(tmp_path / store_name) as store, Runtime(store, registry, config=config) as runtime:
        futures = [runtime.submit(payload(*records[i : i + chunk]), "http") for i in range(0, len(records), chunk)]
        return [o for f in futures for o in f.result(timeout=20)]


def test_streamed_alarms_equal_the_pipeline_decisions(tmp_path: Path) -> None:
    pipe = _pipeline()
    records = _series(3)
    X = np.array([[r["readings"][s] for s in pipe.feature_names_in_] for r in records])
    expected = pipe.decide(pipe.score_samples(X), timestamps=[r["time"] for r in records])
    decisions = _stream(tmp_path, pipe, records, chunk=7, store_name="a.db")
    assert all(isinstance(d, Decision) for d in decisions)
    assert [d.anomaly for d in decisions] == expected.active.tolist()
    assert np.allclose([d.threshold for d in decisions], expected.thresholds)
    # on-delay: the isolated anomalous readings at 40, 41 and 170 raise nothing, the incident does
    assert not any(d.anomaly for d in decisions[35:50]) and any(d.anomaly for d in decisions[100:130])


def test_adaptive_state_survives_a_restart(tmp_path: Path) -> None:
    pipe = _pipeline()
    records = _series(4)
    whole = _stream(tmp_path / "one", pipe, records, chunk=10, store_name="a.db")
    first = _stream(tmp_path / "two", pipe, records[:150], chunk=10, store_name="a.db")
    second = _stream(tmp_path / "two", pipe, records[150:], chunk=10, store_name="a.db")
    assert [d.threshold for d in first + second] == [d.threshold for d in whole]
    assert [d.anomaly for d in first + second] == [d.anomaly for d in whole]
    assert (tmp_path / "two" / "registry" / "pump" / "alarm-state").is_dir()
