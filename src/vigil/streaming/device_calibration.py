"""Per-device thresholds that operators' false-positive verdicts move, so each device holds a target FAR.

A model's threshold is calibrated on the training data of all devices together. A device whose normal
behaviour sits a little higher raises alert after alert that operators reject. Each ``false_positive``
verdict recalibrates that device alone: its threshold becomes the ``1 - target_far`` quantile of its
recent scores (periods inside confirmed alerts left out), never lower than the model's own threshold. With
too few recent scores for a quantile, the threshold is lifted just above the rejected alert's peak.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from vigil.errors import InvalidInputError

__all__ = ["DeviceCalibration"]


class DeviceCalibration:
    """Recent scores and threshold overrides of every device of one model version.

    Parameters
    ----------
    target_far : float
        The share of normal points a device may flag, in (0, 1).
    window : int
        Recent scores kept per device.
    min_samples : int
        Fewest recent scores from which a quantile is taken.

    Examples
    --------
    >>> cal = DeviceCalibration(target_far=0.1, window=100, min_samples=20)
    >>> for t in range(100):
    ...     cal.observe("p1", float(t), 1.0 + (t % 10) / 10)   # normal scores 1.0 … 1.9
    >>> cal.threshold("p1", default=1.5)
    1.5
    >>> cal.recalibrate("p1", default=1.5, peak=1.9)
    1.9
    >>> sum(s > cal.threshold("p1", 1.5) for s in cal.scores("p1")) / 100 <= 0.1
    True
    """

    def __init__(self, *, target_far: float = 0.01, window: int = 2000, min_samples: int = 200) -> None:
        if not (isinstance(target_far, float | int) and 0.0 < target_far < 1.0):
            msg = f"target_far must be in (0, 1), got {target_far!r}"
            raise InvalidInputError(msg)
        if not isinstance(window, int) or window < 1 or not isinstance(min_samples, int) or min_samples < 1:
            msg = f"window and min_samples must be integers >= 1, got {window!r} and {min_samples!r}"
            raise InvalidInputError(msg)
        self.target_far = float(target_far)
        self.window = window
        self.min_samples = min_samples
        self._recent: dict[str, deque[tuple[float, float]]] = {}
        self._overrides: dict[str, float] = {}

    def observe(self, device: str, timestamp: float, score: float) -> None:
        """Remember one scored point of ``device``."""
        recent = self._recent.get(device)
        if recent is None:
            recent = self._recent[device] = deque(maxlen=self.window)
        recent.append((timestamp, score))

    def scores(self, device: str) -> list[float]:
        """The recent scores of ``device``, oldest first."""
        return [score for _, score in self._recent.get(device, ())]

    def threshold(self, device: str, default: float) -> float:
        """The threshold in force for ``device``: its override, or ``default``."""
        return self._overrides.get(device, default)

    def recalibrate(
        self,
        device: str,
        *,
        default: float,
        peak: float | None = None,
        exclude: Iterable[tuple[float, float]] = (),
    ) -> float:
        """Recompute ``device``'s threshold after a false positive and return it.

        Parameters
        ----------
        device : str
        default : float
            The model's threshold: the result is never lower.
        peak : float, optional
            The rejected alert's peak score, used when there are too few recent scores.
        exclude : iterable of (start, end)
            POSIX-second ranges (confirmed anomalies) whose scores are not normal behaviour.
        """
        ranges = list(exclude)
        scores = [
            score for t, score in self._recent.get(device, ()) if not any(start <= t <= end for start, end in ranges)
        ]
        current = self.threshold(device, default)
        if len(scores) >= self.min_samples:
            level = float(np.quantile(np.asarray(scores), 1.0 - self.target_far, method="higher"))
            new = max(default, level)
        elif peak is not None and math.isfinite(peak):
            new = max(current, float(np.nextafter(peak, math.inf)))
        else:
            new = current
        if new > default:
            self._overrides[device] = new
        else:
            self._overrides.pop(device, None)
        return new

    def overrides(self) -> dict[str, float]:
        """Devices whose threshold differs from the model's, with their thresholds."""
        return dict(self._overrides)

    def restore(self, overrides: dict[str, Any]) -> None:
        """Load overrides saved from :meth:`overrides` (non-finite values are refused)."""
        for device, value in overrides.items():
            number = float(value)
            if not math.isfinite(number):
                msg = f"calibration threshold of device {device!r} is not finite: {value!r}"
                raise InvalidInputError(msg)
            self._overrides[str(device)] = number
