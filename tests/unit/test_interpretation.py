from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.detectors.pca import PCADetector
from vigil.errors import InvalidInputError
from vigil.evaluation.interpretation import hit_rate
from vigil.evaluation.runner import EvaluationPart, evaluate_parts
from vigil.pipeline import Pipeline


def test_hand_computed_hit_rates():
    shares = np.array(
        [
            [0.5, 0.3, 0.1, 0.1],  # G = {1, 3}: top-2 = {1, 2} → 1/2; top-3 = {1, 2, 3} → 2/2
            [0.1, 0.1, 0.6, 0.2],  # G = {1, 3}: top-2 = {3, 4} → 1/2; top-3 = {3, 4, 1 or 2}: stable → 1 → 2/2
            [0.0, 0.0, 0.0, 1.0],  # G = {4}: top-1 = {4} → 1; top-⌊1.5⌋ = top-1 → 1
        ]
    )
    labels = [(0, 2, [1, 3]), (2, 3, [4])]
    assert hit_rate(shares, labels) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert hit_rate(shares, labels, percent=150) == pytest.approx((1.0 + 1.0 + 1.0) / 3)


def test_no_labelled_rows_gives_nan_and_bad_labels_are_rejected():
    assert np.isnan(hit_rate(np.ones((3, 2)), []))
    with pytest.raises(InvalidInputError, match="does not fit"):
        hit_rate(np.ones((3, 2)), [(0, 5, [1])])
    with pytest.raises(InvalidInputError, match="does not fit"):
        hit_rate(np.ones((3, 2)), [(0, 2, [3])])


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), n_dims=st.integers(1, 4))
def test_hit_rate_is_a_share_and_grows_with_percent(seed, n_dims):
    rng = np.random.default_rng(seed)
    shares = rng.random((20, 6))
    dims = sorted(rng.choice(6, size=n_dims, replace=False) + 1)
    labels = [(3, 15, dims)]
    h100, h150 = hit_rate(shares, labels), hit_rate(shares, labels, percent=150)
    assert 0.0 <= h100 <= h150 <= 1.0
    perfect = np.zeros((20, 6))
    perfect[:, np.asarray(dims) - 1] = 1.0
    assert hit_rate(perfect, labels) == 1.0


def test_runner_reports_hit_rates_for_parts_with_root_causes():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(600, 1))
    X = pd.DataFrame(np.hstack([t, t, -t, 0.5 * t]) + 0.05 * rng.normal(size=(600, 4)), columns=list("abcd"))
    test = X.iloc[400:].reset_index(drop=True)
    test.loc[100:119, "c"] += 3.0  # feature 3 breaks the correlation
    y = np.zeros(200, dtype=bool)
    y[100:120] = True
    part = EvaluationPart("m", X.iloc[:400], test, y, extra={"interpretation": [(100, 120, [3])]})
    result = evaluate_parts([part], lambda: Pipeline(PCADetector(n_components=1)), progress=False)
    assert result["hitrate_100"] == pytest.approx(1.0)
    assert result["per_part"]["m"]["hitrate_150"] == pytest.approx(1.0)
    assert result["hitrate_150_detected"] == pytest.approx(1.0) and result["hitrate_detected_parts"] == 1


def test_detected_hit_rate_counts_only_the_flagged_rows():
    shares = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])  # G = {1}: only row 0 ranks it first
    labels = [(0, 3, [1])]
    assert hit_rate(shares, labels) == pytest.approx(1 / 3)
    assert hit_rate(shares, labels, rows=np.array([True, False, False])) == 1.0
    assert hit_rate(shares, labels, rows=np.array([False, True, True])) == 0.0
    assert np.isnan(hit_rate(shares, labels, rows=np.zeros(3, dtype=bool)))
    with pytest.raises(InvalidInputError, match="one flag per row"):
        hit_rate(shares, labels, rows=np.ones(2, dtype=bool))
