"""Tune a pipeline's hyperparameters and compare the defaults with the tuned values, as ``vigil tune`` reports.

The search sees only validation folds of the training tables (:func:`vigil.tuning.search.tune`, or Ray Tune);
the comparison scores both settings on those folds and, when labelled test parts are given, on them too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

__all__ = ["TEST_METRICS", "tune_and_compare"]

#: The test figures of each compared setting.
TEST_METRICS = ("f1", "far", "mar", "recall", "precision", "roc_auc", "pr_auc")


def _maker(make_default: Callable[[], Any]) -> Callable[[dict[str, Any]], Any]:
    """``make(params)``: the default pipeline with ``params`` (pipeline and detector parameters) set."""
    from vigil.tuning.spaces import split_params

    def make(params: dict[str, Any]) -> Any:
        pipe_params, detector_params = split_params(params)
        pipe = make_default()
        for name, value in pipe_params.items():
            setattr(pipe, name, value)
        pipe.detector = pipe.detector.set_params(**detector_params)
        return pipe

    return make


def tune_and_compare(
    make_default: Callable[[], Any],
    detector: str,
    tables: Sequence[Any],
    tests: Sequence[Any] = (),
    *,
    n_trials: int = 20,
    n_folds: int = 3,
    gap: int = 0,
    seed: int = 0,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    ray: bool = False,
    address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[Any, list[dict[str, Any]], Callable[[dict[str, Any]], Any]]:
    """Search ``detector``'s space on ``tables`` and compare the defaults with the best parameters found.

    Returns the search result, one row per setting (``model``: default or tuned, ``params``, ``validation``
    and, with ``tests``, ``test`` figures with ``ms_per_row``), and ``make(params)`` to build a pipeline.
    """
    from vigil.evaluation.runner import evaluate_parts
    from vigil.tuning.search import cross_validate, tune
    from vigil.tuning.spaces import search_space

    make = _maker(make_default)
    space = search_space(detector)
    common: dict[str, Any] = {"n_trials": n_trials, "n_folds": n_folds, "gap": gap, "seed": seed, "timeout": timeout}
    if ray:
        from vigil.scale.ray_tuning import tune_with_ray

        result = tune_with_ray(
            make, space, tables, **common, address=address, max_concurrent=workers, progress=progress
        )
    else:
        result = tune(make, space, tables, **common, storage=storage, study_name=study_name, progress=progress)
    rows: list[dict[str, Any]] = []
    for label, params in (("default", {}), ("tuned", result.best_params)):
        cv = cross_validate(partial(make, params), tables, n_folds=n_folds, gap=gap, seed=seed)
        row: dict[str, Any] = {"model": label, "params": params, "validation": cv}
        if tests:
            test = evaluate_parts(list(tests), partial(make, params), progress=False)
            row["test"] = {k: test[k] for k in TEST_METRICS}
            row["test"]["ms_per_row"] = 1000.0 * test["score_seconds"] / max(test["rows_scored"], 1)
        rows.append(row)
    return result, rows, make
