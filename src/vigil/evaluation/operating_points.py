"""The operating-point view a plant manager decides from: the expected cost per day of each candidate threshold.

Given what a false alarm costs to handle (``cost_false_alarm``: an operator's call-out, a stopped line) and
what an hour of undetected fault costs (``cost_fault_hour``: scrap, wear, risk), each candidate threshold
has an expected cost per day and per asset::

    cost per day = cost_false_alarm × false-alarm events per day
                 + cost_fault_hour × faults per day × undetected hours per fault

Both rates come from validation data, never from test rows: false-alarm events per day from the held-out
*normal* training scores the threshold was calibrated on (every alarm there is false), and the undetected
hours per fault from the same held-out rows with synthetic faults injected (the time from a fault's start
to its first alarm; a fault never alarmed counts its whole length). ``faults_per_day`` is the user's
expected fault rate (1 by default), because the rate of synthetic faults says nothing about the plant's.
The candidates are the calibrated threshold Vigil chose and the quantiles :data:`LEVELS` of the held-out
scores; each is decided by the pipeline's own alarm stage, refitted at that level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from vigil.errors import InvalidInputError
from vigil.evaluation.injection import inject_validation_faults

__all__ = [
    "COST_HEADER",
    "LEVELS",
    "cost_caption",
    "cost_rows",
    "cost_table",
    "operating_points",
    "pool_operating_points",
    "validation_faults",
]

LEVELS = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)
"""Quantiles of the held-out normal scores tried as thresholds (1.0: the largest, no false alarm there)."""

_SECONDS_PER_DAY = 86_400.0


def _check_costs(cost_false_alarm: float, cost_fault_hour: float, faults_per_day: float) -> None:
    for name, value in (
        ("cost_false_alarm", cost_false_alarm),
        ("cost_fault_hour", cost_fault_hour),
        ("faults_per_day", faults_per_day),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
            msg = f"{name} must be a finite number ≥ 0, got {value!r}"
            raise InvalidInputError(msg)


def _undetected_rows(truth: np.ndarray, active: np.ndarray) -> list[int]:
    """Per fault (run of True in ``truth``): rows from its start to its first alarm, or its length if none."""
    edges = np.diff(np.concatenate(([0], truth.astype(np.int8), [0])))
    out = []
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        hits = np.flatnonzero(active[start:end])
        out.append(int(hits[0]) if hits.size else int(end - start))
    return out


def operating_points(
    clean_scores: ArrayLike,
    faulty_scores: ArrayLike,
    fault_labels: ArrayLike,
    stage: Any,
    chosen: float,
    *,
    cost_false_alarm: float,
    cost_fault_hour: float,
    faults_per_day: float = 1.0,
    seconds_per_row: float = 1.0,
    levels: Sequence[float] = LEVELS,
) -> dict[str, Any]:
    """Expected cost per day of the chosen threshold and of each level's, from validation scores.

    Parameters
    ----------
    clean_scores : array-like
        Held-out normal scores (the ones the threshold was calibrated on).
    faulty_scores, fault_labels : array-like
        The same kind of rows with synthetic faults, and where they are.
    stage : AlarmStage
        The pipeline's (fitted or unfitted) alarm stage; each candidate refits a copy at its level.
    chosen : float
        The threshold Vigil calibrated and deploys.

    Returns
    -------
    dict
        ``rows`` (one per candidate: ``label``, ``threshold``, ``false_alarms_per_day``,
        ``undetected_hours_per_fault``, ``event_recall``, ``cost_per_day``, ``chosen``), ``cheapest`` (the
        label of the lowest cost, ties to the higher threshold), ``chosen_cost_per_day`` and the inputs.

    Examples
    --------
    >>> from vigil.alarms import AlarmStage
    >>> clean = np.r_[np.zeros(3590), np.ones(10)]          # an hour, ten high normal readings
    >>> faulty = np.r_[np.zeros(100), np.full(50, 2.0), np.zeros(50)]
    >>> truth = faulty > 1
    >>> view = operating_points(clean, faulty, truth, AlarmStage(), 0.5, cost_false_alarm=10, cost_fault_hour=1)
    >>> view["rows"][0]["label"], view["rows"][0]["false_alarms_per_day"], view["cheapest"]
    ('chosen', 24.0, 'q0.999')
    """
    _check_costs(cost_false_alarm, cost_fault_hour, faults_per_day)
    clean = np.asarray(clean_scores, dtype=np.float64).reshape(-1)
    faulty = np.asarray(faulty_scores, dtype=np.float64).reshape(-1)
    truth = np.asarray(fault_labels, dtype=bool).reshape(-1)
    if clean.size < 2 or faulty.shape != truth.shape or not truth.any():
        msg = "operating points need ≥ 2 held-out normal scores and faulty scores with at least one labelled fault"
        raise InvalidInputError(msg)
    if not (np.isfinite(seconds_per_row) and seconds_per_row > 0):
        msg = f"seconds_per_row must be positive, got {seconds_per_row!r}"
        raise InvalidInputError(msg)
    days = clean.size * seconds_per_row / _SECONDS_PER_DAY
    candidates = [("chosen", float(chosen))] + [(f"q{level:g}", float(np.quantile(clean, level))) for level in levels]
    rows: list[dict[str, Any]] = []
    for label, level in candidates:
        fitted = stage.clone().fit(clean, level)
        false_alarms = int(fitted.run(clean).raised.sum())
        missed = _undetected_rows(truth, fitted.run(faulty).active)
        hours = float(np.mean(missed)) * seconds_per_row / 3600.0
        per_day = false_alarms / days
        rows.append(
            {
                "label": label,
                "threshold": level,
                "false_alarms_per_day": per_day,
                "undetected_hours_per_fault": hours,
                "event_recall": float(np.mean([m < n for m, n in zip(missed, _lengths(truth), strict=True)])),
                "cost_per_day": cost_false_alarm * per_day + cost_fault_hour * faults_per_day * hours,
                "chosen": label == "chosen",
            }
        )
    cheapest = min(rows, key=lambda r: (r["cost_per_day"], -r["threshold"]))
    return {
        "cost_false_alarm": float(cost_false_alarm),
        "cost_fault_hour": float(cost_fault_hour),
        "faults_per_day": float(faults_per_day),
        "validation_days": days,
        "faults": len(_lengths(truth)),
        "rows": rows,
        "cheapest": cheapest["label"],
        "chosen_cost_per_day": rows[0]["cost_per_day"],
    }


def _lengths(truth: np.ndarray) -> list[int]:
    edges = np.diff(np.concatenate(([0], truth.astype(np.int8), [0])))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


def validation_faults(pipe: Any, X_train: Any, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a fitted pipeline's held-out training rows with synthetic faults injected, and their labels.

    The held-out rows are the last ``holdout`` share of ``X_train``, the ones :meth:`Pipeline.fit` calibrated
    on; they are scored after the rows before them, as in a stream. Faults of every kind are sized by
    :func:`~vigil.evaluation.injection.inject_validation_faults` in units of the fitted scaler's spread.
    """
    import pandas as pd

    values = np.asarray(X_train, dtype=np.float64)
    n_holdout = len(pipe.calibration_scores_)
    split = len(values) - n_holdout
    block = values[split:]
    faulty, truth = inject_validation_faults(block, scale=pipe.scaler_.scale_, random_state=seed)
    history = values[max(split - pipe.context_rows, 0) : split]
    rows = np.vstack([history, faulty])
    frame = pd.DataFrame(rows, columns=X_train.columns) if isinstance(X_train, pd.DataFrame) else rows
    return pipe.score_samples(frame)[len(history) :], truth


