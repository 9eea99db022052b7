"""Cross-validation folds that respect time: the future never trains a model that is scored on the past."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vigil.errors import InvalidInputError
from vigil.evaluation.metrics import evaluate

if TYPE_CHECKING:
    from vigil.pipeline import Pipeline

__all__ = ["Fold", "evaluate_folds", "forward_chaining_folds", "shuffled_folds"]


@dataclass(frozen=True)
class Fold:
    """Row positions of one fold: ``train`` and ``validation`` are index arrays into the table."""

    number: int
    train: np.ndarray
    validation: np.ndarray


def forward_chaining_folds(n_rows: int, n_folds: int, *, gap: int = 0, min_train: int | None = None) -> list[Fold]:
    """Expanding-window folds: train on everything before a block, skip ``gap`` rows, validate on the block.

    The rows after the first training stretch are cut into ``n_folds`` equal blocks; fold k trains on all
    rows before block k minus the ``gap`` rows just before it (so windows and slow dynamics cannot carry
    information across), and validates on block k.

    Parameters
    ----------
    n_rows : int
        Rows in the time-ordered table.
    n_folds : int
        Number of validation blocks (≥ 2).
    gap : int
        Rows left out between each training stretch and its validation block.
    min_train : int, optional
        Rows in the first training stretch; default: one block's worth.

    Examples
    --------
    >>> for f in forward_chaining_folds(100, 4, gap=5):
    ...     print(f.number, f.train.min(), f.train.max(), f.validation.min(), f.validation.max())
    0 0 14 20 39
    1 0 34 40 59
    2 0 54 60 79
    3 0 74 80 99
    """
    if n_folds < 2:
        msg = f"n_folds must be at least 2, got {n_folds}"
        raise InvalidInputError(msg)
    if gap < 0:
        msg = f"gap must be non-negative, got {gap}"
        raise InvalidInputError(msg)
    block = n_rows // (n_folds + 1) if min_train is None else (n_rows - min_train) // n_folds
    first = n_rows - n_folds * block
    if block < 2 or first - gap < 2:
        msg = f"{n_rows} rows are too few for {n_folds} time-ordered folds with a gap of {gap}"
        raise InvalidInputError(msg)
    folds = []
    for k in range(n_folds):
        start = first + k * block
        folds.append(Fold(k, np.arange(0, start - gap), np.arange(start, start + block)))
    return folds


def shuffled_folds(n_rows: int, n_folds: int, *, random_state: int | None = None) -> list[Fold]:
    """Shuffled k-fold, for independent records only (flow tables, images) — never for time series.

    Rows of a time series are not exchangeable: a shuffled fold trains on the future of its validation
    rows and on their neighbours, which inflates every figure. Use :func:`forward_chaining_folds` there.

    Examples
    --------
    >>> folds = shuffled_folds(10, 5, random_state=0)
    >>> sorted(np.concatenate([f.validation for f in folds]).tolist()) == list(range(10))
    True
    """
    if n_folds < 2 or n_folds > n_rows:
        msg = f"n_folds must be between 2 and the number of rows ({n_rows}), got {n_folds}"
        raise InvalidInputError(msg)
    order = np.random.default_rng(random_state).permutation(n_rows)
    parts = np.array_split(order, n_folds)
    return [
        Fold(k, np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k])), np.sort(part))
        for k, part in enumerate(parts)
    ]


def evaluate_folds(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[Fold],
    make_pipeline: Callable[[], Pipeline],
    *,
    time_ordered: bool = True,
) -> dict[str, Any]:
    """Fit a fresh pipeline on each fold's training rows (labelled anomalies left out) and score its
    validation rows; return every metric per fold and its mean and standard deviation over folds.

    With ``time_ordered`` the validation rows are scored after the ``context_rows`` that precede them, so
    windowed detectors see their history; shuffled folds have no history and are scored row by row.
    """
    labels = np.asarray(y, dtype=bool)
    per_fold = []
    for fold in folds:
        train = fold.train[~labels[fold.train]]
        pipe = make_pipeline().fit(X.iloc[train])
        if time_ordered and pipe.context_rows:
            first = int(fold.validation[0])
            history = max(first - pipe.context_rows, 0)
            scores = pipe.score_samples(X.iloc[history : int(fold.validation[-1]) + 1])[-len(fold.validation) :]
        else:
            scores = pipe.score_samples(X.iloc[fold.validation])
        truth = labels[fold.validation]
        metrics = evaluate(truth, scores > pipe.threshold_, scores)
        per_fold.append({"fold": fold.number, "train_rows": len(train), "rows": len(truth), **metrics})
    numeric = [k for k, v in per_fold[0].items() if isinstance(v, (int, float)) and k not in ("fold",)]
    mean = {k: float(np.nanmean([f[k] for f in per_fold])) for k in numeric}
    std = {k: float(np.nanstd([f[k] for f in per_fold])) for k in numeric}
    return {"per_fold": per_fold, "mean": mean, "std": std}
