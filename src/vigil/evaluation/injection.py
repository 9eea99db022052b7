"""Synthetic anomalies injected into held-out *normal* training rows, to validate without test labels.

Tuning and model selection need a validation signal, and the honest protocols give no labels before the
test period. Injecting known faults — spikes, level shifts, drifts, stuck sensors and broken
correlations — into held-out normal rows supplies one, in units of each sensor's training spread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError

__all__ = ["KINDS", "inject_anomalies", "inject_validation_faults"]

KINDS = ("spike", "level_shift", "drift", "stuck", "noise")


def inject_anomalies(
    values: NDArray[np.float64],
    *,
    scale: NDArray[np.float64] | None = None,
    n_events: int = 4,
    magnitude: float = 4.0,
    length: tuple[int, int] = (10, 60),
    kinds: Sequence[str] = KINDS,
    random_state: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Return a copy of ``values`` with ``n_events`` non-overlapping synthetic faults, and their row labels.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_features)
        Normal, time-ordered rows.
    scale : ndarray of shape (n_features,), optional
        Each sensor's normal spread (default: its standard deviation in ``values``; 1 where constant).
    n_events : int
        Faults to inject; each hits one or two sensors.
    magnitude : float
        Size of a fault in units of ``scale`` (spikes, shifts, the end of a drift, added noise).
    length : (int, int)
        Shortest and longest fault, in rows (spikes last 1–3 rows).
    kinds : sequence of str
        Fault kinds to draw from: ``spike``, ``level_shift``, ``drift``, ``stuck``, ``noise``.
    random_state : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 3))
    >>> faulty, labels = inject_anomalies(X, n_events=3, random_state=1)
    >>> faulty.shape, bool(labels.any()), bool(np.array_equal(faulty[~labels], X[~labels]))
    ((500, 3), True, True)
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        msg = f"unknown fault kinds {unknown}; choose from {KINDS}"
        raise InvalidInputError(msg)
    n, d = values.shape
    lo, hi = length
    if n_events < 1 or lo < 1 or hi < lo or n < n_events * (hi + 2):
        msg = f"{n} rows cannot hold {n_events} faults of up to {hi} rows with gaps between them"
        raise InvalidInputError(msg)
    rng = np.random.default_rng(random_state)
    spread = values.std(axis=0) if scale is None else np.asarray(scale, dtype=np.float64)
    spread = np.where(spread > 0, spread, 1.0)
    out = values.copy()
    labels = np.zeros(n, dtype=bool)
    # One fault per equal slot, placed at random inside it, keeps faults apart without rejection sampling.
    slot = n // n_events
    for k in range(n_events):
        kind = str(rng.choice(list(kinds)))
        size = int(rng.integers(1, 4)) if kind == "spike" else int(rng.integers(lo, hi + 1))
        size = min(size, slot - 2)
        start = k * slot + int(rng.integers(1, slot - size))
        rows = slice(start, start + size)
        sensors = rng.choice(d, size=min(d, int(rng.integers(1, 3))), replace=False)
        sign = rng.choice([-1.0, 1.0], size=len(sensors))
        amount = magnitude * spread[sensors] * sign
        if kind in ("spike", "level_shift"):
            out[rows, sensors] += amount
        elif kind == "drift":
            out[rows, sensors] += np.linspace(0.0, 1.0, size)[:, None] * amount
        elif kind == "stuck":
            out[rows, sensors] = values[start, sensors]
        else:  # noise
            out[rows, sensors] += rng.normal(size=(size, len(sensors))) * magnitude * spread[sensors]
        labels[rows] = True
    return out, labels


def inject_validation_faults(
    block: NDArray[np.float64],
    *,
    scale: NDArray[np.float64] | None = None,
    kinds: Sequence[str] = KINDS,
    magnitude: float = 3.0,
    random_state: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Faults sized for a validation block of any length: about one per 300 rows (at least one), each at most
    half its slot and 200 rows, so a short block of held-out training rows still holds one.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(80, 2))
    >>> faulty, labels = inject_validation_faults(X, random_state=0)
    >>> 1 <= int(labels.sum()) <= 40
    True
    """
    n_events = max(1, len(block) // 300)
    longest = max(6, min(200, len(block) // (2 * n_events)))
    return inject_anomalies(
        block,
        scale=scale,
        n_events=n_events,
        magnitude=magnitude,
        length=(min(5, longest), longest),
        kinds=kinds,
        random_state=random_state,
    )
