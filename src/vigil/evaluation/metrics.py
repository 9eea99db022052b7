"""Honest anomaly-detection metrics: point, event, delay and false-alarm figures for labelled series.

Every function takes 1-D arrays of equal length, one entry per row (time step):

- ``y_true``: ground-truth labels, boolean or numeric; any positive value means anomalous, 0 means normal.
  Negative values are rejected, because they usually mean scikit-learn's ``+1`` (inlier) / ``-1`` (outlier)
  convention, which would otherwise silently turn every row into an anomaly.
- ``y_pred``: the detector's decisions, in the same form as ``y_true``.
- ``scores``: finite floats, higher = more anomalous.
- ``timestamps``: optional, ``numpy.datetime64`` values or float seconds, non-decreasing.

An *anomaly segment* is a maximal run of consecutive anomalous rows, written as the half-open row range
``[start, end)``. Event-level figures (event recall, detection delay, false-alarm events) count segments
rather than rows, because an operator experiences an incident, not a row.

Undefined ratios are ``nan``, never a silent 0 or 1 (see `point_metrics` for the exact rules), and no
function lets a warning escape. Bad input raises `~vigil.errors.InvalidInputError` naming the argument and
the row.

Point-adjusted figures (`point_adjust`) and the oracle best F1 (`best_f1`) exist only to compare with
published tables; both are inflated and are never reported alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import average_precision_score, roc_auc_score

from vigil.errors import InvalidInputError
from vigil.evaluation.alarm_metrics import _runs, alarm_floods, vus_pr

__all__ = [
    "Counts",
    "best_f1",
    "confusion_counts",
    "detection_delays",
    "evaluate",
    "evaluate_groups",
    "event_recall",
    "false_alarm_events",
    "false_alarms_per_hour",
    "point_adjust",
    "point_metrics",
    "pr_auc",
    "roc_auc",
    "segments",
]

_NAN = float("nan")
_SECONDS_PER_HOUR = 3600.0


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------


def _check_1d(arr: NDArray[Any], name: str, n: int | None, ref: str) -> None:
    if arr.ndim != 1:
        msg = f"{name} must be 1-D, got {arr.ndim}-D with shape {arr.shape}"
        raise InvalidInputError(msg)
    if n is None:
        if arr.shape[0] == 0:
            msg = f"{name} is empty"
            raise InvalidInputError(msg)
    elif arr.shape[0] != n:
        msg = f"{name} has {arr.shape[0]} rows but {ref} has {n}"
        raise InvalidInputError(msg)


def _first_nonfinite(values: NDArray[np.float64], name: str) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        kind = "NaN" if np.isnan(values[i]) else "infinite"
        count = int((~finite).sum())
        more = f" ({count} non-finite rows in all)" if count > 1 else ""
        msg = f"{name}[row {i}] is {kind}{more}"
        raise InvalidInputError(msg)


def _labels(y: ArrayLike, name: str, n: int | None = None, ref: str = "y_true") -> NDArray[np.bool_]:
    """Validate labels or decisions and return them as a boolean array (True = anomalous)."""
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        msg = f"{name} must hold boolean or 0/1 labels, got dtype {arr.dtype}"
        raise InvalidInputError(msg)
    _check_1d(arr, name, n, ref)
    if arr.dtype.kind == "b":
        return arr.astype(bool, copy=False)
    if arr.dtype.kind == "f":
        _first_nonfinite(arr, name)
    negative = arr < 0
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        msg = (
            f"{name}[row {i}] is {arr[i].item()!r}: labels must be boolean or 0/1 (any positive value "
            "counts as anomalous), never negative "
            "(scikit-learn's predict() uses -1 for outliers; convert with `pred == -1`)"
        )
        raise InvalidInputError(msg)
    return arr != 0


def _scores(scores: ArrayLike, n: int, name: str = "scores") -> NDArray[np.float64]:
    arr = np.asarray(scores)
    if arr.dtype.kind not in "biuf":
        msg = f"{name} must be numeric, got dtype {arr.dtype}"
        raise InvalidInputError(msg)
    arr = arr.astype(np.float64, copy=False)
    _check_1d(arr, name, n, "y_true")
    _first_nonfinite(arr, name)
    return arr


def _timestamps(timestamps: ArrayLike, n: int) -> NDArray[np.float64]:
    """Validate timestamps and return them as float seconds (relative to the first row for datetimes)."""
    arr = np.asarray(timestamps)
    if arr.dtype.kind == "M":
        _check_1d(arr, "timestamps", n, "y_true")
        nat = np.isnat(arr)
        if nat.any():
            i = int(np.flatnonzero(nat)[0])
            msg = f"timestamps[row {i}] is NaT"
            raise InvalidInputError(msg)
        seconds = (arr - arr[0]) / np.timedelta64(1, "s")
        seconds = np.asarray(seconds, dtype=np.float64)
    elif arr.dtype.kind in "iuf":
        seconds = arr.astype(np.float64, copy=False)
        _check_1d(seconds, "timestamps", n, "y_true")
        _first_nonfinite(seconds, "timestamps")
    else:
        msg = (
            f"timestamps must be numpy datetime64 values or float seconds, got dtype {arr.dtype} "
            "(for timezone-aware pandas data pass `.to_numpy('datetime64[ns]')`)"
        )
        raise InvalidInputError(msg)
    backwards = np.diff(seconds) < 0
    if backwards.any():
        i = int(np.flatnonzero(backwards)[0]) + 1
        msg = f"timestamps[row {i}] is earlier than timestamps[row {i - 1}]; timestamps must not decrease"
        raise InvalidInputError(msg)
    return seconds


def _sample_seconds(sample_seconds: float) -> float:
    ok = isinstance(sample_seconds, (int, float, np.integer, np.floating)) and not isinstance(
        sample_seconds, (bool, np.bool_)
    )
    if not ok or not math.isfinite(float(sample_seconds)) or float(sample_seconds) <= 0:
        msg = f"sample_seconds must be a finite number > 0, got {sample_seconds!r}"
        raise InvalidInputError(msg)
    return float(sample_seconds)


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    truth = _labels(y_true, "y_true")
    pred = _labels(y_pred, "y_pred", truth.shape[0])
    return truth, pred


# ----------------------------------------------------------------------------------------------------------
# counts and point metrics
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    """Confusion counts of point-wise decisions; add them to pool several series (micro averaging).

    Attributes
    ----------
    tp, fp, fn, tn : int
        True positives (anomalous and flagged), false positives (normal but flagged), false negatives
        (anomalous, not flagged) and true negatives.

    Examples
    --------
    >>> Counts(tp=1, fp=2, fn=0, tn=5) + Counts(tp=3, fp=0, fn=1, tn=4)
    Counts(tp=4, fp=2, fn=1, tn=9)
    >>> sum([Counts(1, 0, 0, 1), Counts(0, 1, 1, 0)]).total
    4
    """

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    def __radd__(self, other: object) -> Counts:
        # lets the builtin ``sum`` start from 0
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    @property
    def total(self) -> int:
        """Number of rows counted."""
        return self.tp + self.fp + self.fn + self.tn


def _counts(truth: NDArray[np.bool_], pred: NDArray[np.bool_]) -> Counts:
    tp = int(np.count_nonzero(truth & pred))
    fp = int(np.count_nonzero(~truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    return Counts(tp=tp, fp=fp, fn=fn, tn=int(truth.shape[0]) - tp - fp - fn)


def confusion_counts(y_true: ArrayLike, y_pred: ArrayLike) -> Counts:
    """Count true/false positives/negatives of point-wise decisions.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Ground truth; positive = anomalous.
    y_pred : array-like of shape (n,)
        Decisions; positive = flagged.

    Returns
    -------
    Counts

    Raises
    ------
    InvalidInputError
        Arrays that are empty, not 1-D, of different lengths, non-numeric, non-finite or negative.

    Examples
    --------
    >>> confusion_counts([0, 1, 1, 0], [False, True, False, True])
    Counts(tp=1, fp=1, fn=1, tn=1)
    """
    return _counts(*_pair(y_true, y_pred))


def _ratio(num: int, den: int) -> float:
    return num / den if den > 0 else _NAN


def point_metrics(counts: Counts) -> dict[str, float | int]:
    """Point-wise precision, recall, F1, false-alarm rate and missed-alarm rate, as fractions in [0, 1].

    Parameters
    ----------
    counts : Counts

    Returns
    -------
    dict
        ``precision = TP/(TP+FP)``, ``recall = TP/(TP+FN)``, ``f1 = TP/(TP+(FP+FN)/2)``,
        ``far = FP/(FP+TN)`` (false-alarm rate), ``mar = FN/(FN+TP)`` (missed-alarm rate), and the four
        counts as ints.

    Notes
    -----
    Degenerate cases are fixed, not left to a division warning:

    - ``precision`` is 0.0 when nothing is flagged (TP+FP = 0): a silent detector earns no credit.
    - ``recall`` and ``mar`` are ``nan`` when the series holds no anomaly (TP+FN = 0): there was nothing to
      find, so neither figure means anything. Averages must skip them, not count them as 0 or 1.
    - ``far`` is ``nan`` when the series holds no normal row (FP+TN = 0).
    - ``f1`` is 0.0 whenever TP = 0, including the all-normal series with nothing flagged.

    Examples
    --------
    >>> m = point_metrics(Counts(tp=3, fp=1, fn=1, tn=5))
    >>> m["precision"], m["recall"], m["f1"], m["far"], m["mar"]
    (0.75, 0.75, 0.75, 0.1666, 0.25)
    >>> point_metrics(Counts(tp=0, fp=0, fn=0, tn=4))["recall"]
    nan
    """
    if not isinstance(counts, Counts):
        msg = f"counts must be a Counts (see confusion_counts), got {type(counts).__name__}"
        raise InvalidInputError(msg)
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    f1 = tp / (tp + (fp + fn) / 2) if tp > 0 else 0.0
    return {
        "precision": precision,
        "recall": _ratio(tp, tp + fn),
        "f1": f1,
        "far": _ratio(fp, fp + tn),
        "mar": _ratio(fn, fn + tp),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


# ----------------------------------------------------------------------------------------------------------
# threshold-free figures
# ----------------------------------------------------------------------------------------------------------


def _auc(truth: NDArray[np.bool_], values: NDArray[np.float64], kind: str) -> float:
    if truth.all() or not truth.any():
        # undefined with one class; sklearn would warn (PR) or raise (ROC)
        return _NAN
    if kind == "roc":
        return float(roc_auc_score(truth, values))
    return float(average_precision_score(truth, values))


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve of point scores; ``nan`` when ``y_true`` holds only one class.

    Parameters
    ----------
    y_true : array-like of shape (n,)
    scores : array-like of shape (n,)
        Finite, higher = more anomalous.

    Returns
    -------
    float

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    nan
    """
    truth = _labels(y_true, "y_true")
    return _auc(truth, _scores(scores, truth.shape[0]), "roc")


