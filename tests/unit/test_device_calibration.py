"""Per-device thresholds moved by verdicts: the bounds, the guard, the history, undo, saving and old files."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from vigil.errors import InvalidInputError
from vigil.streaming.device_calibration import (
    GUARD_MARGIN,
    MAX_RAISE,
    MAX_STEP,
    DeviceCalibration,
    ThresholdChange,
    raised,
)

MODEL = 1.21
WHEN = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def hot_device(level: float = 5.0, n: int = 300) -> DeviceCalibration:
    """A device whose recent scores all sit at ``level``: its quantile asks for far more than one step."""
    cal = DeviceCalibration(target_far=0.01, window=1000, min_samples=100)
    for t in range(n):
        cal.observe("p1", float(t), level + 0.001 * (t % 7))
    return cal


def test_one_verdict_raises_at_most_one_step_and_says_so() -> None:
    cal = hot_device()
    change = cal.recalibrate("p1", default=MODEL, peak=9.0, who="ana", alert_id="a1", time=WHEN)
    assert change.new == pytest.approx(MAX_STEP * MODEL)
    assert change.proposed > 5.0 and change.limited_by == "step"
    assert (change.who, change.alert_id, change.verdict, change.action) == ("ana", "a1", "false_positive", "verdict")
    assert change.time == "2026-03-02T08:00:00.000000+00:00"
    assert "a1" in change.reason and "×1.25 per verdict" in change.reason
    assert cal.threshold("p1", MODEL) == change.new
    assert cal.threshold("p2", MODEL) == MODEL  # other devices keep the model's threshold


def test_verdicts_stop_at_the_ceiling_and_the_defect_case_is_bounded() -> None:
    # The reported defect: one verdict moved 1.21 to 2.62. Now it takes four and ends at 2 × 1.21.
    cal = hot_device(level=2.62)
    news = [cal.recalibrate("p1", default=MODEL, who="ana").new for _ in range(6)]
    assert news[:4] == pytest.approx([1.5125, 1.890625, 2.3632812, 2.42])
    assert news[4:] == pytest.approx([2.42, 2.42])
    assert [c.limited_by for c in cal.history("p1")] == ["step", "step", "step", "total"]
    assert len(cal.history("p1")) == 4  # the verdicts that changed nothing are not in the history
    assert cal.ceiling(MODEL) == pytest.approx(MAX_RAISE * MODEL)


def test_a_false_positive_never_lowers_a_threshold_nor_goes_below_the_model() -> None:
    cal = hot_device(level=0.1)  # recent scores far below the model's threshold
    change = cal.recalibrate("p1", default=MODEL, peak=0.5)
    assert change.new == change.old == MODEL
    assert "unchanged" in change.reason and cal.history("p1") == []
    cal = hot_device(level=2.0)
    cal.recalibrate("p1", default=MODEL)
    before = cal.threshold("p1", MODEL)
    for t in range(300, 1300):
        cal.observe("p1", float(t), 0.1)  # the device calmed down: a new verdict must not lower it
    assert cal.recalibrate("p1", default=MODEL).new == before


def test_few_scores_lift_just_above_the_peak_within_the_step() -> None:
    cal = DeviceCalibration(min_samples=200)
    change = cal.recalibrate("p1", default=1.0, peak=1.1)
    assert change.new == math.nextafter(1.1, math.inf) and change.limited_by is None
    assert cal.recalibrate("p1", default=1.0, peak=float("nan")).new == change.new  # no basis: unchanged
    assert cal.recalibrate("p1", default=1.0).new == change.new


def test_scores_inside_confirmed_alerts_do_not_count_as_normal() -> None:
    cal = DeviceCalibration(target_far=0.1, window=1000, min_samples=50)
    for t in range(100):
        cal.observe("p1", float(t), 1.05 if t < 80 else 50.0)
    change = cal.recalibrate("p1", default=1.0, exclude=[(80.0, 99.0)])
    assert change.new == pytest.approx(1.05) and change.limited_by is None


def test_a_negative_model_threshold_is_raised_by_its_magnitude() -> None:
    assert raised(-2.0, 1.25) == -1.5 and raised(2.0, 1.25) == 2.5
    cal = hot_device(level=10.0)
    assert cal.recalibrate("p1", default=-2.0).new == pytest.approx(-1.5)
    assert cal.ceiling(-2.0) == pytest.approx(0.0)


def test_the_guard_is_needed_only_above_the_margin_and_names_the_change() -> None:
    cal = hot_device()
    cal.recalibrate("p1", default=MODEL, who="ana", alert_id="a1")
    assert cal.levels("p1", MODEL) == (pytest.approx(1.5125), math.inf)  # 1.25 × is below the 1.5 × guard
    for _ in range(3):
        cal.recalibrate("p1", default=MODEL, who="ana", alert_id="a1")
    threshold, guard = cal.levels("p1", MODEL)
    assert threshold == pytest.approx(2.42) and guard == pytest.approx(GUARD_MARGIN * MODEL)
    note = cal.guard_note("p1", MODEL, 2.0)
    assert "feedback guard" in note and "change 4 (ana" in note and "a1" in note and "2.42" in note
    assert cal.levels("p2", MODEL) == (MODEL, math.inf)


def test_undo_walks_back_change_by_change_and_is_recorded() -> None:
    cal = hot_device()
    first = cal.recalibrate("p1", default=MODEL, who="ana", alert_id="a1")
    second = cal.recalibrate("p1", default=MODEL, who="ben", alert_id="a2")
    with pytest.raises(InvalidInputError, match=r"change 1 .* not the latest change in force .*change 2"):
        cal.undo("p1", default=MODEL, change_id=first.id)
    undo = cal.undo("p1", default=MODEL, who="carla", change_id=second.id, time=WHEN)
    assert (undo.action, undo.undoes, undo.who, undo.old, undo.new) == ("undo", 2, "carla", second.new, first.new)
    assert "undo of change 2" in undo.reason and "a2" in undo.reason
    third = cal.recalibrate("p1", default=MODEL)
    assert third.id == 4 and third.who == "operator"
    assert cal.undo("p1", default=MODEL).undoes == 4
    assert cal.undo("p1", default=MODEL).undoes == 1
    assert cal.threshold("p1", MODEL) == MODEL and cal.overrides() == {}
    with pytest.raises(InvalidInputError, match="no threshold change to undo"):
        cal.undo("p1", default=MODEL)
    assert [c.action for c in cal.history("p1")] == ["verdict", "verdict", "undo", "verdict", "undo", "undo"]


def test_state_round_trips_through_json() -> None:
    cal = hot_device()
    cal.recalibrate("p1", default=MODEL, who="ana", alert_id="a1")
    cal.recalibrate("p1", default=MODEL, who="ana", alert_id="a2")
    cal.undo("p1", default=MODEL, who="ana")
    cal.recalibrate("p2", default=MODEL, peak=1.3)
    back = DeviceCalibration()
    back.restore(json.loads(json.dumps(cal.state())), default=MODEL)
    assert back.overrides() == cal.overrides()
    assert back.history("p1") == cal.history("p1") and back.history("p2") == cal.history("p2")
    assert back.undo("p1", default=MODEL).undoes == 1  # undo continues where the saved history stopped


def test_a_file_from_before_the_bounds_is_limited_and_that_is_recorded() -> None:
    cal = DeviceCalibration()
    cal.restore({"p1": 2.62, "p2": 1.3, "p3": 0.5}, default=MODEL, time=WHEN)
    assert cal.threshold("p1", MODEL) == pytest.approx(2.42)
    (limited,) = cal.history("p1")
    assert (limited.action, limited.who, limited.proposed, limited.new) == ("restore", "vigil", 2.62, 2.42)
    assert "outside" in limited.reason and limited.time == "2026-03-02T08:00:00.000000+00:00"
    assert cal.history("p2")[0].reason == "threshold saved before changes were recorded"
    assert cal.threshold("p3", MODEL) == MODEL and "outside" in cal.history("p3")[0].reason
    assert cal.undo("p1", default=MODEL).new == MODEL  # undo goes back to the model, never to 2.62


def test_bounds_tightened_since_saving_are_applied_and_recorded() -> None:
    cal = hot_device()
    for _ in range(4):
        cal.recalibrate("p1", default=MODEL)
    strict = DeviceCalibration(max_raise=1.5)
    strict.restore(cal.state(), default=MODEL)
    assert strict.threshold("p1", MODEL) == pytest.approx(1.5 * MODEL)
    assert strict.history("p1")[-1].action == "restore"


@pytest.mark.parametrize(
    ("document", "match"),
    [
        ({"p1": float("inf")}, "not finite"),
        ({"p1": "high"}, "not finite"),
        ({"format": 9}, "format 9"),
        ({"format": 2, "thresholds": {}, "history": {"p1": [{"id": 1}]}}, "not a threshold change"),
        ([1.0], "JSON object"),
    ],
)
def test_a_broken_saved_calibration_is_refused_with_its_reason(document, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        DeviceCalibration().restore(document, default=MODEL)


@pytest.mark.parametrize("name", ["max_step", "max_raise", "guard_margin"])
@pytest.mark.parametrize("value", [0.9, float("inf"), "2"])
def test_bounds_must_be_factors_of_at_least_one(name: str, value) -> None:
    with pytest.raises(InvalidInputError, match=name):
        DeviceCalibration(**{name: value})


def test_a_change_round_trips_and_a_bad_action_is_refused() -> None:
    change = ThresholdChange(1, "p1", "2026-03-02T08:00:00.000000+00:00", "ana", "verdict", "why", 1.0, 1.25)
    assert ThresholdChange.from_dict(change.to_dict(), "x") == change
    with pytest.raises(InvalidInputError, match="action"):
        ThresholdChange.from_dict({**change.to_dict(), "action": "delete"}, "x")
