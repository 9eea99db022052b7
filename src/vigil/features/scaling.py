"""Column scalers fitted on training data: standard (mean/std) and robust (median/IQR)."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError, NotFittedError

__all__ = ["IdentityScaler", "RobustScaler", "Scaler", "StandardScaler", "make_scaler"]


class Scaler:
    """Base class: ``fit`` learns ``center_`` and ``scale_``; ``transform`` is ``(X - center_) / scale_``.

    A column that is constant in training gets scale 1 (it is centred, not blown up): any later change
    of that column then shows as a deviation in its own units, which is what a monitor should see.
    ``constant_columns_`` lists those columns.
    """

    kind: ClassVar[str] = ""

    def fit(self, values: NDArray[np.float64]) -> Self:
        center, spread = self._moments(values)
        constant = ~(spread > 0)
        self.center_ = center
        self.scale_ = np.where(constant, 1.0, spread)
        self.constant_columns_ = np.flatnonzero(constant)
        return self

    def _moments(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        raise NotImplementedError

    def transform(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        if not hasattr(self, "center_"):
            msg = f"{type(self).__name__} is not fitted yet"
            raise NotFittedError(msg)
        return (values - self.center_) / self.scale_

    def state(self) -> dict[str, Any]:
        return {"center": self.center_, "scale": self.scale_}

    def restore(self, center: NDArray[np.float64], scale: NDArray[np.float64]) -> Self:
        self.center_, self.scale_ = np.asarray(center, dtype=np.float64), np.asarray(scale, dtype=np.float64)
        self.constant_columns_ = np.flatnonzero(self.scale_ == 1.0)
        return self


class StandardScaler(Scaler):
    """Centre on the mean, divide by the standard deviation.

    Examples
    --------
    >>> import numpy as np
    >>> StandardScaler().fit(np.array([[0.0, 5.0], [2.0, 5.0]])).transform(np.array([[1.0, 6.0]]))
    array([[0., 1.]])
    """

    kind = "standard"

    def _moments(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return values.mean(axis=0), values.std(axis=0)


class RobustScaler(Scaler):
    """Centre on the median, divide by IQR / 1.349 (the standard deviation for Gaussian data).

    Robust to a few anomalies hidden in the training data.

    Examples
    --------
    >>> import numpy as np
    >>> RobustScaler().fit(np.array([[0.0], [1.0], [2.0], [100.0]])).center_
    array([1.5])
    """

    kind = "robust"

    def _moments(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
        return q50, (q75 - q25) / 1.349


class IdentityScaler(Scaler):
    """No scaling (for data already on a common scale)."""

    kind = "none"

    def _moments(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return np.zeros(values.shape[1]), np.ones(values.shape[1])


_KINDS: dict[str, type[Scaler]] = {cls.kind: cls for cls in (StandardScaler, RobustScaler, IdentityScaler)}


def make_scaler(kind: str) -> Scaler:
    """Create a scaler by name: ``standard``, ``robust`` or ``none``."""
    if kind not in _KINDS:
        msg = f"unknown scaler {kind!r}; choose one of {sorted(_KINDS)}"
        raise InvalidInputError(msg)
    return _KINDS[kind]()