def pr_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (area under the precision-recall curve); ``nan`` when only one class is present.

    Unlike ROC-AUC it depends on the share of anomalies: a random detector scores about that share.

    Parameters
    ----------
    y_true : array-like of shape (n,)
    scores : array-like of shape (n,)
        Finite, higher = more anomalous.

    Returns
    -------
    float

    Examples
    --------
    >>> pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333
    >>> pr_auc([1, 1], [0.1, 0.2])
    nan
    """
    truth = _labels(y_true, "y_true")
    return _auc(truth, _scores(scores, truth.shape[0]), "pr")


# ----------------------------------------------------------------------------------------------------------
# segments and events
# ----------------------------------------------------------------------------------------------------------


def _next_flag(pred: NDArray[np.bool_]) -> NDArray[np.intp]:
    """For each row, the index of the first flagged row at or after it (``n`` when there is none)."""
    n = pred.shape[0]
    idx = np.where(pred, np.arange(n), n)
    return np.minimum.accumulate(idx[::-1])[::-1]


def segments(y_true: ArrayLike) -> list[tuple[int, int]]:
    """Contiguous anomalous runs as half-open row ranges ``[start, end)``.

    Parameters
    ----------
    y_true : array-like of shape (n,)

    Returns
    -------
    list of (int, int)

    Examples
    --------
    >>> segments([0, 1, 1, 0, 0, 1])
    [(1, 3), (5, 6)]
    """
    starts, ends = _runs(_labels(y_true, "y_true"))
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _first_hits(
    truth: NDArray[np.bool_], pred: NDArray[np.bool_]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.bool_]]:
    """Segment starts, first flagged row inside each segment, and whether it exists."""
    starts, ends = _runs(truth)
    first = _next_flag(pred)[starts] if starts.size else starts
    return starts, first, first < ends


def event_recall(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of anomaly segments with at least one flagged row; ``nan`` when there is no segment.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)

    Returns
    -------
    float

    Examples
    --------
    >>> event_recall([0, 1, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0, 1])
    0.5
    """
    _, _, hit = _first_hits(*_pair(y_true, y_pred))
    return float(hit.mean()) if hit.size else _NAN


