"""Isolation Forest whose trees are exported to plain arrays, so it saves without pickle."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import IsolationForest

from vigil.base import BaseDetector, Interval
from vigil.registry import register

__all__ = ["IsolationForestDetector"]


def _average_path_length(n: NDArray[np.float64]) -> NDArray[np.float64]:
    """Expected path length of an unsuccessful search in a binary search tree of ``n`` points."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@register("iforest", "Isolation Forest: anomalies are isolated by fewer random splits")
class IsolationForestDetector(BaseDetector):
    """Isolation Forest (Liu et al. 2008), trained with scikit-learn and scored from exported tree arrays.

    After fitting, each tree's split features, thresholds, children and leaf sizes are copied into flat
    arrays. Scoring walks all trees level by level with vectorised numpy, and ``save`` writes those
    arrays, so a loaded model gives the same scores without pickling scikit-learn objects.
    The score is scikit-learn's ``-score_samples``: 2^(−E[h(x)] / c(ψ)), in (0, 1], higher = more anomalous.

    Parameters
    ----------
    n_estimators : int
        Number of trees.
    max_samples : int
        Rows sub-sampled per tree (ψ); capped at the number of training rows.
    max_features : float
        Share of features each tree draws from.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(256, 2))
    >>> det = IsolationForestDetector(n_estimators=50, random_state=0).fit(X)
    >>> det.predict([[0.0, 0.0], [6.0, 6.0]])
    array([False,  True])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_estimators": [Interval(int, 1, None)],
        "max_samples": [Interval(int, 2, None)],
        "max_features": [Interval(float, 0.0, 1.0, closed="right")],
    }

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        max_samples: int = 256,
        max_features: float = 1.0,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"n_estimators": 20, "max_samples": 64, "random_state": 0}]

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        seed = int(self._rng().integers(2**31 - 1))
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, values.shape[0]),
            max_features=self.max_features,
            random_state=seed,
        ).fit(values)
        features, thresholds, lefts, rights, sizes, offsets = [], [], [], [], [], [0]
        for tree, used in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = tree.tree_
            leaf = t.children_left == -1
            # Map each node's feature index back to the full feature set; leaves keep -1.
            features.append(np.where(leaf, -1, np.asarray(used)[np.maximum(t.feature, 0)]))
            thresholds.append(t.threshold.astype(np.float64))
            base = offsets[-1]
            lefts.append(np.where(leaf, -1, t.children_left + base))
            rights.append(np.where(leaf, -1, t.children_right + base))
            sizes.append(t.n_node_samples.astype(np.float64))
            offsets.append(base + t.node_count)
        self.node_feature_ = np.concatenate(features).astype(np.int64)
        self.node_threshold_ = np.concatenate(thresholds)
        self.node_left_ = np.concatenate(lefts).astype(np.int64)
        self.node_right_ = np.concatenate(rights).astype(np.int64)
        self.node_size_ = np.concatenate(sizes)
        self.tree_offset_ = np.asarray(offsets[:-1], dtype=np.int64)
        self.max_samples_ = int(forest.max_samples_)

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        # scikit-learn compares float32 copies of the inputs with its thresholds; do the same so
        # the exported forest isolates exactly as the fitted one did.
        x = values.astype(np.float32).astype(np.float64)
        n = x.shape[0]
        rows = np.arange(n)
        depth_sum = np.zeros(n)
        leaf_bonus = _average_path_length(self.node_size_)
        for root in self.tree_offset_:
            node = np.full(n, root, dtype=np.int64)
            depth = np.zeros(n)
            active = self.node_left_[node] != -1
            while active.any():
                idx = rows[active]
                current = node[idx]
                go_left = x[idx, self.node_feature_[current]] <= self.node_threshold_[current]
                node[idx] = np.where(go_left, self.node_left_[current], self.node_right_[current])
                depth[idx] += 1.0
                active[idx] = self.node_left_[node[idx]] != -1
            depth_sum += depth + leaf_bonus[node]
        mean_depth = depth_sum / len(self.tree_offset_)
        c = _average_path_length(np.array([float(self.max_samples_)]))[0]
        return 2.0 ** (-mean_depth / c) if c > 0 else np.ones(n)
