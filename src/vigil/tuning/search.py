"""Optuna search whose objective is computed on time-ordered validation folds of the training data only.

For every trial and every training table (a benchmark file, a machine, a user's CSV), the rows are cut
into forward-chaining folds. Each fold fits a pipeline on its past and validates on its block: against
the block's labels when the training data carry anomalies, otherwise against synthetic faults injected
into the (normal) block. The trial's value is the mean F1 over tables and folds; bad trials are pruned
after each table. Test data never enter the search.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import InvalidInputError
from vigil.evaluation.cv import forward_chaining_folds
from vigil.evaluation.injection import inject_anomalies
from vigil.evaluation.metrics import confusion_counts, point_metrics
from vigil.pipeline import Pipeline
from vigil.progress import progress as progress_bar

__all__ = ["TrainingTable", "TuningResult", "cross_validate", "fold_metrics", "require_optuna", "tune"]


def require_optuna():
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - exercised only without optuna
        msg = "tuning needs Optuna: pip install 'vigil[tune]'"
        raise ImportError(msg) from exc
    return optuna


@dataclass(frozen=True)
class TrainingTable:
    """Time-ordered training rows of one series; ``y`` marks known anomalies (None: all assumed normal)."""

    name: str
    X: pd.DataFrame
    y: np.ndarray | None = None


@dataclass
class TuningResult:
    best_params: dict[str, Any]
    best_value: float
    default_value: float
    n_trials: int
    seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def fold_metrics(
    make_pipeline: Callable[[], Pipeline], table: TrainingTable, n_folds: int, gap: int, seed: int
) -> list[dict[str, float]]:
    out = []
    values = table.X.to_numpy(dtype=np.float64)
    for fold in forward_chaining_folds(len(values), n_folds, gap=gap):
        train = table.X.iloc[fold.train]
        if table.y is not None:
            train = train.loc[~table.y[fold.train]]
        pipe = make_pipeline().fit(train)
        block = values[fold.validation]
        truth = None if table.y is None else table.y[fold.validation]
        if truth is None or not truth.any():
            scale = pipe.scaler_.scale_
            # One fault per hundred rows, each at most a tenth of the block and no longer than its share of
            # the block (a 6,000-row block gets 60 faults of up to 98 rows, not up to 600 that cannot fit).
            n_events = max(1, len(block) // 100)
            longest = max(6, min(len(block) // 10, len(block) // n_events - 2))
            block, truth = inject_anomalies(
                block, scale=scale, n_events=n_events, length=(5, longest), random_state=seed + fold.number
            )
        context = pipe.context_rows
        history = values[fold.validation[0] - context : fold.validation[0]] if context else values[:0]
        rows = pd.DataFrame(np.vstack([history, block]), columns=table.X.columns)
        start = time.perf_counter()
        scores = pipe.score_samples(rows)[len(history) :]
        seconds = time.perf_counter() - start
        metrics = point_metrics(confusion_counts(truth, scores > pipe.threshold_))
        out.append(
            {
                "f1": metrics["f1"],
                "far": metrics["far"],
                "recall": metrics["recall"],
                "ms_per_row": 1000.0 * seconds / len(block),
            }
        )
    return out


def cross_validate(
    make_pipeline: Callable[[], Pipeline],
    tables: Sequence[TrainingTable],
    *,
    n_folds: int = 3,
    gap: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Mean and standard deviation over tables × folds of F1, FAR, recall and scoring latency."""
    rows = [m for table in tables for m in fold_metrics(make_pipeline, table, n_folds, gap, seed)]
    out: dict[str, float] = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = float(np.nanmean(values))
        out[f"{key}_std"] = float(np.nanstd(values))
    out["n_folds"] = len(rows)
    return out


def tune(
    make_pipeline: Callable[[dict[str, Any]], Pipeline],
    space: Callable[[Any], dict[str, Any]],
    tables: Sequence[TrainingTable],
    *,
    n_trials: int = 20,
    n_folds: int = 3,
    gap: int = 0,
    seed: int = 0,
    storage: str | None = None,
    study_name: str | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> TuningResult:
    """Search ``space`` with TPE (seeded) and median pruning; return the best parameters and the default's value.

    The objective is the validation F1 minus any rise of the validation false-alarm rate above that of the
    default parameters, so the search cannot trade false alarms for detections.

    ``make_pipeline(params)`` builds an unfitted pipeline from detector parameters. With ``storage`` (for
    example ``sqlite:///study.db``) and ``study_name`` the study is saved after every trial and a later call
    resumes it.
    """
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    default = cross_validate(lambda: make_pipeline({}), tables, n_folds=n_folds, gap=gap, seed=seed)
    default_value, default_far = default["f1"], default["far"]

    def objective(trial: Any) -> float:
        # F1 on the validation folds, minus any rise of the false-alarm rate above the defaults': a tuned
        # model must not buy detections with false alarms.
        params = space(trial)
        trial.set_user_attr("params", params)
        scores = []
        for step, table in enumerate(tables):
            try:
                folds = fold_metrics(lambda: make_pipeline(params), table, n_folds, gap, seed)
            except InvalidInputError as exc:
                # A configuration these folds cannot fit (a window longer than a fold, say) is a dead end
                # of the space, not a reason to stop the search: it is pruned, with the reason kept.
                trial.set_user_attr("refused", str(exc))
                raise optuna.TrialPruned(str(exc)) from exc
            f1 = float(np.mean([m["f1"] for m in folds]))
            far = float(np.mean([m["far"] for m in folds]))
            scores.append(f1 - max(0.0, far - default_far))
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                raise optuna.TrialPruned
        return float(np.mean(scores))

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        storage=storage,
        study_name=study_name,
        load_if_exists=storage is not None,
    )
    done = len([t for t in study.trials if t.state.is_finished()])
    remaining = max(n_trials - done, 0)
    bar = progress_bar(total=remaining, desc="tuning", unit="trial", enabled=progress)

    def advance(study: Any, trial: Any) -> None:
        bar.update(1)
        if study.best_trials:
            bar.set_postfix_str(f"best F1 {study.best_value:.3f}")

    try:
        study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=[advance], catch=())
    finally:
        bar.close()
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed or study.best_value <= default_value:
        best_params, best_value = {}, default_value  # the defaults were not beaten: keep them
    else:
        best_params, best_value = dict(study.best_trial.user_attrs["params"]), float(study.best_value)
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.user_attrs.get("params", t.params),
            **({"refused": t.user_attrs["refused"]} if "refused" in t.user_attrs else {}),
        }
        for t in study.trials
    ]
    return TuningResult(best_params, best_value, default_value, len(study.trials), time.perf_counter() - start, trials)