def _delays(
    truth: NDArray[np.bool_], pred: NDArray[np.bool_], seconds: NDArray[np.float64] | None
) -> list[float | None]:
    starts, first, hit = _first_hits(truth, pred)
    out: list[float | None] = []
    for s, f, h in zip(starts, first, hit, strict=True):
        if not h:
            out.append(None)
        elif seconds is None:
            out.append(float(f - s))
        else:
            out.append(float(seconds[f] - seconds[s]))
    return out


def detection_delays(y_true: ArrayLike, y_pred: ArrayLike, timestamps: ArrayLike | None = None) -> list[float | None]:
    """Per anomaly segment, the delay from its start to the first flagged row inside it.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    timestamps : array-like of shape (n,), optional
        ``numpy.datetime64`` values or float seconds, non-decreasing. Without them delays are in rows.

    Returns
    -------
    list of float or None
        One entry per segment, in order: the delay in rows (without ``timestamps``) or seconds, or ``None``
        when no row of the segment was flagged. A flag raised before the segment starts does not count as a
        detection of it.

    Examples
    --------
    >>> detection_delays([0, 1, 1, 1, 0, 1, 1], [0, 0, 0, 1, 0, 0, 0])
    [2.0, None]
    >>> t = np.array(["2024-01-01T00:00", "2024-01-01T00:01", "2024-01-01T00:05"], dtype="datetime64[s]")
    >>> detection_delays([1, 1, 1], [0, 0, 1], timestamps=t)
    [300.0]
    """
    truth, pred = _pair(y_true, y_pred)
    seconds = None if timestamps is None else _timestamps(timestamps, truth.shape[0])
    return _delays(truth, pred, seconds)


