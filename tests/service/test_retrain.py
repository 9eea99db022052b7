"""Champion/challenger retraining: confirmed anomalies left out, activation only when not worse, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from service_helpers import SENSORS, normal_readings, payload, record, training_frame

from vigil.alarms.rules import make_alarm_stage
from vigil.alerts import AlertTracker, SqlAlertStore
from vigil.detectors.forecasters import TCNForecasterDetector
from vigil.detectors.pca import PCADetector
from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline
from vigil.service.cli import main
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.retrain import load_recent, retrain, retrain_many
from vigil.streaming.runtime import Runtime, RuntimeConfig


def recent(frame: pd.DataFrame, device: str = "p1", start: float = 0.0) -> pd.DataFrame:
    return frame.assign(device=device, time=start + np.arange(len(frame), dtype=float))


def confirm(store: SqlAlertStore, device: str, start: float, end: float) -> None:
    tracker = AlertTracker(model_version="old", device_gap_seconds=1e9)
    events = []
    for t in (start, end):
        events += tracker.update(device, t, 9.0, 1.0, True, {"flow_m3h": 1.0})
    alert = store.upsert(events[-1].alert)
    store.add_verdict(alert.id, "confirmed")


def test_a_better_challenger_is_activated_and_confirmed_anomalies_are_left_out(
    registry: ModelRegistry, store: SqlAlertStore
) -> None:
    champion = registry.active("pump")
    new_regime = training_frame(seed=3, n=2000, shift=0.8)  # the plant now runs at another operating point
    new_regime.loc[500:549, "flow_m3h"] += 3.0  # an incident operators confirmed
    new_regime.loc[1900:1939, "flow_m3h"] += 3.0  # another, in the held-back part
    confirm(store, "p1", 500.0, 549.0)
    confirm(store, "p1", 1900.0, 1939.0)
    result = retrain(registry, "pump", store=store, data=recent(new_regime))
    assert result.activated, result.reason
    assert registry.active("pump") == result.challenger != champion
    assert result.n_excluded == 50
    assert result.challenger_far < result.champion_far
    assert result.challenger_recall == 1.0
    versions = [info.version for info in registry.versions("pump")]
    assert versions == [champion, result.challenger]  # the champion stays available for rollback
    assert registry.rollback("pump") == champion


def test_a_worse_challenger_is_stored_but_not_activated(registry: ModelRegistry, store: SqlAlertStore) -> None:
    champion = registry.active("pump")
    data = training_frame(seed=4, n=2000)
    rng = np.random.default_rng(4)
    polluted = rng.random(1500) < 0.3  # unlabelled faults in the training part teach the challenger they are normal
    data.loc[np.flatnonzero(polluted), "flow_m3h"] += 1.0
    data.loc[1900:1999, "flow_m3h"] += 1.0
    confirm(store, "p1", 1900.0, 1999.0)
    result = retrain(registry, "pump", store=store, data=recent(data))
    assert not result.activated
    assert "recall" in result.reason
    assert registry.active("pump") == champion
    assert result.challenger in [info.version for info in registry.versions("pump")]


def test_retrain_reads_what_the_service_saved(registry: ModelRegistry, store: SqlAlertStore) -> None:
    config = RuntimeConfig(recent_flush_seconds=3600)
    rng = np.random.default_rng(5)
    with Runtime(store, registry, config=config) as runtime:
        records = [record(f"p{i % 2}", float(i), normal_readings(rng)) for i in range(600)]
        runtime.submit(payload(*records), "t").result(timeout=10)
    saved = load_recent(registry, "pump")  # written when the runtime stopped
    assert len(saved) == 600
    assert list(saved.columns) == ["device", "time", *SENSORS]
    assert not list(registry.model_dir("pump").glob(".recent-*"))  # the temporary file was renamed into place
    result = retrain(registry, "pump", store=store, activate=False)
    assert result.n_train + result.n_holdback == 600


def test_a_restarted_service_keeps_the_rows_it_saved_before(registry: ModelRegistry, store: SqlAlertStore) -> None:
    config = RuntimeConfig(recent_flush_seconds=3600)
    rng = np.random.default_rng(8)
    with Runtime(store, registry, config=config) as runtime:
        records = [record("p1", float(i), normal_readings(rng)) for i in range(500)]
        runtime.submit(payload(*records), "t").result(timeout=10)
    with Runtime(store, registry, config=config) as runtime:  # a restart: one more row, then a save
        runtime.submit(payload(record("p1", 500.0, normal_readings(rng))), "t").result(timeout=10)
    saved = load_recent(registry, "pump")
    assert len(saved) == 501
    assert saved["time"].tolist() == [float(i) for i in range(501)]


def test_retrain_reads_iso_times(registry: ModelRegistry) -> None:
    data = recent(training_frame(seed=6, n=800, shift=0.8))
    start = pd.Timestamp("2026-03-02T08:40:00")
    data["time"] = (start + pd.to_timedelta(data["time"], unit="s")).dt.strftime("%Y-%m-%dT%H:%M:%S")
    result = retrain(registry, "pump", data=data, activate=False)
    assert result.n_train + result.n_holdback == 800
    data.loc[3, "time"] = "yesterday"
    with pytest.raises(InvalidInputError, match=r"row 3: 'yesterday' is neither POSIX seconds nor an ISO 8601"):
        retrain(registry, "pump", data=data)


def test_retrain_without_saved_data_is_a_clear_error(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidInputError, match="no recent telemetry"):
        retrain(registry, "pump")


def test_the_retrain_command(tmp_path: Path, registry: ModelRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "recent.csv"
    recent(training_frame(seed=6, n=1000, shift=0.8)).to_csv(csv, index=False)
    out = tmp_path / "result.json"
    base = ["retrain", "--registry", str(registry.root), "--data", str(csv)]
    assert main([*base, "--model", "pump", "--json", str(out)]) == 0
    assert "activated" in capsys.readouterr().out
    assert out.is_file()
    assert main([*base, "--model", "nope"]) == 2


def test_the_challenger_keeps_the_champions_alarm_rule_and_smoothing(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    champion = Pipeline(PCADetector(n_components=1), smoothing=3, alarm=make_alarm_stage("recommended"))
    registry.add("pump", champion.fit(training_frame()), activate=True)
    result = retrain(registry, "pump", data=recent(training_frame(seed=6, n=800, shift=0.8)), activate=False)
    challenger = registry.load("pump", result.challenger)
    assert challenger.smoothing == 3
    assert challenger.alarm_.to_dict()["policy"] == registry.load("pump").alarm_.to_dict()["policy"]
    assert not challenger.alarm_.is_plain


def tcn() -> Pipeline:
    return Pipeline(TCNForecasterDetector(window=8, filters=4, epochs=3, random_state=0))


def test_many_models_retrain_as_one_fleet_each_as_it_would_alone(tmp_path: Path) -> None:
    def registry_of(names: list[str]) -> ModelRegistry:
        registry = ModelRegistry(tmp_path / "-".join(names))
        for i, name in enumerate(names):
            registry.add(name, tcn().fit(training_frame(seed=10 + i, n=400)), activate=True)
        return registry

    names = ["pump-1", "pump-2", "fan-1"]
    tables = {name: recent(training_frame(seed=20 + i, n=600, shift=0.3)) for i, name in enumerate(names)}
    tables["fan-1"] = tables["fan-1"].drop(columns="flow_m3h")  # this one cannot be retrained
    fleet = retrain_many(registry_of(names), names, data=tables, activate=False)
    assert list(fleet) == names
    assert isinstance(fleet["fan-1"], InvalidInputError) and "model fan-1: " in str(fleet["fan-1"])
    for name in ("pump-1", "pump-2"):
        alone = retrain(registry_of([name]), name, data=tables[name], activate=False)
        assert fleet[name].challenger == alone.challenger  # the same fitted model: its content hash
        assert fleet[name].challenger_far == alone.challenger_far


def test_the_retrain_command_takes_several_models_and_reports_each(
    tmp_path: Path, registry: ModelRegistry, store: SqlAlertStore, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(5)
    with Runtime(store, registry, config=RuntimeConfig(recent_flush_seconds=3600)) as runtime:
        runtime.submit(payload(*[record("p1", float(i), normal_readings(rng)) for i in range(600)]), "t").result(10)
    registry.add("fan", Pipeline(PCADetector(n_components=1)).fit(training_frame(seed=2)), activate=True)
    out = tmp_path / "result.json"
    assert main(["retrain", "--registry", str(registry.root), "--model", "all", "--json", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("retrained pump: challenger pca-")
    assert "vigil retrain: error: model fan: " not in captured.err  # load_recent names the model itself
    assert "no recent telemetry saved for model 'fan'" in captured.err
    document = json.loads(out.read_text())
    assert set(document) == {"fan", "pump"} and "error" in document["fan"] and document["pump"]["n_train"] == 450
