"""The operating-point view: expected cost per day of candidate thresholds, from validation data only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.alarms import AlarmStage
from vigil.alarms.rules import make_alarm_stage
from vigil.cli import main
from vigil.errors import InvalidInputError
from vigil.evaluation.operating_points import cost_table, operating_points
from vigil.evaluation.runner import EvaluationPart, evaluate_parts
from vigil.pipeline import Pipeline
from vigil.registry import make_detector


def _validation(seed: int = 0):
    rng = np.random.default_rng(seed)
    clean = rng.gamma(2.0, 0.5, size=3600)
    faulty = rng.gamma(2.0, 0.5, size=1200)
    truth = np.zeros(1200, dtype=bool)
    for start, size in ((100, 40), (500, 80), (900, 20)):
        faulty[start : start + size] += np.linspace(0.5, 6.0, size)  # ramps: found later at higher levels
        truth[start : start + size] = True
    return clean, faulty, truth


def test_each_row_costs_what_its_rates_say_and_the_choice_is_marked():
    clean, faulty, truth = _validation()
    view = operating_points(
        clean, faulty, truth, AlarmStage(), 3.0, cost_false_alarm=20, cost_fault_hour=600, faults_per_day=2
    )
    chosen = [r for r in view["rows"] if r["chosen"]]
    assert (
        len(chosen) == 1 and chosen[0]["threshold"] == 3.0 and view["chosen_cost_per_day"] == chosen[0]["cost_per_day"]
    )
    for row in view["rows"]:
        expected = 20 * row["false_alarms_per_day"] + 600 * 2 * row["undetected_hours_per_fault"]
        assert row["cost_per_day"] == pytest.approx(expected)
    assert view["cheapest"] == min(view["rows"], key=lambda r: r["cost_per_day"])["label"]
    assert view["validation_days"] == pytest.approx(3600 / 86_400)
    assert "Vigil's choice" in cost_table(view) and "cheapest" in cost_table(view)


def test_free_false_alarms_favour_the_lowest_level_and_free_misses_the_highest():
    clean, faulty, truth = _validation(1)
    stage = AlarmStage()
    misses_free = operating_points(clean, faulty, truth, stage, 3.0, cost_false_alarm=1, cost_fault_hour=0)
    alarms_free = operating_points(clean, faulty, truth, stage, 3.0, cost_false_alarm=0, cost_fault_hour=1)
    assert misses_free["cheapest"] == "q1"  # the largest held-out score raises no false alarm there
    cheapest = next(r for r in alarms_free["rows"] if r["label"] == alarms_free["cheapest"])
    assert cheapest["undetected_hours_per_fault"] == min(r["undetected_hours_per_fault"] for r in alarms_free["rows"])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), low=st.floats(0.5, 3.0), step=st.floats(0.01, 3.0))
def test_a_higher_threshold_never_finds_a_fault_sooner_nor_raises_more_flagged_rows(seed, low, step):
    clean, faulty, truth = _validation(seed)
    a = operating_points(clean, faulty, truth, AlarmStage(), low, cost_false_alarm=1, cost_fault_hour=1, levels=())
    b = operating_points(
        clean, faulty, truth, AlarmStage(), low + step, cost_false_alarm=1, cost_fault_hour=1, levels=()
    )
    assert b["rows"][0]["undetected_hours_per_fault"] >= a["rows"][0]["undetected_hours_per_fault"]
    assert b["rows"][0]["event_recall"] <= a["rows"][0]["event_recall"]


def test_the_pipelines_alarm_rule_decides_each_candidate():
    clean, faulty, truth = _validation(2)
    plain = operating_points(clean, faulty, truth, AlarmStage(), 2.5, cost_false_alarm=1, cost_fault_hour=1)
    delayed = operating_points(
        clean, faulty, truth, make_alarm_stage("plain", on_delay=(5, 5)), 2.5, cost_false_alarm=1, cost_fault_hour=1
    )
    assert delayed["rows"][0]["false_alarms_per_day"] < plain["rows"][0]["false_alarms_per_day"]
    assert delayed["rows"][0]["undetected_hours_per_fault"] > plain["rows"][0]["undetected_hours_per_fault"]


@pytest.mark.parametrize(
    "costs", [{"cost_false_alarm": -1.0}, {"cost_fault_hour": float("nan")}, {"faults_per_day": True}]
)
def test_bad_costs_are_refused_by_name(costs):
    clean, faulty, truth = _validation()
    arguments = {"cost_false_alarm": 1.0, "cost_fault_hour": 1.0, **costs}
    with pytest.raises(InvalidInputError, match=next(iter(costs))):
        operating_points(clean, faulty, truth, AlarmStage(), 3.0, **arguments)


def _part(y_test):
    rng = np.random.default_rng(5)
    t = rng.normal(size=(1400, 1))
    X = np.hstack([t, 2 * t, -t]) + 0.1 * rng.normal(size=(1400, 3))
    return EvaluationPart("p", X[:1000], X[1000:], y_test)


def test_the_view_never_reads_test_labels():
    y = np.zeros(400, dtype=bool)
    y[100:150] = True
    costs = {"cost_false_alarm": 10.0, "cost_fault_hour": 100.0}

    def view(labels):
        make = lambda: Pipeline(make_detector("pca", n_components=1))  # noqa: E731
        return evaluate_parts([_part(labels)], make, progress=False, costs=costs)["operating_points"]

    reference = view(y)
    assert reference["rows"] and reference["parts"] == 1
    assert view(np.random.default_rng(0).permutation(y)) == reference
    assert view(~y) == reference


def test_the_command_line_needs_both_costs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "t.csv"
    rows = rng.normal(size=(600, 3))
    np.savetxt(path, np.c_[rows, np.r_[np.zeros(550), np.ones(50)]], delimiter=",", header="a,b,c,label", comments="")
    base = ["evaluate", "--train", str(path), "--train-rows", "400", "--label", "label", "--detector", "pca", "--quiet"]
    assert main([*base, "--cost-false-alarm", "5"]) == 2
    assert "needs both --cost-false-alarm and --cost-fault-hour" in capsys.readouterr().err
    assert main([*base, "--cost-false-alarm", "5", "--cost-fault-hour", "50", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "| calibrated |" in out and "Vigil's choice" in out