def _false_alarm_events(truth: NDArray[np.bool_], pred: NDArray[np.bool_]) -> int:
    starts, ends = _runs(pred)
    anomalous_before = np.concatenate(([0], np.cumsum(truth)))
    overlaps = anomalous_before[ends] - anomalous_before[starts] > 0
    return int(np.count_nonzero(~overlaps))


def false_alarm_events(y_true: ArrayLike, y_pred: ArrayLike) -> int:
    """Number of contiguous runs of flagged rows that overlap no anomaly segment.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)

    Returns
    -------
    int

    Examples
    --------
    >>> false_alarm_events([0, 0, 1, 1, 0, 0, 0], [1, 0, 0, 1, 1, 0, 1])
    2
    """
    return _false_alarm_events(*_pair(y_true, y_pred))


def _row_seconds(n: int, seconds: NDArray[np.float64] | None, sample_seconds: float) -> NDArray[np.float64]:
    """Duration each row stands for: the step to the next timestamp (last row: the median step)."""
    if seconds is None:
        return np.full(n, sample_seconds)
    if n == 1:
        return np.array([sample_seconds])
    steps = np.diff(seconds)
    return np.concatenate((steps, [float(np.median(steps))]))


def _normal_seconds(truth: NDArray[np.bool_], seconds: NDArray[np.float64] | None, sample_seconds: float) -> float:
    return float(_row_seconds(truth.shape[0], seconds, sample_seconds)[~truth].sum())


