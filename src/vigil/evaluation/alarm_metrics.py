"""Figures of alarm management (ISA-18.2, EEMUA 191) and the range-based VUS-PR of Paparrizos et al.

- `alarm_floods`: the 10-minute windows in which more than 10 alarms were annunciated (ISA-18.2's
  definition of a flood); EEMUA 191 calls fewer than one alarm per 10 minutes per operator acceptable.
- `vus_pr`: the volume under the range-precision / range-recall surface over buffer lengths (VLDB 2022),
  the threshold-free figure TSB-AD reports, robust to labels that start or end a little early or late.
- `budget_threshold`: the lowest set level whose alarms on held-out normal scores stay within a budget of
  false-alarm events per day, so that "event recall at a budget" is chosen on training data, never on
  the test labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vigil.errors import InvalidInputError

__all__ = ["alarm_floods", "budget_threshold", "range_pr_auc", "vus_pr"]

FLOOD_WINDOW_SECONDS = 600.0
FLOOD_ALARMS = 10


def alarm_floods(
    raised: ArrayLike,
    seconds: ArrayLike | None = None,
    *,
    sample_seconds: float = 1.0,
    window: float = FLOOD_WINDOW_SECONDS,
    limit: int = FLOOD_ALARMS,
) -> dict[str, Any]:
    """Count alarm floods: consecutive ``window``-second intervals with more than ``limit`` alarms.

    Parameters
    ----------
    raised : array-like of bool, shape (n,)
        True where an alarm is annunciated (the start of an alarm, not every row it lasts).
    seconds : array-like of float, shape (n,), optional
        Time of each row in seconds; rows are ``sample_seconds`` apart without it.

    Returns
    -------
    dict
        ``alarm_floods`` (intervals in flood), ``flood_intervals`` (intervals counted), ``flood_share`` and
        ``peak_alarms_per_10min`` (the busiest interval).

    Examples
    --------
    >>> raised = np.zeros(1800, dtype=bool); raised[:12] = True   # 12 alarms in the first 10 minutes
    >>> alarm_floods(raised)
    {'alarm_floods': 1, 'flood_intervals': 3, 'flood_share': 0.333..., 'peak_alarms_per_10min': 12}
    """
    starts = np.asarray(raised, dtype=bool).reshape(-1)
    n = starts.size
    if n == 0:
        return {"alarm_floods": 0, "flood_intervals": 0, "flood_share": float("nan"), "peak_alarms_per_10min": 0}
    times = np.arange(n) * float(sample_seconds) if seconds is None else np.asarray(seconds, dtype=np.float64)
    bins = np.floor((times - times[0]) / window).astype(np.int64)
    counts = np.bincount(bins[starts], minlength=int(bins[-1]) + 1)
    floods = int(np.count_nonzero(counts > limit))
    return {
        "alarm_floods": floods,
        "flood_intervals": int(counts.size),
        "flood_share": floods / counts.size,
        "peak_alarms_per_10min": int(counts.max()) if counts.size else 0,
    }


def _runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start and end (exclusive) indices of the runs of True in ``mask``."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _soft_labels(truth: NDArray[np.bool_], buffer: int) -> NDArray[np.float64]:
    """Labels extended by ``buffer // 2`` rows on each side of every segment, weights ``sqrt(1 − d / buffer)``."""
    soft = truth.astype(np.float64)
    if buffer <= 1:
        return soft
    half = buffer // 2
    n = truth.size
    starts, ends = _runs(truth)
    for s, e in zip(starts, ends, strict=True):
        after = np.arange(e, min(e + half, n))
        soft[after] = np.maximum(soft[after], np.sqrt(1.0 - (after - e + 1) / buffer))
        before = np.arange(max(s - half, 0), s)
        soft[before] = np.maximum(soft[before], np.sqrt(1.0 - (s - before) / buffer))
    return soft


def range_pr_auc(y_true: ArrayLike, scores: ArrayLike, *, buffer: int = 0, n_thresholds: int = 250) -> float:
    """Range-based PR-AUC at one buffer length (Paparrizos et al. 2022); ``nan`` without any anomaly.

    Precision and recall use labels softened ``buffer // 2`` rows around each segment; recall is scaled by
    the share of (extended) segments that have at least one flagged row (the existence reward).
    ``n_thresholds`` thresholds are sampled evenly from the sorted scores, as in the reference code.

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1, 1, 0, 0, 0])
    >>> round(range_pr_auc(y, [0, 0, 0.1, 0.9, 0.8, 0.2, 0, 0]), 3)
    1.0
    >>> range_pr_auc(y, [0, 0, 0.1, 0.9, 0.8, 0.2, 0, 0], buffer=4) < 1.0
    True
    """
    checked = _checked(y_true, scores)
    if checked is None:
        return float("nan")
    truth, values = checked
    return _range_pr_auc(truth, values, np.argsort(-values, kind="stable"), int(buffer), n_thresholds)


