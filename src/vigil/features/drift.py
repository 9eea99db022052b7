"""Input drift: which sensors no longer read like they did in training (two-sample KS tests on windows)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from vigil.errors import InvalidInputError, NotFittedError
from vigil.validation import check_array

__all__ = ["InputDriftDetector", "InputDriftReport"]


@dataclass(frozen=True)
class InputDriftReport:
    """Result of one check: ``drifted`` and, per moved sensor, the KS statistic, p-value and mean shift."""

    drifted: bool
    n_recent: int
    sensors: list[dict[str, float | str]] = field(default_factory=list)

    @property
    def message(self) -> str:
        if not self.drifted:
            return f"no input drift over the last {self.n_recent} rows"
        moved = ", ".join(f"{s['sensor']} ({s['shift_sigmas']:+.1f} σ)" for s in self.sensors[:5])
        return f"input drift over the last {self.n_recent} rows: {moved}"

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "n_recent": self.n_recent, "sensors": self.sensors, "message": self.message}


class InputDriftDetector:
    """Compare a sliding window of recent rows with a reference sample, sensor by sensor.

    Each sensor gets a two-sample Kolmogorov–Smirnov test between its reference values and its last
    ``window`` values; drift is reported when any p-value falls below ``alpha / n_sensors`` (Bonferroni, so
    the false-alarm rate of a check stays at ``alpha`` for independent rows). The report names the sensors
    that moved, largest statistic first, with their mean shift in reference standard deviations.

    Rows of a real plant are autocorrelated, which makes KS p-values optimistic: check on windows spaced
    at least a window apart, or lower ``alpha``.

    Parameters
    ----------
    window : int
        Recent rows compared with the reference.
    alpha : float
        Family-wise false-alarm probability of one check.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = InputDriftDetector(window=300).fit(rng.normal(size=(2000, 3)), names=["flow", "temp", "rpm"])
    >>> det.update(rng.normal(size=(300, 3)))
    >>> det.check().drifted
    False
    >>> shifted = rng.normal(size=(300, 3)); shifted[:, 1] += 1.0
    >>> det.update(shifted)
    >>> print(det.check().message)
    input drift over the last 300 rows: temp (+1.0 σ)
    """

    def __init__(self, *, window: int = 500, alpha: float = 0.001) -> None:
        self.window = window
        self.alpha = alpha

    def fit(self, reference: Any, names: Sequence[str] | None = None) -> Self:
        if not (isinstance(self.window, int) and self.window >= 10):
            msg = f"window must be an int ≥ 10, got {self.window!r}"
            raise InvalidInputError(msg)
        if not 0.0 < self.alpha < 1.0:
            msg = f"alpha must be in (0, 1), got {self.alpha!r}"
            raise InvalidInputError(msg)
        values, found = check_array(reference, where="reference", min_rows=10)
        self.reference_ = np.sort(values, axis=0)
        self.names_ = list(names) if names is not None else (found or [f"x{j}" for j in range(values.shape[1])])
        if len(self.names_) != values.shape[1]:
            msg = f"{len(self.names_)} names for {values.shape[1]} reference columns"
            raise InvalidInputError(msg)
        self.mean_ = values.mean(axis=0)
        self.std_ = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
        self._recent: deque[NDArray[np.float64]] = deque(maxlen=self.window)
        return self

    def update(self, rows: Any) -> None:
        """Append rows (a 2-D table with the reference's columns) to the recent window."""
        if not hasattr(self, "reference_"):
            msg = "InputDriftDetector is not fitted yet: call fit(reference) first"
            raise NotFittedError(msg)
        values, _ = check_array(rows, where="rows")
        if values.shape[1] != self.reference_.shape[1]:
            msg = f"rows have {values.shape[1]} columns, the reference has {self.reference_.shape[1]}"
            raise InvalidInputError(msg)
        self._recent.extend(values)

    def check(self) -> InputDriftReport:
        """Test the current window (which must be full) against the reference."""
        if not hasattr(self, "reference_"):
            msg = "InputDriftDetector is not fitted yet: call fit(reference) first"
            raise NotFittedError(msg)
        n = len(self._recent)
        if n < self.window:
            return InputDriftReport(False, n)
        recent = np.asarray(self._recent)
        limit = self.alpha / recent.shape[1]
        moved: list[dict[str, float | str]] = []
        for j, name in enumerate(self.names_):
            result = stats.ks_2samp(self.reference_[:, j], recent[:, j])
            if result.pvalue < limit:
                shift = float((recent[:, j].mean() - self.mean_[j]) / self.std_[j])
                moved.append(
                    {
                        "sensor": name,
                        "statistic": float(result.statistic),
                        "p_value": float(result.pvalue),
                        "shift_sigmas": shift,
                    }
                )
        moved.sort(key=lambda s: -float(s["statistic"]))
        return InputDriftReport(bool(moved), n, moved)