def _per_hour(events: int, normal_seconds: float) -> float:
    return events / (normal_seconds / _SECONDS_PER_HOUR) if normal_seconds > 0 else _NAN


def false_alarms_per_hour(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    timestamps: ArrayLike | None = None,
    sample_seconds: float = 1.0,
) -> float:
    """False-alarm events per hour of normal (non-anomalous) time.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    timestamps : array-like of shape (n,), optional
        ``numpy.datetime64`` values or float seconds, non-decreasing. Each row then lasts until the next
        timestamp, and the last row lasts the median step. Gaps in the data count as normal time, so split a
        series at long gaps and pool the parts with `evaluate_groups`.
    sample_seconds : float
        Duration of one row when ``timestamps`` is not given (and of a single-row series).

    Returns
    -------
    float
        `false_alarm_events` divided by the normal duration in hours; ``nan`` when there is no normal time.

    Examples
    --------
    >>> false_alarms_per_hour([0] * 7200, [1] + [0] * 7199, sample_seconds=1.0)  # 1 alarm in 2 h
    0.5
    """
    truth, pred = _pair(y_true, y_pred)
    step = _sample_seconds(sample_seconds)
    seconds = None if timestamps is None else _timestamps(timestamps, truth.shape[0])
    return _per_hour(_false_alarm_events(truth, pred), _normal_seconds(truth, seconds, step))


# ----------------------------------------------------------------------------------------------------------
# comparison-only figures: point adjust and oracle best F1
# ----------------------------------------------------------------------------------------------------------


def _point_adjust(truth: NDArray[np.bool_], pred: NDArray[np.bool_]) -> NDArray[np.bool_]:
    starts, ends = _runs(truth)
    first = _next_flag(pred)[starts] if starts.size else starts
    hit = first < ends
    marks = np.zeros(truth.shape[0] + 1, dtype=np.int64)
    np.add.at(marks, starts[hit], 1)
    np.add.at(marks, ends[hit], -1)
    return pred | (np.cumsum(marks[:-1]) > 0)


def point_adjust(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.bool_]:
    """Apply the point-adjust protocol: a segment with any flagged row becomes flagged in full.

    .. warning::
       Point-adjusted figures are inflated, often grossly: one lucky flag inside a long segment counts as
       detecting every row of it, so even random scores reach a high point-adjusted F1. Report such figures
       only beside the unadjusted ones, and label them "point-adjusted". They exist to compare with papers
       that use the protocol, never to judge a detector on their own.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
        The adjusted decisions; flags outside anomaly segments are kept as they are.

    Examples
    --------
    >>> point_adjust([0, 1, 1, 1, 0, 1, 1], [1, 0, 1, 0, 0, 0, 0]).astype(int)
    array([1, 1, 1, 1, 0, 0, 0])
    """
    return _point_adjust(*_pair(y_true, y_pred))


