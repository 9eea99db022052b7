"""Robust Mahalanobis distance from a minimum covariance determinant estimate."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.covariance import MinCovDet

from vigil.base import BaseDetector, Interval
from vigil.detectors.chi2_tail import same_tail
from vigil.registry import register

__all__ = ["MahalanobisDetector"]


@register("mahalanobis", "Robust (MCD) Mahalanobis distance to the normal operating point")
class MahalanobisDetector(BaseDetector):
    """Squared Mahalanobis distance from a robust (minimum covariance determinant) centre and covariance.

    MCD ignores the most outlying share of training rows when estimating the covariance, so a few
    anomalies hidden in the training data do not inflate it. A small ridge keeps the inverse stable when
    sensors are nearly collinear, as coupled process sensors often are.

    Parameters
    ----------
    support_fraction : float or None
        Share of rows MCD fits on; None lets scikit-learn choose (n + d + 1) / 2.
    ridge : float
        Added to the covariance diagonal, relative to its mean variance.

    Attributes
    ----------
    location_, precision_ : ndarray
        Centre and inverse covariance.
    robust_ : bool
        False when MCD was undefined for the training data (constant or collinear columns, too few rows)
        and the classical estimate was used instead.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]])
    >>> det = MahalanobisDetector(random_state=0).fit(X)
    >>> det.predict([[1.0, 0.9], [1.0, -0.9]])
    array([False,  True])
    """

    scores_without_features: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "support_fraction": [None, Interval(float, 0.0, 1.0, closed="right")],
        "ridge": [Interval(float, 0.0, None)],
    }

    def __init__(
        self,
        *,
        support_fraction: float | None = None,
        ridge: float = 1e-6,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.support_fraction = support_fraction
        self.ridge = ridge

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"random_state": 0}, {"support_fraction": 0.9, "random_state": 1}]

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        location, covariance = self._robust_estimate(values)
        # Ridge relative to the mean variance, floored so that (nearly) constant data cannot make the
        # precision matrix overflow.
        scale = max(float(np.mean(np.diag(covariance))), 1e-12)
        covariance = covariance + self.ridge * scale * np.eye(values.shape[1])
        self.location_ = location
        self.precision_ = np.linalg.pinv(covariance, hermitian=True)
        self.center_ = self.location_

    def _robust_estimate(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """MCD location and covariance; the classical estimate where MCD is undefined.

        MCD needs the data to span every dimension (and its h-subsets to be non-singular). Constant or
        collinear columns, or fewer rows than twice the features, break that; the classical mean and
        covariance (plus the ridge) are used then, and ``robust_`` records which estimate was used.
        """
        n, d = values.shape
        centred = values - values.mean(axis=0)
        if n >= 2 * d and np.linalg.matrix_rank(centred) == d:
            seed = int(self._rng().integers(2**31 - 1))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    mcd = MinCovDet(support_fraction=self.support_fraction, random_state=seed).fit(values)
                except ValueError:  # the best h-subset is singular (many identical rows)
                    mcd = None
            if mcd is not None and not caught:
                self.robust_ = True
                return mcd.location_, mcd.covariance_
        self.robust_ = False
        return values.mean(axis=0), np.atleast_2d(np.cov(values, rowvar=False))

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        centred = values - self.location_
        return np.einsum("ij,jk,ik->i", centred, self.precision_, centred)

    def _expected(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each feature's conditional mean given all the others, under the fitted Gaussian.

        E[x_j | x_-j] = μ_j − Σ_{k≠j} P_jk (x_k − μ_k) / P_jj, with P the precision matrix.
        """
        centred = values - self.location_
        diagonal = np.diag(self.precision_)
        others = centred @ self.precision_.T - centred * diagonal
        return self.location_ - others / diagonal

    def _contributions(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """c_j = x_j · (P x)_j, which sums to the squared distance; magnitudes are used."""
        centred = values - self.location_
        return np.abs(centred * (centred @ self.precision_))

    def _observed_precision(self, observed: NDArray[np.bool_]) -> NDArray[np.floating[Any]]:
        """The inverse covariance of the observed sensors' marginal: the Schur complement of the missing block."""
        precision = self.precision_
        missing = ~observed
        if not missing.any():
            return precision
        p_oo = precision[np.ix_(observed, observed)]
        p_om = precision[np.ix_(observed, missing)]
        p_mm = precision[np.ix_(missing, missing)]
        return p_oo - p_om @ np.linalg.pinv(p_mm, hermitian=True) @ p_om.T

    def _score_without(self, values: NDArray[np.float64], observed: NDArray[np.bool_]) -> NDArray[np.float64]:
        centred = values[:, observed] - self.location_[observed]
        distance = np.einsum("ij,jk,ik->i", centred, self._observed_precision(observed), centred)
        return same_tail(distance, int(observed.sum()), observed.size)

    def _contributions_without(self, values: NDArray[np.float64], observed: NDArray[np.bool_]) -> NDArray[np.float64]:
        centred = values[:, observed] - self.location_[observed]
        return np.abs(centred * (centred @ self._observed_precision(observed)))
