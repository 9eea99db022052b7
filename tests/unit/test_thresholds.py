from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from vigil.calibration.thresholds import (
    POTThreshold,
    QuantileThreshold,
    TargetFARThreshold,
    make_thresholder,
    thresholder_from_dict,
)
from vigil.errors import InvalidInputError, NotFittedError


def test_quantile_threshold_is_factor_times_quantile():
    scores = np.arange(1.0, 101.0)
    assert QuantileThreshold(quantile=0.99, factor=4 / 3).fit(scores).threshold_ == pytest.approx(
        4 / 3 * np.quantile(scores, 0.99)
    )


def test_target_far_uses_the_conformal_rank():
    # n = 99, far = 0.05: rank ceil(100 * 0.95) = 95, so the 95th smallest score.
    scores = np.arange(1.0, 100.0)
    t = TargetFARThreshold(far=0.05).fit(scores)
    assert t.threshold_ == 95.0
    assert t.guaranteed_
    small = TargetFARThreshold(far=0.01).fit(np.arange(10.0))
    assert small.threshold_ == 9.0
    assert not small.guaranteed_


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), far=st.sampled_from([0.01, 0.05, 0.1]))
def test_target_far_holds_on_fresh_normal_scores(seed, far):
    rng = np.random.default_rng(seed)
    calibration = rng.gamma(2.0, size=2000)
    fresh = rng.gamma(2.0, size=20000)
    t = TargetFARThreshold(far=far).fit(calibration)
    # Conformal guarantee is on average over calibration draws; allow sampling slack on one draw.
    assert (fresh > t.threshold_).mean() <= far + 3 * np.sqrt(far * (1 - far) / 2000) + 0.005


@pytest.mark.parametrize("risk", [1e-3, 1e-4])
def test_pot_extrapolates_the_tail_of_known_distributions(risk):
    rng = np.random.default_rng(0)
    exp_scores = rng.exponential(size=20000)
    t = POTThreshold(risk=risk, level=0.98).fit(exp_scores)
    assert t.threshold_ == pytest.approx(-np.log(risk), rel=0.12)
    # Heavy tail: |t(3)| has a Pareto-like tail that a plain quantile of 20k points underestimates at 1e-4.
    heavy = np.abs(rng.standard_t(3, size=20000))
    h = POTThreshold(risk=risk, level=0.98).fit(heavy)
    assert h.gamma_ > 0.1
    assert h.threshold_ == pytest.approx(stats.t.isf(risk / 2, 3), rel=0.3)


def test_pot_falls_back_to_the_maximum_without_enough_peaks():
    t = POTThreshold(level=0.98).fit(np.arange(50.0))
    assert t.threshold_ == 49.0


@pytest.mark.parametrize(
    "bad",
    [
        lambda: QuantileThreshold(quantile=1.5).fit([1.0, 2.0]),
        lambda: TargetFARThreshold(far=0.0).fit([1.0, 2.0]),
        lambda: POTThreshold(risk=0.9).fit([1.0, 2.0]),
        lambda: QuantileThreshold().fit([1.0]),
        lambda: QuantileThreshold().fit([1.0, np.nan]),
        lambda: make_thresholder("median"),
    ],
)
def test_bad_settings_and_scores_are_rejected(bad):
    with pytest.raises(InvalidInputError):
        bad()


def test_is_anomaly_before_fit_raises():
    with pytest.raises(NotFittedError):
        QuantileThreshold().is_anomaly([1.0])


@pytest.mark.parametrize("kind", ["quantile", "target-far", "pot"])
def test_dict_round_trip(kind):
    scores = np.random.default_rng(1).exponential(size=3000)
    t = make_thresholder(kind).fit(scores)
    back = thresholder_from_dict(t.to_dict())
    assert type(back) is type(t)
    assert back.threshold_ == t.threshold_
    np.testing.assert_array_equal(back.is_anomaly(scores), t.is_anomaly(scores))
