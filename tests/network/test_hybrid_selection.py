"""Choosing the hybrid's novelty target on training rows only, by leaving each attack category out."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from vigil.errors import InvalidInputError, NotFittedError
from vigil.network.autoencoder import FlowAutoencoderDetector
from vigil.network.classifier import FlowClassifier
from vigil.network.hybrid import HybridFlowModel

CANDIDATES = (0.01, 0.05, 0.2)


def _model() -> HybridFlowModel:
    return HybridFlowModel(
        classifier=FlowClassifier(hidden=(8,), epochs=10, batch_size=64, random_state=0, n_threads=1),
        novelty=FlowAutoencoderDetector(hidden=(8,), latent=2, epochs=20, batch_size=64, random_state=0),
        random_state=0,
    )


def _flows(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal rows around 0; three attack categories, each far out along its own axis."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(900, 4))
    attacks = [rng.normal(size=(60, 4)) + 8.0 * np.eye(4)[axis] for axis in range(3)]
    X = np.vstack([normal, *attacks])
    y = np.r_[np.zeros(900, bool), np.ones(180, bool)]
    category = np.array(["normal"] * 900 + ["dos"] * 60 + ["probe"] * 60 + ["r2l"] * 60, dtype=object)
    return X, y, category


def test_obvious_unseen_attacks_need_only_the_smallest_target() -> None:
    X, y, category = _flows()
    model = _model().fit(X, y, category)
    selection = model.select_novelty_far(X, y, category, candidates=CANDIDATES)
    assert set(selection["per_category"]) == {"dos", "probe", "r2l"}
    assert set(selection["by_far"]) == {str(f) for f in CANDIDATES}
    assert all(0.0 <= v <= 1.0 for v in selection["by_far"].values())
    # every held-out category is caught at any target, so fewer false alarms decide: the smallest wins
    assert selection["chosen"] == 0.01 == model.novelty_far
    assert model.novelty_threshold_ == model.threshold_for(0.01)
    assert selection["by_far"]["0.01"] > selection["by_far"]["0.2"]


def test_selection_needs_a_fitted_model_and_two_attack_categories() -> None:
    X, y, category = _flows()
    with pytest.raises(NotFittedError):
        _model().select_novelty_far(X, y, category)
    model = _model().fit(X, y, category)
    with pytest.raises(InvalidInputError, match="two attack categories"):
        model.select_novelty_far(X, y, np.where(y, "dos", "normal").astype(object))
