"""Binary classification figures for network benchmarks, JSON-ready (rounded, NaN as None)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from vigil.evaluation.metrics import confusion_counts, point_metrics, pr_auc, roc_auc

__all__ = ["binary_report", "json_ready"]


def json_ready(value: Any) -> Any:
    """Round floats to 6 digits, turn NaN/inf into None and numpy scalars into Python ones, recursively.

    Examples
    --------
    >>> json_ready({"a": np.float64(0.1234567), "b": [float("nan")], "c": np.int64(3)})
    {'a': 0.123457, 'b': [None], 'c': 3}
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def binary_report(y_true: ArrayLike, decisions: ArrayLike, scores: ArrayLike | None = None) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, FAR, MAR, the four counts, and ROC-/PR-AUC when scores are given.

    Examples
    --------
    >>> r = binary_report([0, 0, 1, 1], [0, 1, 1, 1], scores=[0.1, 0.6, 0.7, 0.9])
    >>> r["accuracy"], r["far"], r["recall"], r["roc_auc"]
    (0.75, 0.5, 1.0, 1.0)
    """
    counts = confusion_counts(np.asarray(y_true, dtype=bool), np.asarray(decisions, dtype=bool))
    out: dict[str, Any] = {"accuracy": (counts.tp + counts.tn) / counts.total}
    out.update(point_metrics(counts))
    truth = np.asarray(y_true, dtype=bool)
    if scores is not None and truth.any() and not truth.all():
        out["roc_auc"] = roc_auc(truth, scores)
        out["pr_auc"] = pr_auc(truth, scores)
    return out
