"""Prequential (test-then-train) evaluation: a deployment replayed over a labelled series.

The series is cut into consecutive chunks. Every chunk is first scored by the model in service; then, for
the adaptive run, a new model is fitted on the most recent rows that are believed normal: rows that
raised no alarm, and alarmed rows that operators marked as false positives. Rows operators confirmed as
anomalies, and alarms nobody reviewed, never teach the model what "normal" is. A poisoning guard refuses
the update when too many recent rows carry such alarms: then the recent data look anomalous themselves,
and learning from them would teach the model to accept the fault. The static run keeps the first model
throughout. Both are scored on exactly the same rows, so their figures compare directly.

With ``feedback=True`` operators are simulated reviewing every alarm: an alarm on a labelled-anomalous row
is confirmed, any other alarm is a false positive. With ``feedback=False`` no alarm is ever reviewed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import InvalidInputError
from vigil.evaluation.metrics import evaluate
from vigil.pipeline import Pipeline
from vigil.progress import progress as progress_bar

__all__ = ["PrequentialResult", "prequential"]


@dataclass
class PrequentialResult:
    static: dict[str, Any]
    adaptive: dict[str, Any]
    updates: list[dict[str, Any]] = field(default_factory=list)
    static_scores: np.ndarray | None = None
    adaptive_scores: np.ndarray | None = None
    adaptive_thresholds: np.ndarray | None = None


def _scores_with_history(pipe: Pipeline, X: pd.DataFrame, start: int, stop: int) -> np.ndarray:
    context = pipe.context_rows
    return pipe.score_samples(X.iloc[max(start - context, 0) : stop])[-(stop - start) :]


def prequential(
    X: pd.DataFrame,
    y: np.ndarray,
    make_pipeline: Callable[[], Pipeline],
    *,
    initial_rows: int,
    chunk: int = 500,
    window: int = 2000,
    guard: float = 0.5,
    margin: int = 60,
    remember: bool = True,
    feedback: bool = True,
    timestamps: np.ndarray | None = None,
    progress: bool = False,
) -> PrequentialResult:
    """Replay ``X`` after its first ``initial_rows`` (the initial training period) chunk by chunk.

    Parameters
    ----------
    X, y : table of rows and their labels (labels are used for metrics, and via ``confirmed`` only)
    make_pipeline : callable returning an unfitted pipeline
    initial_rows : int
        Rows used to fit the first model (assumed normal).
    chunk : int
        Rows scored between two updates.
    window : int
        Most recent rows an update learns from (alarmed and confirmed rows left out).
    guard : float
        Refuse an update when more than this share of the window's rows carry alarms not marked false.
    margin : int
        Rows on either side of a suspect alarm also left out of training: the onset and tail of a fault
        often stay below the threshold, and learning them would blunt detection of the next one.
    remember : bool
        Also learn from the initial training rows at every update, so that operating modes absent from
        the recent window are not forgotten (new modes are added, old ones kept).
    feedback : bool
        Simulate operators reviewing every alarm (see the module docstring).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from vigil.detectors.pca import PCADetector
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(3000, 1))
    >>> X = pd.DataFrame(np.hstack([t, t, -t]) + 0.1 * rng.normal(size=(3000, 3)), columns=list("abc"))
    >>> X.iloc[1500:] += 3.0                      # a new operating point from row 1500 on
    >>> r = prequential(X, np.zeros(3000, bool), lambda: Pipeline(PCADetector(n_components=1)), initial_rows=1000)
    >>> r.adaptive["far"] < r.static["far"] / 2
    True
    """
    n = len(X)
    if not 0 < initial_rows < n:
        msg = f"initial_rows must be between 1 and {n - 1}, got {initial_rows}"
        raise InvalidInputError(msg)
    labels = np.asarray(y, dtype=bool)
    static = make_pipeline().fit(X.iloc[:initial_rows])
    current = static
    static_scores = _scores_with_history(static, X, initial_rows, n)
    adaptive_scores = np.empty(n - initial_rows)
    thresholds = np.empty(n - initial_rows)
    alarms = np.zeros(n, dtype=bool)
    updates = []
    starts = range(initial_rows, n, chunk)
    for start in progress_bar(starts, desc="prequential", unit="chunk", enabled=progress):
        stop = min(start + chunk, n)
        scores = _scores_with_history(current, X, start, stop)
        adaptive_scores[start - initial_rows : stop - initial_rows] = scores
        thresholds[start - initial_rows : stop - initial_rows] = current.threshold_
        alarms[start:stop] = scores > current.threshold_
        if stop == n:
            break
        lo = max(stop - window, 0)
        reviewed_false = alarms & ~labels if feedback else np.zeros(n, dtype=bool)
        suspect = alarms & ~reviewed_false  # confirmed or never reviewed
        near_suspect = suspect[lo:stop]
        if margin:
            kernel = np.ones(2 * margin + 1)
            near_suspect = np.convolve(suspect[lo:stop].astype(float), kernel, mode="same") > 0
        keep = ~near_suspect
        since = max(lo, initial_rows)
        share = float(suspect[since:stop].mean())
        record = {"row": stop, "suspect_share": share, "rows_kept": int(keep.sum())}
        if share > guard:
            record["updated"] = False
            record["reason"] = f"{100 * share:.0f} % of recent rows raised alarms (guard {100 * guard:.0f} %)"
        elif keep.sum() < max(50, current.context_rows + 10):
            record["updated"] = False
            record["reason"] = "too few normal rows to learn from"
        else:
            recent = X.iloc[lo:stop].loc[keep]
            # The held-out calibration rows are the last ones: keep the recent rows last so the threshold
            # is set on the newest behaviour.
            rows = pd.concat([X.iloc[: min(initial_rows, lo)], recent]) if remember else recent
            current = make_pipeline().fit(rows)
            record["updated"] = True
            record["reason"] = "fitted on recent normal rows"
        updates.append(record)
    truth = labels[initial_rows:]
    stamps = None if timestamps is None else np.asarray(timestamps)[initial_rows:]
    static_metrics = evaluate(truth, static_scores > static.threshold_, static_scores, timestamps=stamps)
    adaptive_metrics = evaluate(truth, adaptive_scores > thresholds, adaptive_scores / thresholds, timestamps=stamps)
    return PrequentialResult(static_metrics, adaptive_metrics, updates, static_scores, adaptive_scores, thresholds)
