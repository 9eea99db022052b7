"""Per-feature running z-scores, learned one record at a time with optional exponential forgetting."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from vigil.base import Interval, OnlineDetector, RawContributions
from vigil.detectors.chi2_tail import same_tail
from vigil.registry import register

__all__ = ["OnlineZScoreDetector"]


@register("online-zscore", "Online per-sensor z-scores with exponential forgetting; learns one record at a time")
class OnlineZScoreDetector(OnlineDetector):
    """Mean squared z-score over features, from running weighted means and variances.

    Moments follow West's weighted incremental algorithm with forgetting factor λ = 2^(−1/half_life):
    every past weight is multiplied by λ when a record arrives, so ``fit`` on a table and ``learn_one``
    over its rows give the same state. Under Gaussian, independent features d·score follows χ²(d), which
    sets ``threshold_`` at the ``1 - contamination`` quantile without needing training scores, and puts the
    score of a row without some sensors (:meth:`score_without`, over the sensors that remain) on the same
    scale at the same χ² tail probability.

    Parameters
    ----------
    half_life : float or None
        Records after which an old record's weight has halved; None never forgets.
    grace_period : int
        Records to learn before ``score_one`` answers.
    min_std : float
        Floor on each feature's standard deviation, so a constant training feature cannot divide by zero.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Examples
    --------
    >>> det = OnlineZScoreDetector(grace_period=3)
    >>> for t in range(10):
    ...     det.learn_one({"temp": 20.0 + t % 3, "flow": 5.0 - t % 2})
    >>> det.is_warm
    True
    >>> det.score_one({"flow": 5.0, "temp": 21.0}) < det.score_one({"flow": 9.0, "temp": 21.0})
    True
    """

    scores_without_features: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "half_life": [None, Interval(float, 0.0, None, closed="neither"), Interval(int, 1, None)],
        "grace_period": [Interval(int, 1, None)],
        "min_std": [Interval(float, 0.0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        half_life: float | None = None,
        grace_period: int = 30,
        min_std: float = 1e-6,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.half_life = half_life
        self.grace_period = grace_period
        self.min_std = min_std

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"grace_period": 5}, {"half_life": 50.0, "grace_period": 5}]

    @property
    def warm_up(self) -> int:
        return self.grace_period

    def _decay(self) -> float:
        return 1.0 if self.half_life is None else float(2.0 ** (-1.0 / self.half_life))

    def _init_online(self, n_features: int) -> None:
        self.n_seen_ = 0
        self.weight_ = 0.0
        self.mean_ = np.zeros(n_features)
        self.sq_dev_ = np.zeros(n_features)

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        n = values.shape[0]
        weights = self._decay() ** np.arange(n - 1, -1, -1, dtype=np.float64)
        self.n_seen_ = n
        self.weight_ = float(weights.sum())
        self.mean_ = weights @ values / self.weight_
        self.sq_dev_ = weights @ (values - self.mean_) ** 2

    def _learn_one(self, values: NDArray[np.float64]) -> None:
        decay = self._decay()
        self.n_seen_ += 1
        self.weight_ = decay * self.weight_ + 1.0
        previous = self.mean_
        self.mean_ = previous + (values - previous) / self.weight_
        self.sq_dev_ = decay * self.sq_dev_ + (values - previous) * (values - self.mean_)

    def _z_squared(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        variance = self.sq_dev_ / max(self.weight_, 1e-300)
        std = np.maximum(np.sqrt(np.maximum(variance, 0.0)), self.min_std)
        return ((values - self.mean_) / std) ** 2

    def _expected(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.broadcast_to(self.mean_, values.shape).copy()

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._z_squared(values).mean(axis=1)

    def _contributions(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._z_squared(values)

    def _score_and_contributions(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], RawContributions]:
        z = self._z_squared(values)
        return z.mean(axis=1), lambda rows: z[rows]

    def _score_without(self, values: NDArray[np.float64], observed: NDArray[np.bool_]) -> NDArray[np.float64]:
        k, d = int(observed.sum()), observed.size
        return same_tail(self._z_squared(values)[:, observed].sum(axis=1), k, d) / d

    def _contributions_without(self, values: NDArray[np.float64], observed: NDArray[np.bool_]) -> NDArray[np.float64]:
        return self._z_squared(values)[:, observed]

    def _online_threshold(self) -> float:
        d = self.n_features_in_
        return float(stats.chi2.ppf(1.0 - self.contamination, d) / d)

    def _training_threshold(self, scores: NDArray[np.float64]) -> float:
        return self._online_threshold()