def pool_operating_points(per_part: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Means over parts (assets) of each candidate's rates and cost per day; ``cheapest`` of the means."""
    if not per_part:
        msg = "no part has an operating-point view to pool"
        raise InvalidInputError(msg)
    views = list(per_part.values())
    labels = [row["label"] for row in views[0]["rows"]]
    rows = []
    for i, label in enumerate(labels):
        keys = ("false_alarms_per_day", "undetected_hours_per_fault", "event_recall", "cost_per_day")
        rows.append(
            {
                "label": label,
                **{key: float(np.mean([view["rows"][i][key] for view in views])) for key in keys},
                "chosen": label == "chosen",
            }
        )
    cheapest = min(rows, key=lambda r: r["cost_per_day"])  # a tie goes to the earlier row: Vigil's choice first
    first = views[0]
    return {
        "cost_false_alarm": first["cost_false_alarm"],
        "cost_fault_hour": first["cost_fault_hour"],
        "faults_per_day": first["faults_per_day"],
        "parts": len(views),
        "validation_days": float(sum(view["validation_days"] for view in views)),
        "rows": rows,
        "cheapest": cheapest["label"],
        "chosen_cost_per_day": rows[0]["cost_per_day"],
        "cheapest_by_part": {name: view["cheapest"] for name, view in per_part.items()},
    }


def _name(label: str) -> str:
    if label == "chosen":
        return "calibrated"
    return "largest held-out score" if label == "q1" else f"held-out quantile {label[1:]}"


def cost_rows(view: dict[str, Any]) -> list[list[str]]:
    """The view's rows as table cells: threshold, false alarms per day, undetected minutes per fault, event
    recall, cost per day, and which is Vigil's choice and which the cheapest."""
    out = []
    for row in view["rows"]:
        marks = [
            m for m, on in (("Vigil's choice", row["chosen"]), ("cheapest", row["label"] == view["cheapest"])) if on
        ]
        out.append(
            [
                _name(row["label"]),
                f"{row['false_alarms_per_day']:.1f}",
                f"{60 * row['undetected_hours_per_fault']:.2f}",
                f"{row['event_recall']:.2f}",
                f"{row['cost_per_day']:.1f}",
                ", ".join(marks),
            ]
        )
    return out


COST_HEADER = ["threshold", "false alarms / day", "undetected min / fault", "event recall", "cost / day", ""]


def cost_caption(view: dict[str, Any]) -> str:
    """What the costs assume, in one sentence."""
    parts = view.get("parts", 1)
    scope = f"mean over {parts} assets" if parts > 1 else "one asset"
    return (
        f"Expected cost per day ({scope}, from {24 * view['validation_days']:.1f} h of held-out training rows in "
        f"all): {view['cost_false_alarm']:g} per false alarm, "
        f"{view['cost_fault_hour']:g} per hour of undetected fault, {view['faults_per_day']:g} fault(s) per day; "
        "rates from validation data (held-out training rows, and the same rows with synthetic faults), never "
        "from test rows."
    )


def cost_table(view: dict[str, Any]) -> str:
    """The view as a Markdown table, the chosen threshold and the cheapest one marked."""
    lines = [cost_caption(view), "", "| " + " | ".join(COST_HEADER) + " |", "|---|---:|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in cost_rows(view)]
    return "\n".join(lines)
