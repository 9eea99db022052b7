"""Invariants of the alarm stage: annunciation rules, adaptation guards, and streaming equal to batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vigil.alarms import AlarmPolicy, AlarmStage, AlarmState
from vigil.calibration.online import make_online_threshold

CALIBRATION = np.linspace(0.0, 1.0, 200)
KINDS = [
    ("fixed", {}),
    ("baseline", {"memory": 20}),
    ("conformal", {"alpha": 0.05, "gamma": 0.05}),
    ("spot", {"risk": 0.01, "level": 0.9}),
    ("spot", {"risk": 0.01, "level": 0.9, "depth": 5}),
]

scores_strategy = arrays(np.float64, st.integers(1, 300), elements=st.floats(-1.0, 5.0))
policies = st.builds(
    lambda k, extra, off, deadband, holdoff, bypass: AlarmPolicy(
        on_delay=k, window=k + extra, off_delay=off, deadband=deadband, holdoff=holdoff, bypass=bypass
    ),
    st.integers(1, 6),
    st.integers(0, 6),
    st.integers(1, 8),
    st.sampled_from([0.0, 0.1, 0.5]),
    st.integers(0, 10),
    st.sampled_from([None, 1.5, 3.0]),
)


def _stage(policy: AlarmPolicy, kind: str = "fixed", params: dict | None = None, **kwargs) -> AlarmStage:
    online = make_online_threshold(kind, **(params or {}))
    return AlarmStage(threshold=online, policy=policy, **kwargs).fit(CALIBRATION, threshold=1.0)


@settings(max_examples=60, deadline=None)
@given(scores=scores_strategy, policy=policies, kind=st.sampled_from(KINDS), cut=st.integers(0, 300))
def test_streamed_in_pieces_equals_batch(scores, policy, kind, cut):
    stage = _stage(policy, *kind, guard_window=30)
    whole = stage.run(scores)
    state = stage.start()
    first = stage.run(scores[:cut], state)
    # the state survives a save/restore between the two pieces, as across a service restart
    state = AlarmState.from_dict(state.to_dict())
    second = stage.run(scores[cut:], state)
    for field in ("flagged", "active", "raised", "thresholds", "learned"):
        joined = np.concatenate([getattr(first, field), getattr(second, field)])
        np.testing.assert_array_equal(joined, getattr(whole, field), err_msg=field)


@settings(max_examples=60, deadline=None)
@given(scores=scores_strategy, k=st.integers(1, 6), extra=st.integers(0, 6))
def test_on_delay_never_alarms_on_fewer_than_k_hits(scores, k, extra):
    policy = AlarmPolicy(on_delay=k, window=k + extra)
    run = _stage(policy).run(scores)
    flags = run.flagged.astype(int)
    for i in np.flatnonzero(run.raised):
        window = flags[max(0, i - policy.window + 1) : i + 1]
        assert window.sum() >= k, (i, window)
    if k > 1:
        # a lone flag (no other flag within the window) never raises an alarm
        lone = [i for i in np.flatnonzero(flags) if flags[max(0, i - policy.window + 1) : i + policy.window].sum() == 1]
        assert not run.raised[lone].any()


@settings(max_examples=60, deadline=None)
@given(scores=scores_strategy, policy=policies, kind=st.sampled_from(KINDS))
def test_a_reading_above_the_bypass_level_is_always_in_alarm(scores, policy, kind):
    stage = _stage(policy, *kind, guard_window=30)
    run = stage.run(scores)
    if policy.bypass is None:
        return
    above = scores > np.array([policy.bypass_level(level) for level in run.thresholds])
    assert run.active[above].all()


@settings(max_examples=60, deadline=None)
@given(scores=scores_strategy, policy=policies, kind=st.sampled_from(KINDS))
def test_the_bypass_changes_nothing_while_no_reading_reaches_it(scores, policy, kind):
    # Until the first reading beyond the bypass level, a rule with a bypass is the rule without one.
    with_bypass = AlarmPolicy(**{**policy.to_dict(), "bypass": 3.0})
    without = AlarmPolicy(**{**policy.to_dict(), "bypass": None})
    plain_run = _stage(without, *kind, guard_window=30).run(scores)
    levels = np.array([with_bypass.bypass_level(level) for level in plain_run.thresholds])
    bypass_run = _stage(with_bypass, *kind, guard_window=30).run(scores)
    if (scores <= levels).all():
        for field in ("flagged", "active", "raised", "thresholds", "learned"):
            np.testing.assert_array_equal(getattr(bypass_run, field), getattr(plain_run, field), err_msg=field)
    else:
        first = int(np.flatnonzero(scores > levels)[0])
        # up to the first reading beyond the bypass level the two runs agree
        np.testing.assert_array_equal(bypass_run.active[:first], plain_run.active[:first])
        assert bypass_run.active[first]


def test_bypass_alarms_one_far_reading_at_once_and_says_so():
    stage = _stage(AlarmPolicy(on_delay=3, window=5, off_delay=2, bypass=3.0))
    run = stage.run([0.5, 2.0, 0.5, 3.5, 0.5, 0.5, 0.5])
    assert run.raised.tolist() == [False, False, False, True, False, False, False]
    assert run.active.tolist() == [False, False, False, True, True, False, False]
    assert any("bypass" in reason for row, reason in run.notes if row == 3)


def test_bypass_must_be_a_factor_above_one():
    with pytest.raises(ValueError, match="bypass"):
        AlarmPolicy(bypass=1.0)
    with pytest.raises(ValueError, match="bypass"):
        AlarmPolicy(bypass=math.inf)


@settings(max_examples=60, deadline=None)
@given(
    noise=arrays(np.float64, st.integers(20, 300), elements=st.floats(-0.3, 0.3)),
    deadband=st.sampled_from([0.35, 0.5]),
)
def test_hysteresis_never_chatters_around_the_set_level(noise, deadband):
    # A signal that crosses the set level (1.0) again and again but never reaches the clear level
    # raises one alarm and never clears it.
    scores = 1.0 + noise
    scores[0] = 1.5
    run = _stage(AlarmPolicy(deadband=deadband)).run(scores)
    assert run.raised.sum() == 1
    assert run.active.all()


def test_holdoff_suppresses_a_re_alarm_and_says_so():
    stage = _stage(AlarmPolicy(holdoff=5))
    run = stage.run([2.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0])
    assert run.raised.tolist() == [True, False, False, False, False, False, False, False, False, True]
    assert any("holdoff" in reason for row, reason in run.notes if row == 2)


@pytest.mark.parametrize(("kind", "params"), KINDS)
def test_threshold_stays_within_its_limit_of_the_static_one(kind, params):
    stage = _stage(AlarmPolicy(), kind, params, guard=1.0, limit=2.0)
    run = stage.run(np.full(2000, 50.0))
    assert (run.thresholds <= 2.0 + 1e-12).all()
    run = stage.run(np.zeros(2000))
    assert (run.thresholds >= 0.5 - 1e-12).all()


@pytest.mark.parametrize(("kind", "params"), KINDS[1:])
def test_an_incident_is_not_learnt_away(kind, params):
    # Normal scores, then a long incident at twice the threshold: the guard stops learning, so the
    # incident stays in alarm to its end.
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0.0, 0.8, 300), np.full(2000, 2.0)])
    run = _stage(AlarmPolicy(on_delay=3, window=5), kind, params, guard=0.2, guard_window=100).run(scores)
    assert run.active[310:].all()
    assert not run.learned[400:].any()


def test_baseline_follows_slow_drift_of_normal_scores():
    # The whole normal score level doubles slowly: a static threshold would alarm on most of it.
    rng = np.random.default_rng(1)
    calibration = rng.uniform(0.0, 0.8, 500)
    scores = np.linspace(1.0, 2.0, 6000) * rng.uniform(0.0, 0.8, 6000)
    policy = AlarmPolicy(on_delay=3, window=5)
    fixed = AlarmStage(policy=policy).fit(calibration, threshold=1.0).run(scores)
    online = make_online_threshold("baseline", memory=200)
    adaptive = AlarmStage(threshold=online, policy=policy).fit(calibration, threshold=1.0).run(scores)
    assert adaptive.active.mean() < 0.005 < 0.02 < fixed.active.mean()


def test_non_finite_score_is_not_decided_and_said():
    stage = _stage(AlarmPolicy())
    run = stage.run([0.1, math.nan, 2.0, math.inf])
    assert run.active.tolist() == [False, False, True, True]
    assert [row for row, reason in run.notes if reason.startswith("non_finite_score")] == [1, 3]
    assert not run.learned[1] and not run.learned[3]


def test_gap_and_time_going_back_reset_the_annunciation_state():
    stage = _stage(AlarmPolicy(on_delay=2, window=2), max_gap=10.0)
    run = stage.run([2.0, 2.0, 2.0, 2.0], timestamps=[0.0, 1.0, 100.0, 50.0])
    assert run.active.tolist() == [False, True, False, False]
    reasons = [reason for _, reason in run.notes]
    assert any("gap of 99 s" in r for r in reasons) and any("time went back" in r for r in reasons)


def test_shelving_quiets_alarms_until_it_expires():
    stage = _stage(AlarmPolicy())
    state = stage.start()
    stage.shelve(state, until=3.0)
    run = stage.run([2.0, 2.0, 2.0, 2.0, 2.0], state, timestamps=[0.0, 1.0, 2.0, 3.0, 4.0])
    assert run.active.tolist() == [False, False, False, True, True]
    assert run.flagged.all()
    assert (3, "shelving expired") in run.notes


def test_stage_round_trips_through_its_dict():
    stage = _stage(AlarmPolicy(on_delay=2, window=4, off_delay=3), "spot", {"risk": 0.01, "level": 0.9, "depth": 5})
    again = AlarmStage.from_dict(stage.to_dict())
    scores = np.random.default_rng(2).uniform(0, 3, 500)
    np.testing.assert_array_equal(stage.run(scores).active, again.run(scores).active)


def test_a_corrupt_state_is_refused():
    stage = _stage(AlarmPolicy())
    document = stage.start().to_dict()
    document["alarm_count"] = 7
    with pytest.raises(ValueError, match="alarm_count"):
        AlarmState.from_dict(document)
