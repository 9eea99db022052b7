"""PCA monitoring with Hotelling's T² and the Q (squared prediction error) statistic."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from vigil.base import BaseDetector, Interval, RawContributions
from vigil.errors import InvalidInputError
from vigil.registry import register

_F = NDArray[np.float64]

__all__ = ["PCADetector"]


def _q_limit(residual_eigenvalues: NDArray[np.float64], alpha: float) -> float:
    """Jackson–Mudholkar control limit of Q at significance ``alpha``."""
    theta1, theta2, theta3 = (float(np.sum(residual_eigenvalues**k)) for k in (1, 2, 3))
    if theta1 <= 0 or theta2 <= 0:
        return 0.0
    h0 = 1.0 - 2.0 * theta1 * theta3 / (3.0 * theta2**2)
    if h0 <= 0:  # the approximation breaks down; fall back to a scaled chi-square (Box 1954)
        g, h = theta2 / theta1, theta1**2 / theta2
        return float(g * stats.chi2.ppf(1.0 - alpha, h))
    c = stats.norm.ppf(1.0 - alpha)
    inner = c * np.sqrt(2.0 * theta2 * h0**2) / theta1 + 1.0 + theta2 * h0 * (h0 - 1.0) / theta1**2
    return float(theta1 * inner ** (1.0 / h0))


def _t2_limit(n_samples: int, n_components: int, alpha: float) -> float:
    """F-distribution control limit of Hotelling's T² for new observations."""
    n, k = n_samples, n_components
    if n <= k:
        return float(stats.chi2.ppf(1.0 - alpha, k))
    return float(k * (n - 1) * (n + 1) / (n * (n - k)) * stats.f.ppf(1.0 - alpha, k, n - k))


@register("pca", "PCA model of normal correlations; score = max of Hotelling T² and Q (SPE), each over its limit")
class PCADetector(BaseDetector):
    """Principal component monitoring: Hotelling's T² inside the model plane, Q (SPE) off it.

    Each statistic is divided by its control limit at significance ``alpha`` (F-distribution for T²,
    Jackson–Mudholkar for Q), and the score is the larger ratio, so a score above 1 means "out of
    control" for either. T² catches unusual combinations of the normal modes of variation (a contextual
    anomaly); Q catches broken correlations between sensors (a sensor fault, a valve closing).

    Parameters
    ----------
    n_components : int or float
        Components kept: an int, or a float in (0, 1) for the share of variance to explain.
    alpha : float
        Significance of the control limits that normalise T² and Q.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Attributes
    ----------
    mean_, components_, eigenvalues_ : ndarray
        Centre, principal axes (k × d) and their variances.
    t2_limit_, q_limit_ : float
        Control limits used to normalise the two statistics.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(200, 1))
    >>> X = np.hstack([t, 2 * t, -t]) + 0.05 * rng.normal(size=(200, 3))
    >>> det = PCADetector(n_components=1).fit(X)
    >>> det.predict([[1.0, 2.0, -1.0], [1.0, -2.0, -1.0]])
    array([False,  True])

    References
    ----------
    Jackson, J. E. & Mudholkar, G. S. (1979). Control procedures for residuals associated with principal
    component analysis. Technometrics 21(3).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(int, 1, None), Interval(float, 0.0, 1.0, closed="neither")],
        "alpha": [Interval(float, 0.0, 0.5, closed="neither")],
    }

    def __init__(
        self,
        *,
        n_components: int | float = 0.9,
        alpha: float = 0.01,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.n_components = n_components
        self.alpha = alpha

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"n_components": 2}, {"n_components": 0.8, "alpha": 0.05}]

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        n, d = values.shape
        if isinstance(self.n_components, int) and self.n_components >= d:
            msg = f"n_components={self.n_components} must be below the number of features ({d})"
            raise InvalidInputError(msg)
        self.mean_ = values.mean(axis=0)
        centred = values - self.mean_
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        eigenvalues = singular**2 / max(n - 1, 1)
        if isinstance(self.n_components, int):
            k = self.n_components
        else:
            total = eigenvalues.sum()
            ratio = np.cumsum(eigenvalues) / total if total > 0 else np.ones_like(eigenvalues)
            k = int(np.searchsorted(ratio, self.n_components) + 1)
            k = min(k, d - 1) if d > 1 else 1
        # Components of (near) zero variance would make T² divide by ~0: keep at most those above a floor,
        # and floor the variance of the first one when the training data do not vary at all.
        floor = max(float(eigenvalues[0]) * 1e-9, 1e-12)
        k = max(1, min(k, int((eigenvalues > floor).sum())))
        self.n_components_ = k
        self.components_ = vt[:k]
        self.eigenvalues_ = np.maximum(eigenvalues[:k], floor)
        self.t2_limit_ = _t2_limit(n, k, self.alpha)
        residual_eigenvalues = eigenvalues[k:]
        residual_eigenvalues = residual_eigenvalues[residual_eigenvalues > floor]
        # Without residual variance Q is ~0 in training, and any departure from the plane is anomalous.
        q_limit = _q_limit(residual_eigenvalues, self.alpha) if residual_eigenvalues.size else 0.0
        self.q_limit_ = max(q_limit, floor)

    def _statistics(
        self, values: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        centred = values - self.mean_
        t = centred @ self.components_.T
        residual = centred - t @ self.components_
        t2 = np.sum(t**2 / self.eigenvalues_, axis=1)
        q = np.sum(residual**2, axis=1)
        return t, residual, t2, q

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        _, _, t2, q = self._statistics(values)
        return np.maximum(t2 / self.t2_limit_, q / self.q_limit_)

    def _expected(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """The row projected onto the model plane: what the correlations of normal operation allow."""
        centred = values - self.mean_
        return self.mean_ + (centred @ self.components_.T) @ self.components_

    def _contributions(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-feature contributions to whichever statistic sets the score.

        Q contributions are the squared residuals; T² contributions follow Westerhuis et al. (2000):
        c_j = x_j · Σ_k p_kj t_k / λ_k, whose sum is T² (signs can be negative; their magnitudes are used).
        """
        return self._parts(values - self.mean_, *self._statistics(values))

    def _parts(self, centred: _F, t: _F, residual: _F, t2: _F, q: _F) -> _F:
        q_part = residual**2
        t2_part = np.abs(centred * ((t / self.eigenvalues_) @ self.components_))
        use_t2 = (t2 / self.t2_limit_) > (q / self.q_limit_)
        return np.where(use_t2[:, None], t2_part, q_part)

    def _score_and_contributions(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], RawContributions]:
        t, residual, t2, q = self._statistics(values)
        centred = values - self.mean_
        scores = np.maximum(t2 / self.t2_limit_, q / self.q_limit_)
        return scores, lambda rows: self._parts(centred[rows], t[rows], residual[rows], t2[rows], q[rows])