def best_f1(y_true: ArrayLike, scores: ArrayLike) -> dict[str, float]:
    """The oracle best point-wise F1 over all thresholds, chosen with the test labels.

    This is an *oracle* figure: it picks the threshold by looking at the labels it is scored on, which no
    deployed detector can do. Use it only to compare with papers that report it, beside the F1 of the
    threshold the detector actually chose; never deploy the returned threshold.

    Parameters
    ----------
    y_true : array-like of shape (n,)
    scores : array-like of shape (n,)
        Finite, higher = more anomalous.

    Returns
    -------
    dict
        ``f1``, ``threshold``, ``precision`` and ``recall``, where rows with ``scores >= threshold`` are
        flagged. The threshold is one of the scores; among ties in F1 the highest threshold wins. All four
        are ``nan`` when ``y_true`` holds no anomaly.

    Notes
    -----
    One sort and two cumulative sums evaluate every distinct threshold at once, O(n log n).

    Examples
    --------
    >>> best_f1([0, 0, 1, 1, 0], [0.1, 0.2, 0.9, 0.4, 0.5])
    {'f1': 0.8, 'threshold': 0.4, 'precision': 0.6666, 'recall': 1.0}
    """
    truth = _labels(y_true, "y_true")
    values = _scores(scores, truth.shape[0])
    positives = int(truth.sum())
    if positives == 0:
        return {"f1": _NAN, "threshold": _NAN, "precision": _NAN, "recall": _NAN}
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    tp = np.cumsum(truth[order])
    flagged = np.arange(1, ranked.shape[0] + 1)
    # last position of each distinct score: flagging ``scores >= ranked[k]`` flags exactly k + 1 rows
    ends = np.flatnonzero(np.concatenate((ranked[1:] != ranked[:-1], [True])))
    tp, flagged = tp[ends], flagged[ends]
    f1 = 2 * tp / (flagged + positives)  # = TP / (TP + (FP + FN)/2) with FP = flagged - TP, FN = P - TP
    k = int(np.argmax(f1))
    return {
        "f1": float(f1[k]),
        "threshold": float(ranked[ends[k]]),
        "precision": float(tp[k] / flagged[k]),
        "recall": float(tp[k] / positives),
    }


# ----------------------------------------------------------------------------------------------------------
# one-call evaluation
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Summary:
    """Everything needed to report one series, and to pool several by adding raw counts."""

    counts: Counts
    adjusted: Counts
    truth: NDArray[np.bool_]
    scores: NDArray[np.float64] | None
    n_segments: int
    n_detected: int
    delays: list[float]
    delay_unit: str
    false_alarm_events: int
    normal_seconds: float
    floods: tuple[int, int, int]
    vus: list[float]


def _summarize(
    truth: NDArray[np.bool_],
    pred: NDArray[np.bool_],
    scores: NDArray[np.float64] | None,
    seconds: NDArray[np.float64] | None,
    sample_seconds: float,
) -> _Summary:
    delays = _delays(truth, pred, seconds)
    found = [d for d in delays if d is not None]
    starts, _ = _runs(pred)
    raised = np.zeros(pred.shape[0], dtype=bool)
    raised[starts] = True
    flood = alarm_floods(raised, seconds, sample_seconds=sample_seconds)
    vus = [vus_pr(truth, scores)] if scores is not None and truth.any() else []
    return _Summary(
        counts=_counts(truth, pred),
        adjusted=_counts(truth, _point_adjust(truth, pred)),
        truth=truth,
        scores=scores,
        n_segments=len(delays),
        n_detected=len(found),
        delays=found,
        delay_unit="rows" if seconds is None else "seconds",
        false_alarm_events=_false_alarm_events(truth, pred),
        normal_seconds=_normal_seconds(truth, seconds, sample_seconds),
        floods=(flood["alarm_floods"], flood["flood_intervals"], flood["peak_alarms_per_10min"]),
        vus=vus,
    )


def _merge(parts: Sequence[_Summary]) -> _Summary:
    with_scores = all(p.scores is not None for p in parts)
    return _Summary(
        counts=sum((p.counts for p in parts), Counts(0, 0, 0, 0)),
        adjusted=sum((p.adjusted for p in parts), Counts(0, 0, 0, 0)),
        truth=np.concatenate([p.truth for p in parts]),
        scores=np.concatenate([p.scores for p in parts if p.scores is not None]) if with_scores else None,
        n_segments=sum(p.n_segments for p in parts),
        n_detected=sum(p.n_detected for p in parts),
        delays=[d for p in parts for d in p.delays],
        delay_unit=parts[0].delay_unit,
        false_alarm_events=sum(p.false_alarm_events for p in parts),
        normal_seconds=sum(p.normal_seconds for p in parts),
        floods=(
            sum(p.floods[0] for p in parts),
            sum(p.floods[1] for p in parts),
            max((p.floods[2] for p in parts), default=0),
        ),
        vus=[v for p in parts for v in p.vus],
    )


