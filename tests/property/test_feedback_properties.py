"""Invariants of feedback on per-device thresholds, over any sequence of scores, verdicts and undos."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.streaming.device_calibration import DeviceCalibration, raised

finite = st.floats(min_value=-50.0, max_value=50.0, allow_nan=False, allow_infinity=False)
factor = st.floats(min_value=1.0, max_value=3.0)
operation = st.one_of(
    st.tuples(st.just("observe"), st.lists(finite, min_size=1, max_size=40)),
    st.tuples(st.just("verdict"), st.one_of(st.none(), finite)),
    st.tuples(st.just("undo"), st.none()),
)


@settings(max_examples=200, deadline=None)
@given(
    default=finite.filter(lambda x: abs(x) > 1e-3),
    max_step=factor,
    max_raise=factor,
    margin=factor,
    operations=st.lists(operation, max_size=30),
)
def test_any_feedback_stays_in_bounds_never_hides_the_guard_and_undoes_exactly(
    default: float, max_step: float, max_raise: float, margin: float, operations
) -> None:
    cal = DeviceCalibration(target_far=0.05, window=100, min_samples=20, max_step=max_step,
                            max_raise=max_raise, guard_margin=margin)  # fmt: skip
    before: dict[int, float] = {}  # change id -> the threshold just before it
    t = 0.0
    for kind, arg in operations:
        current = cal.threshold("p1", default)
        if kind == "observe":
            for score in arg:
                cal.observe("p1", t, score)
                t += 1.0
            continue
        if kind == "verdict":
            change = cal.recalibrate("p1", default=default, peak=arg)
            assert current <= change.new <= max(current, raised(current, max_step)) + 1e-9 * abs(current)
            if change.new != change.old:
                before[change.id] = current
        else:
            target = cal.in_force("p1")
            if target is None:
                continue
            change = cal.undo("p1", default=default)
            assert cal.threshold("p1", default) == before[target.id]  # exactly the value before that change
        threshold = cal.threshold("p1", default)
        assert default <= threshold <= max(default, cal.ceiling(default))
        # No score above the guard is ever hidden: the floor the runtime uses is at most the guard.
        assert min(cal.levels("p1", default)) <= max(default, raised(default, margin))
    saved = DeviceCalibration(max_step=max_step, max_raise=max_raise, guard_margin=margin)
    saved.restore(cal.state(), default=default)
    assert saved.threshold("p1", default) == cal.threshold("p1", default)
    assert saved.history("p1") == cal.history("p1")
    while cal.in_force("p1") is not None:
        cal.undo("p1", default=default)
    assert cal.threshold("p1", default) == default  # undoing everything gives the model's threshold back


@settings(max_examples=100, deadline=None)
@given(default=finite, saved=st.dictionaries(st.text(min_size=1, max_size=5), finite, max_size=5))
def test_a_file_without_history_is_always_brought_within_bounds(default: float, saved: dict[str, float]) -> None:
    cal = DeviceCalibration()
    cal.restore(saved, default=default)
    for device in saved:
        assert default <= cal.threshold(device, default) <= max(default, cal.ceiling(default))
        assert cal.history(device)[-1].action == "restore"
        assert not math.isnan(cal.threshold(device, default))
