"""Put a χ² statistic over fewer degrees of freedom on the scale of the full one, at the same tail probability.

A Gaussian model scores a row by a statistic that is χ²(d) for normal rows over ``d`` sensors. With some
sensors missing, the same statistic over the ``k`` that remain is χ²(k): smaller, on another scale. Mapping
it to the χ²(d) value with the same upper-tail probability keeps the false-alarm rate of a threshold
calibrated on complete rows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import stats

__all__ = ["same_tail"]


def same_tail(statistic: NDArray[np.float64], k: int, d: int) -> NDArray[np.float64]:
    """The χ²(d) value whose upper-tail probability equals that of ``statistic`` under χ²(k).

    Where the tail probability underflows (a statistic far beyond any threshold), the statistic is scaled
    by ``d / k`` instead, which keeps the order of the scores and stays far beyond the threshold.

    Examples
    --------
    >>> float(same_tail(np.array([3.841]), 1, 1)[0])
    3.841
    >>> bool(abs(same_tail(np.array([3.841]), 1, 4)[0] - 9.488) < 1e-2)  # both the 5 % points
    True
    """
    statistic = np.asarray(statistic, dtype=np.float64)
    if k == d:
        return statistic.copy()
    tail = stats.chi2.sf(statistic, k)
    with np.errstate(divide="ignore"):
        mapped = stats.chi2.isf(tail, d)
    return np.where((tail > 0) & np.isfinite(mapped), mapped, statistic * d / k)