def _report(s: _Summary) -> dict[str, Any]:
    point = point_metrics(s.counts)
    out: dict[str, Any] = {key: point[key] for key in ("precision", "recall", "f1")}
    # the inflated figure sits right beside the honest one, under a name that says what it is
    out["f1_point_adjusted"] = point_metrics(s.adjusted)["f1"]
    out.update({key: point[key] for key in ("far", "mar", "tp", "fp", "fn", "tn")})
    if s.scores is not None:
        out["roc_auc"] = _auc(s.truth, s.scores, "roc")
        out["pr_auc"] = _auc(s.truth, s.scores, "pr")
        # VUS-PR is a per-series figure: pooled, it is the mean over the series that have an anomaly.
        out["vus_pr"] = float(np.mean(s.vus)) if s.vus else _NAN
    out["n_segments"] = s.n_segments
    out["event_recall"] = s.n_detected / s.n_segments if s.n_segments else _NAN
    out["detection_delay_mean"] = float(np.mean(s.delays)) if s.delays else _NAN
    out["detection_delay_median"] = float(np.median(s.delays)) if s.delays else _NAN
    out["detection_delay_p90"] = float(np.quantile(s.delays, 0.9)) if s.delays else _NAN
    out["detection_delay_unit"] = s.delay_unit
    out["false_alarm_events"] = s.false_alarm_events
    out["normal_hours"] = s.normal_seconds / _SECONDS_PER_HOUR
    out["false_alarms_per_hour"] = _per_hour(s.false_alarm_events, s.normal_seconds)
    out["alarm_floods"], out["flood_intervals"], out["peak_alarms_per_10min"] = s.floods
    return out


def evaluate(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    scores: ArrayLike | None = None,
    timestamps: ArrayLike | None = None,
    sample_seconds: float = 1.0,
) -> dict[str, Any]:
    """Every figure for one labelled series: point, point-adjusted, threshold-free, event and alarm rates.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    scores : array-like of shape (n,), optional
        Finite, higher = more anomalous; adds ``roc_auc`` and ``pr_auc``.
    timestamps : array-like of shape (n,), optional
        ``numpy.datetime64`` values or float seconds; delays are then in seconds and durations come from them.
    sample_seconds : float
        Duration of one row when ``timestamps`` is not given.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``f1_point_adjusted`` (inflated, see `point_adjust`), ``far``,
        ``mar``, ``tp``, ``fp``, ``fn``, ``tn``; ``roc_auc``, ``pr_auc`` and ``vus_pr`` (see
        `~vigil.evaluation.alarm_metrics.vus_pr`) when ``scores`` are given; ``n_segments``,
        ``event_recall``, ``detection_delay_mean``, ``detection_delay_median`` and ``detection_delay_p90``
        (over detected segments; ``nan`` when none is detected), ``detection_delay_unit`` (``"rows"`` or
        ``"seconds"``), ``false_alarm_events``, ``normal_hours``, ``false_alarms_per_hour``, and the alarm
        floods of ISA-18.2: ``alarm_floods`` (10-minute intervals with more than 10 alarms raised, a run of
        flagged rows being one alarm), ``flood_intervals`` and ``peak_alarms_per_10min``. Undefined ratios
        are ``nan`` (see `point_metrics`).

    Examples
    --------
    >>> r = evaluate([0, 1, 1, 0, 0, 1, 1, 0], [0, 0, 1, 0, 1, 0, 0, 0], scores=[0, 2, 5, 1, 4, 3, 1, 0])
    >>> r["f1"], r["f1_point_adjusted"], r["event_recall"], r["false_alarm_events"]
    (0.3333, 0.5714, 0.5, 1)
    """
    truth, pred = _pair(y_true, y_pred)
    n = truth.shape[0]
    step = _sample_seconds(sample_seconds)
    values = None if scores is None else _scores(scores, n)
    seconds = None if timestamps is None else _timestamps(timestamps, n)
    return _report(_summarize(truth, pred, values, seconds, step))


