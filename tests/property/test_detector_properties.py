"""Invariants every point-wise detector keeps on arbitrary finite data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vigil.errors import InvalidInputError
from vigil.registry import available_detectors


def _point_wise(cls) -> bool:
    return cls(**cls._test_params()[-1]).context_rows == 0


# Windowed detectors score a row from its history, so row permutations do not apply to them, and supervised
# ones need labels that arbitrary data does not have; the contract suite and their own tests check them.
DETECTORS = {name: cls for name, cls in available_detectors().items() if _point_wise(cls) and not cls.requires_y}

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=64)
tables = st.tuples(st.integers(12, 50), st.integers(2, 5)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=finite)
)
PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _make(name):
    cls = DETECTORS[name]
    return cls(**{**cls._test_params()[-1], "random_state": 0})


@pytest.mark.parametrize("name", sorted(DETECTORS))
@PROPERTY_SETTINGS
@given(X=tables, seed=st.integers(0, 2**16))
def test_scores_are_finite_one_per_row_and_follow_permutations(name, X, seed):
    det = _make(name).fit(X)
    scores = det.score_samples(X)
    assert scores.shape == (X.shape[0],)
    assert np.isfinite(scores).all()
    order = np.random.default_rng(seed).permutation(X.shape[0])
    # float32 networks may round differently when rows sit elsewhere in a batch: allow float32 noise
    np.testing.assert_allclose(det.score_samples(X[order]), scores[order], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(DETECTORS))
@PROPERTY_SETTINGS
@given(X=tables)
def test_predict_is_score_above_threshold(name, X):
    det = _make(name).fit(X)
    np.testing.assert_array_equal(det.predict(X), det.score_samples(X) > det.threshold_)


@pytest.mark.parametrize("name", sorted(n for n, c in DETECTORS.items() if not hasattr(c, "learn_one")))
@PROPERTY_SETTINGS
@given(X=arrays(np.float64, (200, 3), elements=st.floats(-10, 10, allow_nan=False, width=64)))
def test_share_of_training_rows_flagged_is_about_contamination(name, X):
    det = _make(name).set_params(contamination=0.1).fit(X)
    flagged = det.predict(X).mean()
    # Ties in the training scores can only lower the share flagged (np.quantile then sits on a tie).
    assert flagged <= 0.1 + 1e-9
    if len(np.unique(det.score_samples(X))) == len(X):
        assert flagged >= 0.1 - 1.0 / len(X) - 1e-9


@pytest.mark.parametrize("name", sorted(DETECTORS))
@PROPERTY_SETTINGS
@given(X=tables, data=st.data())
def test_one_nan_is_rejected(name, X, data):
    det = _make(name).fit(X)
    i = data.draw(st.integers(0, X.shape[0] - 1))
    j = data.draw(st.integers(0, X.shape[1] - 1))
    broken = X.copy()
    broken[i, j] = np.nan
    with pytest.raises(InvalidInputError, match=rf"row {i}, column {j}\] is NaN"):
        det.score_samples(broken)
    with pytest.raises(InvalidInputError, match="NaN"):
        _make(name).fit(broken)
