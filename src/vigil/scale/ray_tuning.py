"""The same hyperparameter search as ``vigil tune``, with its trials spread over a Ray cluster.

:func:`vigil.tuning.search.tune` runs Optuna's seeded TPE in one process. :func:`tune_with_ray` keeps the
sampler, the search space, the folds and the objective — validation F1 on forward-chaining folds of the
training data, minus any rise of the false-alarm rate above the default parameters' — and hands the trials
to Ray Tune: Optuna proposes through Ray's ``OptunaSearch``, each trial runs as a Ray task with one CPU, and
trials whose running mean falls below the median of earlier trials at the same table are stopped
(Ray's median stopping rule, the counterpart of Optuna's median pruner). The result has the same shape as
the local search's, so the rest of ``vigil tune`` (before/after table, saved pipeline) is unchanged.

With ``max_concurrent`` trials at once TPE proposes from fewer finished trials than in a sequential run,
so a parallel search with the same seed explores differently; its best value is comparable, not identical.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline
from vigil.scale._optional import require
from vigil.scale.ray_cluster import ray_session
from vigil.tuning.search import TrainingTable, TuningResult, cross_validate, fold_metrics, require_optuna

__all__ = ["tune_with_ray"]

_PARAMS = "vigil_params"


def _trial(
    config: dict[str, Any],
    *,
    make_pipeline: Callable[[dict[str, Any]], Pipeline],
    tables: Sequence[TrainingTable],
    n_folds: int,
    gap: int,
    seed: int,
    default_far: float,
) -> None:
    """One trial on a Ray worker: report the running objective after each table (so it can be stopped)."""
    from ray import tune

    params = config[_PARAMS]
    scores = []
    for step, table in enumerate(tables):
        folds = fold_metrics(lambda: make_pipeline(params), table, n_folds, gap, seed)
        f1 = float(np.mean([m["f1"] for m in folds]))
        far = float(np.mean([m["far"] for m in folds]))
        scores.append(f1 - max(0.0, far - default_far))
        tune.report({"objective": float(np.mean(scores)), "tables": step + 1})


class _DefineByRun:
    """Optuna's suggestions, plus the constructor parameters the space builds from them, as one config entry.

    A class rather than a closure: Ray Tune pickles the searcher when it checkpoints the experiment.
    """

    def __init__(self, space: Callable[[Any], dict[str, Any]]) -> None:
        self.space = space

    def __call__(self, trial: Any) -> dict[str, Any]:
        return {_PARAMS: self.space(trial)}


def tune_with_ray(
    make_pipeline: Callable[[dict[str, Any]], Pipeline],
    space: Callable[[Any], dict[str, Any]],
    tables: Sequence[TrainingTable],
    *,
    n_trials: int = 20,
    n_folds: int = 3,
    gap: int = 0,
    seed: int = 0,
    timeout: float | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    progress: bool = True,
) -> TuningResult:
    """Search ``space`` with seeded TPE inside Ray Tune; return the best parameters and the default's value.

    Parameters are those of :func:`vigil.tuning.search.tune` (``make_pipeline`` and ``space`` must be
    picklable: closures are, through cloudpickle), plus:

    address : str, optional
        A Ray cluster; default a local instance (or the session the caller opened with ``ray.init``).
    max_concurrent : int, optional
        Trials at once; default the cluster's CPUs minus one, at least one.
    progress : bool
        Ray Tune's progress table on stdout.

    Raises
    ------
    InvalidInputError
        No training table, or a non-positive trial count.
    """
    if not tables:
        msg = "tuning needs at least one training table"
        raise InvalidInputError(msg)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        msg = f"n_trials must be a positive integer, got {n_trials!r}"
        raise InvalidInputError(msg)
    optuna = require_optuna()
    require("ray.tune", purpose="tuning on Ray")
    start = time.perf_counter()
    default = cross_validate(lambda: make_pipeline({}), tables, n_folds=n_folds, gap=gap, seed=seed)
    default_value, default_far = default["f1"], default["far"]

    with ray_session(address, actors=max_concurrent or 1) as ray:
        from ray import tune
        from ray.tune.schedulers import MedianStoppingRule
        from ray.tune.search.optuna import OptunaSearch

        concurrent = max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 2)) - 1)
        search = OptunaSearch(
            space=_DefineByRun(space), metric="objective", mode="max", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        trainable = tune.with_resources(
            tune.with_parameters(
                _trial,
                make_pipeline=make_pipeline,
                tables=list(tables),
                n_folds=n_folds,
                gap=gap,
                seed=seed,
                default_far=default_far,
            ),
            {"cpu": 1},
        )
        with tempfile.TemporaryDirectory(prefix="vigil-ray-tune-") as storage:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=search,
                    scheduler=MedianStoppingRule(time_attr="tables", grace_period=1, min_samples_required=5),
                    num_samples=n_trials,
                    max_concurrent_trials=concurrent,
                    time_budget_s=timeout,
                    metric="objective",
                    mode="max",
                ),
                run_config=tune.RunConfig(storage_path=storage, name="vigil-tune", verbose=1 if progress else 0),
            )
            grid = tuner.fit()
    trials = []
    best_params: dict[str, Any] = {}
    best_value = default_value
    full = len(tables)
    for number in range(len(grid)):  # ResultGrid is indexed (its stubs declare no __iter__)
        result = grid[number]
        params = dict(result.config.get(_PARAMS, {})) if result.config else {}
        value = None if result.metrics is None else result.metrics.get("objective")
        finished = result.error is None and result.metrics is not None and result.metrics.get("tables") == full
        state = "COMPLETE" if finished else ("FAIL" if result.error is not None else "PRUNED")
        trials.append({"number": number, "state": state, "value": value, "params": params})
        if finished and value is not None and value > best_value:
            best_params, best_value = params, float(value)
    # The defaults win ties and remain when nothing beat them, as in the local search.
    return TuningResult(best_params, best_value, default_value, len(trials), time.perf_counter() - start, trials)