def evaluate_groups(
    parts: Mapping[str, Sequence[Any]],
    *,
    sample_seconds: float = 1.0,
) -> dict[str, Any]:
    """Evaluate several series (files, devices) one by one and together.

    Parameters
    ----------
    parts : mapping of str to tuple
        ``name -> (y_true, y_pred, scores_or_None)``, optionally with a fourth item ``timestamps`` (or None).
        Either every part gives scores or none does, and likewise for timestamps.
    sample_seconds : float
        Duration of one row in parts without timestamps.

    Returns
    -------
    dict
        ``pooled``: micro figures, with the keys of `evaluate`. Counts are summed over parts before the point
        metrics are taken; ROC-AUC and PR-AUC are computed on the concatenated scores (so scores must be
        comparable across parts); event recall and delays run over all segments (a segment never spans two
        parts); false alarms per hour divide all false-alarm events by all normal time.
        ``per_part``: ``{name: evaluate(...)}``.
        ``macro``: unweighted means over parts of ``precision``, ``recall``, ``f1``, ``far`` and ``mar``,
        skipping parts where the figure is ``nan`` (``nan`` if it is ``nan`` everywhere), plus ``n_parts``.

    Raises
    ------
    InvalidInputError
        No parts, a malformed part (the message starts with ``parts['name']:``), or scores or timestamps given
        for some parts only.

    Examples
    --------
    >>> a = ([1, 1, 0, 0], [1, 1, 0, 0], None)
    >>> b = ([1, 0, 0, 0], [0, 0, 0, 1], None)
    >>> r = evaluate_groups({"a": a, "b": b})
    >>> r["pooled"]["f1"], r["macro"]["f1"], r["per_part"]["b"]["far"]
    (0.6666, 0.5, 0.3333)
    """
    if not isinstance(parts, Mapping):
        msg = f"parts must be a mapping of name to (y_true, y_pred, scores), got {type(parts).__name__}"
        raise InvalidInputError(msg)
    if not parts:
        msg = "parts is empty: give at least one (y_true, y_pred, scores) series"
        raise InvalidInputError(msg)
    step = _sample_seconds(sample_seconds)
    summaries: dict[str, _Summary] = {}
    for name, part in parts.items():
        if isinstance(part, (str, bytes)) or not isinstance(part, Sequence) or len(part) not in (3, 4):
            msg = (
                f"parts[{name!r}] must be a tuple (y_true, y_pred, scores_or_None[, timestamps]), "
                f"got {type(part).__name__}"
            )
            raise InvalidInputError(msg)
        y_true, y_pred, scores = part[0], part[1], part[2]
        timestamps = part[3] if len(part) == 4 else None
        try:
            truth, pred = _pair(y_true, y_pred)
            values = None if scores is None else _scores(scores, truth.shape[0])
            seconds = None if timestamps is None else _timestamps(timestamps, truth.shape[0])
        except InvalidInputError as exc:
            msg = f"parts[{name!r}]: {exc}"
            raise InvalidInputError(msg) from exc
        summaries[name] = _summarize(truth, pred, values, seconds, step)
    given = {
        "scores": {name: s.scores is not None for name, s in summaries.items()},
        "timestamps": {name: s.delay_unit == "seconds" for name, s in summaries.items()},
    }
    for what, has in given.items():
        if len(set(has.values())) > 1:
            have = next(n for n, k in has.items() if k)
            lack = next(n for n, k in has.items() if not k)
            msg = f"parts[{have!r}] has {what} but parts[{lack!r}] has none: give {what} for every part or none"
            raise InvalidInputError(msg)
    per_part = {name: _report(s) for name, s in summaries.items()}
    macro: dict[str, Any] = {}
    for key in ("precision", "recall", "f1", "far", "mar"):
        defined = [r[key] for r in per_part.values() if not math.isnan(r[key])]
        macro[key] = sum(defined) / len(defined) if defined else _NAN
    macro["n_parts"] = len(per_part)
    return {"pooled": _report(_merge(list(summaries.values()))), "per_part": per_part, "macro": macro}
