"""Partial records through a real runtime: each sensor's policy refuses with the reason, or scores and says so."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.alerts import SqlAlertStore
from vigil.detectors.mahalanobis import MahalanobisDetector
from vigil.detectors.pca import PCADetector
from vigil.pipeline import Pipeline
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Decision, Redelivery, Runtime
from vigil.streaming.sensor_policy import SensorPolicy, apply_policies

POLICIES = {
    "t": SensorPolicy(unit="degC", low=0, high=100),
    "f": SensorPolicy(low=0, high=10, on_out_of_range="score", numeric_strings=True, on_missing="score_without"),
    "p": SensorPolicy(low=0, high=5, on_out_of_range="missing"),
}
# A model that can score without a sensor: its flow and pressure may be scored without.
BOILER = {"f": SensorPolicy(on_missing="score_without"), "p": SensorPolicy(on_missing="score_without")}


@pytest.fixture
def runtime(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 4, size=(300, 1))
    frame = pd.DataFrame(np.hstack([20 * base, base, base + 0.1 * rng.normal(size=(300, 1))]), columns=["t", "f", "p"])
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("pump", Pipeline(PCADetector(n_components=1)).fit(frame), activate=True)
    registry.add("fan", Pipeline(PCADetector(n_components=1)).fit(frame), activate=True)
    registry.add("boiler", Pipeline(MahalanobisDetector(random_state=0)).fit(frame), activate=True)
    routes = [("pump-*", "pump"), ("fan-*", "fan"), ("boiler-*", "boiler")]
    policies = {"pump": POLICIES, "boiler": BOILER}
    with (
        SqlAlertStore(tmp_path / "alerts.db") as store,
        Runtime(store, registry, routes=routes, sensor_policies=policies) as rt,
    ):
        yield rt


def send(runtime, device, t, readings, quality=None):
    record = {"device": device, "time": t, "readings": readings}
    if quality:
        record["quality"] = quality
    (outcome,) = runtime.submit(json.dumps(record).encode(), "http").result(timeout=10)
    return outcome


def test_each_policy_refuses_or_scores_and_says_what_it_did(runtime):
    ok = {"t": 40.0, "f": 2.0, "p": 2.0}
    outcome = send(runtime, "pump-1", 1, {**ok, "t": 120.0})
    assert isinstance(outcome, DeadLetter)
    assert outcome.kind == "out_of_range"
    assert outcome.reason == "readings (device=pump-1, record): 't' = 120 above its valid range [0, 100] degC"

    outcome = send(runtime, "pump-1", 2, {**ok, "f": 12.0})
    assert isinstance(outcome, Decision)
    assert outcome.note == "'f' = 12 above its valid range [0, 10], scored as it is"

    outcome = send(runtime, "pump-1", 3, {**ok, "f": "2.5"})
    assert isinstance(outcome, Decision)
    assert outcome.note == "'f' sent as text '2.5', read as 2.5"

    for t, readings, kind, words in [
        (4, {**ok, "f": "2.5 m3/h"}, "wrong_type", "x['f'] is not a number: '2.5 m3/h'"),
        (5, {**ok, "t": "40"}, "wrong_type", "x['t'] is not a number: '40'"),  # t does not accept text
        (6, {**ok, "t": None}, "missing_value", "no value for 't' (BadSensorFailure (node ns=2;s=P1.T))"),
        (7, {**ok, "f": None}, "missing_value", "on_missing is 'score_without' but model pump (PCADetector)"),
        (8, {**ok, "p": 9.0}, "missing_value", "no value for 'p' (9 is above its valid range [0, 5])"),
    ]:
        quality = {"t": "BadSensorFailure (node ns=2;s=P1.T)"} if readings["t"] is None else None
        outcome = send(runtime, "pump-1", t, readings, quality)
        assert isinstance(outcome, DeadLetter), readings
        assert outcome.kind == kind
        assert words.replace("x[", "readings[") in outcome.reason

    partial = runtime.metrics.snapshot()["partial_readings"]
    assert partial == {"out_of_range": 3, "numeric_string": 1, "missing": 3}
    dead = runtime.metrics.snapshot()["dead_letters"]
    assert dead == {"out_of_range": 1, "wrong_type": 2, "missing_value": 3}


def test_a_model_that_can_scores_without_the_sensor_and_says_so(runtime):
    ok = {"t": 40.0, "f": 2.0, "p": 2.0}
    outcome = send(runtime, "boiler-1", 1, {**ok, "f": None}, {"f": "BadSensorFailure (node ns=2;s=B1.F)"})
    assert isinstance(outcome, Decision) and not outcome.anomaly
    assert outcome.note == "scored without 'f' (BadSensorFailure (node ns=2;s=B1.F))"
    outcome = send(runtime, "boiler-1", 2, {"t": 40.0, "f": 2.0})  # p left out of the record
    assert isinstance(outcome, Decision) and outcome.note == "scored without 'p' (not in the record)"
    # Temperature far from what pressure says: found on the sensors that remain, and explained by them.
    broken = {"t": 75.0, "f": None, "p": 1.2}
    outcome = send(runtime, "boiler-1", 3, broken, {"f": "BadNotConnected"})
    assert isinstance(outcome, Decision) and outcome.anomaly and outcome.alert_id is not None
    assert isinstance(send(runtime, "boiler-1", 3, broken, {"f": "BadNotConnected"}), Redelivery)
    (alert,) = runtime.store.list(device="boiler-1")
    shares = dict(alert.top_features)
    assert shares.get("f", 0.0) == 0.0 and alert.top_features[0][0] in ("t", "p")
    points = runtime.timeline("boiler-1")
    json.dumps(points, allow_nan=False)  # a sensor scored without is null, not NaN
    assert [p["values"]["f"] for p in points] == [None, 2.0, None]
    assert points[1]["values"]["p"] is None
    outcome = send(runtime, "boiler-1", 4, {"f": 2.0, "p": 2.0})  # t's policy is the default: refused
    assert isinstance(outcome, DeadLetter) and outcome.kind == "sensors_mismatch"
    assert runtime.metrics.snapshot()["partial_readings"]["missing"] == 4  # the redelivery counted too


def test_a_model_without_policies_still_refuses_text_and_nulls(runtime):
    outcome = send(runtime, "fan-1", 1, {"t": "29.8", "f": 2.0, "p": 2.0})
    assert isinstance(outcome, DeadLetter)
    assert outcome.kind == "wrong_type"
    outcome = send(runtime, "fan-1", 2, {"t": None, "f": 2.0, "p": 2.0}, {"t": "BadNotConnected"})
    assert outcome.kind == "missing_value"
    assert "'t' (BadNotConnected)" in outcome.reason


def test_declared_assets_are_listed_before_they_send_and_reported_when_silent(runtime):
    runtime.declare("pump-7", "pump", silent_after=0.3)
    (listed,) = [d for d in runtime.devices() if d["device"] == "pump-7"]
    assert listed["declared"] is True
    assert listed["points"] == 0
    assert listed["silent"] is False
    deadline = time.monotonic() + 10
    while not next(d for d in runtime.devices() if d["device"] == "pump-7")["silent"]:
        assert time.monotonic() < deadline, "the silent asset was never reported"
        time.sleep(0.05)
    assert isinstance(send(runtime, "pump-7", 1, {"t": 40.0, "f": 2.0, "p": 2.0}), Decision)
    listed = next(d for d in runtime.devices() if d["device"] == "pump-7")
    assert listed["silent"] is False
    assert listed["points"] == 1


readings = st.dictionaries(
    st.sampled_from(["t", "f", "p", "q"]),
    st.one_of(
        st.none(),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
        st.sampled_from(["1.5", "-3", "2e1", "nan", "inf", "0x10", "1_000", " 7 ", "abc", ""]),
    ),
    min_size=1,
)


@given(readings)
def test_policies_never_change_a_number_and_never_pass_on_what_they_should_refuse(values):
    result = apply_policies(values, None, POLICIES)
    if result.rejection is not None:
        assert result.values is None
        return
    for name, value in result.values.items():
        sent = values[name]
        if isinstance(sent, float):
            assert value == sent  # numbers pass unchanged (out of range ones only where the policy scores them)
            policy = POLICIES.get(name, SensorPolicy())
            if policy.check(sent) is not None:
                assert policy.on_out_of_range == "score"
        elif isinstance(sent, str) and isinstance(value, float):
            assert POLICIES.get(name, SensorPolicy()).numeric_strings
            assert math.isfinite(value) and value == float(sent)
    for name, value in values.items():
        if value is None:
            assert name in result.missing and POLICIES.get(name, SensorPolicy()).on_missing == "score_without"
