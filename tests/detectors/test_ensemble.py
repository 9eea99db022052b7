"""EnsembleDetector: per-member parameters and the held-out tail-quantile normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.detectors.ensemble import EnsembleDetector
from vigil.errors import InvalidInputError
from vigil.registry import make_detector


def _rows(n: int = 400, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4))


def test_member_params_reach_the_members():
    det = EnsembleDetector(members=("mahalanobis", "pca"), member_params=({}, {"n_components": 2}), random_state=0)
    det.fit(_rows())
    assert det.members_[1].n_components == 2
    assert det.members_[1].random_state == 0


def test_member_params_must_match_the_members():
    det = EnsembleDetector(members=("mahalanobis", "pca"), member_params=({},))
    with pytest.raises(InvalidInputError, match="one dict per member"):
        det.fit(_rows())


def test_quantile_normalisation_uses_held_out_rows():
    X, new = _rows(), _rows(50, seed=1)
    det = EnsembleDetector(
        members=("mahalanobis", "pca"), normalisation="quantile", combination="max", holdout=0.25, random_state=0
    ).fit(X)
    # Members are fitted on the first 300 rows only, and each is normalised by its 0.99 quantile of the last 100.
    for i, name in enumerate(("mahalanobis", "pca")):
        alone = make_detector(name, **({"random_state": 0} if name == "pca" else {})).fit(X[:300])
        np.testing.assert_allclose(det.members_[i].score_samples(new), alone.score_samples(new))
        held_out = alone.score_samples(X[300:])
        assert held_out.min() >= 0
        expected = alone.score_samples(new) / np.quantile(held_out, 0.99)
        np.testing.assert_allclose(det._normalised(new)[i], expected)
    np.testing.assert_allclose(det.score_samples(new), det._normalised(new).max(axis=0))
    # About 1 % of each member's held-out scores are above 1, so the max of two members is above 1 on about 2 %.
    assert np.mean(det.score_samples(X[300:]) > 1.0) <= 0.03


def test_in_sample_normalisation_is_unchanged_without_holdout():
    X = _rows()
    det = EnsembleDetector(members=("mahalanobis", "pca"), random_state=0).fit(X)
    alone = make_detector("mahalanobis").fit(X)
    train = alone.score_samples(X)
    q1, median, q3 = np.quantile(train, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(det._normalised(X[:10])[0], (alone.score_samples(X[:10]) - median) / (q3 - q1))