def _checked(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.float64]] | None:
    """Labels and finite scores of equal length; None when there is no anomaly to find."""
    truth = np.asarray(y_true).reshape(-1) > 0
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if truth.shape != values.shape:
        msg = f"y_true has {truth.size} rows but scores has {values.size}"
        raise InvalidInputError(msg)
    if not truth.any():
        return None
    if not np.isfinite(values).all():
        msg = f"scores[row {int(np.flatnonzero(~np.isfinite(values))[0])}] is not finite"
        raise InvalidInputError(msg)
    return truth, values


def _range_pr_auc(
    truth: NDArray[np.bool_], values: NDArray[np.float64], order: NDArray[np.intp], buffer: int, n_thresholds: int
) -> float:
    """Range PR-AUC of checked inputs, given the rows in descending score order (shared across buffers)."""
    soft = _soft_labels(truth, buffer)
    ranked = values[order]
    cum_tp = np.cumsum(soft[order])
    picks = np.linspace(0, values.size - 1, min(n_thresholds, values.size)).astype(np.int64)
    thresholds = ranked[picks]
    # rows at or above each threshold (ties included), as `scores >= t` would flag them
    flagged = np.searchsorted(-ranked, -thresholds, side="right")
    tp = cum_tp[flagged - 1]
    positives = 0.5 * (truth.sum() + soft.sum())
    starts, ends = _runs(soft > 0)
    peaks = np.array([values[s:e].max() for s, e in zip(starts, ends, strict=True)])
    existence = (peaks[None, :] >= thresholds[:, None]).mean(axis=1)
    recall = np.minimum(tp / positives, 1.0) * existence
    precision = tp / flagged
    recall = np.concatenate(([0.0], recall))
    precision = np.concatenate(([1.0], precision))
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2.0))


def vus_pr(y_true: ArrayLike, scores: ArrayLike, *, max_buffer: int = 100, n_buffers: int = 21) -> float:
    """Volume under the range-PR surface: the mean range PR-AUC over buffers ``0 … max_buffer`` rows.

    ``n_buffers`` buffer lengths are taken evenly over that span (the reference code takes every length;
    an even grid of 21 keeps long series cheap). The scores are sorted once for all buffers.

    Examples
    --------
    >>> y = np.zeros(200, dtype=bool); y[100:120] = True
    >>> perfect = y.astype(float)
    >>> round(vus_pr(y, perfect, max_buffer=20), 3) > round(vus_pr(y, np.roll(perfect, 15), max_buffer=20), 3)
    True
    """
    checked = _checked(y_true, scores)
    if checked is None:
        return float("nan")
    truth, values = checked
    order = np.argsort(-values, kind="stable")
    buffers = np.unique(np.linspace(0, max_buffer, n_buffers).round().astype(np.int64))
    return float(np.mean([_range_pr_auc(truth, values, order, int(b), 250) for b in buffers]))


def budget_threshold(
    calibration_scores: ArrayLike,
    stage: Any,
    *,
    events_per_day: float,
    seconds_per_row: float,
) -> float:
    """The lowest static threshold whose alarms on held-out normal scores stay within a daily budget.

    ``stage`` is a fitted :class:`~vigil.alarms.AlarmStage`; each candidate threshold refits a copy of it
    and runs it over ``calibration_scores``, counting annunciated alarms. The budget allowed is
    ``events_per_day × (calibration duration in days)``, rounded down: on a short calibration period that
    is 0, and the threshold is the largest calibration score.

    Examples
    --------
    >>> from vigil.alarms import AlarmStage
    >>> scores = np.zeros(86_400); scores[::8640] = 1.0          # one day, ten isolated high readings
    >>> stage = AlarmStage().fit(scores, threshold=0.5)
    >>> budget_threshold(scores, stage, events_per_day=20, seconds_per_row=1.0)
    0.0
    >>> budget_threshold(scores, stage, events_per_day=5, seconds_per_row=1.0)
    1.0
    """
    values = np.asarray(calibration_scores, dtype=np.float64).reshape(-1)
    days = values.size * seconds_per_row / 86_400.0
    allowed = int(np.floor(events_per_day * days))
    candidates = np.unique(values)
    low, high = 0, candidates.size - 1  # the largest score flags nothing: always within budget
    while low < high:
        mid = (low + high) // 2
        trial = stage.clone().fit(values, float(candidates[mid]))
        if int(trial.run(values).raised.sum()) <= allowed:
            high = mid
        else:
            low = mid + 1
    return float(candidates[low])
