"""Scoring a row without some of its sensors: same threshold, same false-alarm rate, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.detectors.chi2_tail import same_tail
from vigil.detectors.mahalanobis import MahalanobisDetector
from vigil.detectors.online_zscore import OnlineZScoreDetector
from vigil.detectors.pca import PCADetector
from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline

rng = np.random.default_rng(0)
MIX = rng.normal(size=(5, 5))
TRAIN = rng.normal(size=(6000, 5)) @ MIX
TEST = rng.normal(size=(20000, 5)) @ MIX


@pytest.fixture(scope="module")
def mahalanobis():
    return Pipeline(MahalanobisDetector(random_state=0), threshold=None).fit(TRAIN)


@pytest.mark.parametrize("missing", [[0], [1, 3], [0, 1, 2, 4]])
def test_the_false_alarm_rate_holds_without_sensors(mahalanobis, missing):
    full = np.mean(mahalanobis.score_samples(TEST) > mahalanobis.threshold_)
    without = np.mean(mahalanobis.score_without(TEST, missing) > mahalanobis.threshold_)
    # Both near the 1 % target: 20,000 normal rows put the binomial sd at 0.07 %.
    assert abs(full - 0.01) < 0.004
    assert abs(without - full) < 0.004


def test_an_anomaly_on_the_remaining_sensors_is_still_found_and_explained(mahalanobis):
    row = TEST[:1].copy()
    row[0, 2] += 8 * TRAIN[:, 2].std()
    assert mahalanobis.score_without(row, ["x0"])[0] > mahalanobis.threshold_
    shares = mahalanobis.contributions_without(row, ["x0"])[0]
    assert shares[0] == 0.0 and np.argmax(shares) == 2 and shares.sum() == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6))
def test_nothing_missing_scores_as_score_samples_and_missing_values_are_ignored(seed):
    local = np.random.default_rng(seed)
    X = local.normal(size=(7, 5)) @ MIX
    for det in (MahalanobisDetector(random_state=0), OnlineZScoreDetector(grace_period=2)):
        fitted = det.fit(TRAIN[:500])
        np.testing.assert_allclose(fitted.score_without(X, []), fitted.score_samples(X))
        garbage = X.copy()
        garbage[:, 1] = local.choice([np.nan, 1e9, -3.0])
        np.testing.assert_allclose(fitted.score_without(garbage, [1]), fitted.score_without(X, [1]))


def test_same_tail_keeps_order_and_the_tail_probability():
    values = np.array([0.0, 1.0, 5.0, 40.0, 5000.0])
    mapped = same_tail(values, 2, 6)
    assert np.all(np.diff(mapped) > 0)  # monotone, including the underflowing tail
    assert np.isfinite(mapped).all()


def test_detectors_and_pipelines_that_cannot_say_so():
    pca = Pipeline(PCADetector(n_components=2)).fit(TRAIN[:500])
    assert not pca.scores_without_features
    with pytest.raises(InvalidInputError, match="its detector PCADetector cannot"):
        pca.score_without(TEST[:3], [0])
    smoothed = Pipeline(MahalanobisDetector(random_state=0), smoothing=3).fit(TRAIN[:500])
    assert not smoothed.scores_without_features
    with pytest.raises(InvalidInputError, match="in context"):
        smoothed.score_without(TEST[:3], [0])


def test_bad_missing_lists_are_refused_with_the_reason(mahalanobis):
    with pytest.raises(InvalidInputError, match="'flow' is not one of the model's sensors"):
        mahalanobis.score_without(TEST[:2], ["flow"])
    with pytest.raises(InvalidInputError, match="every feature is missing"):
        mahalanobis.score_without(TEST[:2], [0, 1, 2, 3, 4])
    with pytest.raises(InvalidInputError, match=r"not all column indices in \[0, 5\)"):
        mahalanobis.detector_.score_without(TEST[:2], [7])
