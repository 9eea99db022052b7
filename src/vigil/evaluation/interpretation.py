"""How well per-feature contributions point at the true root cause (OmniAnomaly's HitRate@P%)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError

__all__ = ["hit_rate"]


def hit_rate(
    shares: NDArray[np.float64],
    root_causes: Sequence[tuple[int, int, Sequence[int]]],
    *,
    percent: float = 100.0,
    rows: NDArray[np.bool_] | None = None,
) -> float:
    """HitRate@P%: the share of true root-cause features found among the top-ranked ones.

    For every row inside a labelled range with root-cause set G (1-based feature numbers), the
    ⌊P/100 · |G|⌋ features with the largest shares are taken, and |top ∩ G| / |G| is that row's hit rate;
    the result is the mean over all such rows, whether the detector flagged them or not.

    Parameters
    ----------
    shares : ndarray of shape (n_rows, n_features)
        Per-feature contributions (any non-negative scale; only their order matters).
    root_causes : sequence of (start, end, dims)
        Half-open row ranges with their root-cause features, numbered from 1 (SMD's interpretation labels).
    percent : float
        P: 100 takes as many features as the root-cause set has; 150 takes half as many again.
    rows : ndarray of bool, optional
        Count only these rows: pass the detector's decisions to score the explanations of the anomalies it
        detected (OmniAnomaly interprets detected anomalies), rather than of every labelled row.

    Returns
    -------
    float
        In [0, 1]; ``nan`` when there is no labelled row.

    References
    ----------
    Su et al. (2019), Robust anomaly detection for multivariate time series through stochastic recurrent
    neural network (OmniAnomaly), KDD.

    Examples
    --------
    >>> import numpy as np
    >>> shares = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    >>> hit_rate(shares, [(0, 2, [1, 2])])          # row 0 finds both, row 1 finds feature 2 only
    0.75
    >>> hit_rate(shares, [(0, 2, [1, 2])], percent=150)   # ⌊1.5 · 2⌋ = 3 features: everything
    1.0
    >>> hit_rate(shares, [(0, 2, [1, 2])], rows=np.array([True, False]))   # only row 0 was detected
    1.0
    """
    values = np.asarray(shares, dtype=np.float64)
    if values.ndim != 2:
        msg = f"shares must be 2-D (rows × features), got shape {values.shape}"
        raise InvalidInputError(msg)
    n_rows, n_features = values.shape
    keep = np.ones(n_rows, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    if keep.shape != (n_rows,):
        msg = f"rows must hold one flag per row of shares ({n_rows}), got shape {keep.shape}"
        raise InvalidInputError(msg)
    total, count = 0.0, 0
    for start, end, dims in root_causes:
        truth = np.asarray(sorted(set(dims)), dtype=np.int64) - 1
        if not (0 <= start < end <= n_rows) or truth.size == 0 or truth.min() < 0 or truth.max() >= n_features:
            msg = f"root-cause range {start}-{end}:{list(dims)} does not fit shares of shape {values.shape}"
            raise InvalidInputError(msg)
        counted = start + np.flatnonzero(keep[start:end])
        k = min(math.floor(percent / 100.0 * truth.size), n_features)
        if k == 0:
            count += len(counted)
            continue
        top = np.argsort(-values[counted], axis=1, kind="stable")[:, :k]
        hits = np.isin(top, truth).sum(axis=1)
        total += float(hits.sum()) / truth.size
        count += len(counted)
    return total / count if count else float("nan")
