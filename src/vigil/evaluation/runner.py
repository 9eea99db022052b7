"""Run a pipeline over the train/test parts of a labelled data set and report honest figures.

One pipeline is fitted per part on its training rows only (scaler, detector and threshold), then scores
the part's test rows. Decisions use the calibrated threshold; labels are used for metrics alone. The oracle
best-F1 and the point-adjusted F1 are reported too, under names that say what they are.
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import vigil
from vigil.errors import InvalidInputError
from vigil.evaluation.alarm_metrics import budget_threshold
from vigil.evaluation.interpretation import hit_rate
from vigil.evaluation.metrics import best_f1, evaluate_groups
from vigil.evaluation.operating_points import operating_points, pool_operating_points, validation_faults
from vigil.pipeline import Pipeline
from vigil.progress import progress as progress_bar

__all__ = ["EvaluationPart", "environment", "evaluate_parts"]


@dataclass(frozen=True)
class EvaluationPart:
    """One train/test pair: a benchmark file, a machine, a device, or a user's CSV."""

    name: str
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_test: np.ndarray
    time_test: pd.DatetimeIndex | None = None
    y_train: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, np.generic):
        return _round(value.item())
    return value


def _step(part: EvaluationPart) -> float:
    """Seconds per row of a part: the median step of its test timestamps, 1 without them."""
    if part.time_test is None or len(part.time_test) < 2:
        return 1.0
    steps = np.diff(part.time_test.to_numpy()).astype("timedelta64[ns]").astype(np.int64) / 1e9
    step = float(np.median(steps))
    return step if step > 0 else 1.0


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def evaluate_parts(
    parts: Sequence[EvaluationPart],
    make_pipeline: Callable[[], Pipeline],
    *,
    progress: bool = True,
    label: str = "evaluating",
    on_part: Callable[[EvaluationPart, Pipeline, np.ndarray], None] | None = None,
    attribution: str = "model",
    budget_per_day: float | None = None,
    fleet: bool = False,
    costs: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Fit a fresh pipeline per part, score its test rows, and compute pooled and per-part metrics.

    Returns a JSON-ready dict: pooled metrics at the top level (``f1``, ``far``, ``mar``, ``precision``,
    ``recall``, ``roc_auc``, ``pr_auc``, event recall, detection delay, false alarms per hour,
    ``f1_point_adjusted``), ``oracle_best_f1`` (threshold chosen on test labels: for comparison with
    papers only), timings, ``macro`` means and ``per_part`` details. Parts whose ``extra`` holds root-cause
    labels (``"interpretation"``, as SMD's) add HitRate@100 % and @150 % of the pipeline's per-feature
    contributions, per part and as ``hitrate_100``/``hitrate_150`` means over parts (every labelled row), with
    ``hitrate_100_detected``/``hitrate_150_detected`` over the labelled rows the pipeline flagged; the
    contributions come from :meth:`Pipeline.contributions` with ``method=attribution``. Parts whose ``extra``
    holds ``"attack_type_test"`` (TON_IoT's) add ``per_category_recall``: the share of each attack type's
    rows that was flagged, pooled over parts.

    ROC-AUC and PR-AUC are pooled over parts on scores divided by each part's own threshold, so that
    parts whose models score on different scales stay comparable.

    Decisions come from each pipeline's alarm stage (:meth:`Pipeline.decide`), run over the test rows in
    time order from the state at the end of calibration. When the pipeline's threshold targets a
    false-alarm rate, ``far_ratio_median`` is the median over parts of realised FAR ÷ target FAR (and
    ``far_ratio`` the pooled one). With ``budget_per_day = N``, ``at_budget`` reports the figures of a
    second operating point: the lowest threshold whose alarms on the part's held-out *training* scores
    stay within N false-alarm events per day (`~vigil.evaluation.alarm_metrics.budget_threshold`), so the
    rule is chosen on training data; its event recall is the "event recall at a budget".

    With ``fleet=True`` every part's pipeline is fitted first, their detectors as one batched computation
    where the detector supports it (:func:`vigil.fleet.fit_pipelines`): the same models to float rounding,
    in less time. ``fit_seconds`` is then the fleet's whole fit, and ``fleet_parts`` counts the parts whose
    detectors trained batched. A part whose training rows are refused raises its error, as without a fleet.

    With ``costs`` (``cost_false_alarm``, ``cost_fault_hour`` and optionally ``faults_per_day``),
    ``operating_points`` gives the expected cost per day of the calibrated threshold and of other candidate
    levels, from each part's held-out training rows with synthetic faults
    (:mod:`vigil.evaluation.operating_points`), per part and as means over parts.
    """
    groups: dict[str, tuple[Any, ...]] = {}
    oracle: dict[str, float] = {}
    fit_seconds = score_seconds = 0.0
    rows_scored = 0
    per_part_extra: dict[str, dict[str, Any]] = {}
    category_counts: dict[str, tuple[int, int]] = {}
    budget_groups: dict[str, tuple[Any, ...]] = {}
    far_targets: dict[str, float] = {}
    prefitted: dict[str, Pipeline] | None = None
    fleet_parts = 0
    if fleet and len({part.name for part in parts}) == len(parts):
        prefitted, fleet_parts, fit_seconds = _fit_fleet(parts, make_pipeline)
        if not prefitted:  # the detector has no batched loop: fit and score part by part, as without a fleet
            prefitted, fit_seconds = None, 0.0
    choices: dict[str, str] = {}
    views: dict[str, dict[str, Any]] = {}
    bar = progress_bar(parts, desc=label, unit="part", enabled=progress)
    for part in bar:
        bar.set_postfix_str(part.name)
        start = time.perf_counter()
        if prefitted is None:
            pipe = make_pipeline()
            pipe.fit(part.X_train, part.y_train)
        else:
            pipe = prefitted[part.name]
        fitted = time.perf_counter()
        scores = pipe.score_samples(part.X_test)
        scored = time.perf_counter()
        fit_seconds += fitted - start
        score_seconds += scored - fitted
        rows_scored += len(part.X_test)
        timestamps = None if part.time_test is None else part.time_test.to_numpy()
        # The same decision stage as in the service: adaptive set level and annunciation rules, in time order.
        decisions = pipe.decide(scores, timestamps=timestamps).active
        relative = scores / pipe.threshold_ if pipe.threshold_ > 0 else scores
        groups[part.name] = (part.y_test, decisions, relative, timestamps)
        target = pipe.thresholder_.get_params().get("far")
        if target is not None:
            far_targets[part.name] = float(target)
        if budget_per_day is not None:
            level = budget_threshold(
                pipe.calibration_scores_, pipe.alarm_, events_per_day=budget_per_day, seconds_per_row=_step(part)
            )
            stage = pipe.alarm_.clone().fit(pipe.calibration_scores_, level)
            budget_groups[part.name] = (part.y_test, stage.run(scores, timestamps=timestamps).active, None, timestamps)
        if costs is not None:
            views[part.name] = _operating_view(pipe, part, costs)
        oracle[part.name] = best_f1(part.y_test, scores)["f1"] if part.y_test.any() else float("nan")
        per_part_extra[part.name] = {"threshold": pipe.threshold_, "model_version": pipe.version_}
        selection = getattr(pipe, "selection_", None)
        if selection is not None:  # --detector auto: what it chose on this part's training rows, and why
            per_part_extra[part.name]["selection"] = selection
            choices[part.name] = f"{selection['chosen']['label']} / {selection['chosen']['alarm_rule']}"
        categories = part.extra.get("attack_type_test")
        if categories is not None:
            kinds = np.asarray(categories).astype(str)
            for kind in np.unique(kinds[part.y_test]):
                rows = kinds == kind
                hit, total = category_counts.get(kind, (0, 0))
                category_counts[kind] = (hit + int(decisions[rows].sum()), total + int(rows.sum()))
        root_causes = part.extra.get("interpretation")
        if root_causes:
            shares = pipe.contributions(part.X_test, method=attribution)
            for percent in (100, 150):
                per_part_extra[part.name][f"hitrate_{percent}"] = hit_rate(shares, root_causes, percent=percent)
                per_part_extra[part.name][f"hitrate_{percent}_detected"] = hit_rate(
                    shares, root_causes, percent=percent, rows=decisions
                )
        if on_part is not None:
            on_part(part, pipe, scores)
    if any(g[3] is None for g in groups.values()):
        groups = {k: g[:3] for k, g in groups.items()}
    report = evaluate_groups(groups)
    pooled = report["pooled"]
    per_part = {
        name: {**metrics, **per_part_extra[name], "oracle_best_f1": oracle[name]}
        for name, metrics in report["per_part"].items()
    }
    oracle_values = [v for v in oracle.values() if np.isfinite(v)]
    # Detected-only hit rates are undefined (nan) on a part where no labelled row was flagged: averaged
    # over the parts that have one, and the count says how many.
    interpretation = {
        key: _finite_mean([p[key] for p in per_part_extra.values()])
        for key in ("hitrate_100", "hitrate_150", "hitrate_100_detected", "hitrate_150_detected")
        if all(key in p for p in per_part_extra.values())
    }
    if "hitrate_150_detected" in interpretation:
        interpretation["hitrate_detected_parts"] = sum(
            bool(np.isfinite(p["hitrate_150_detected"])) for p in per_part_extra.values()
        )
    n_rows = pooled["tp"] + pooled["fp"] + pooled["fn"] + pooled["tn"]
    extras: dict[str, Any] = {"accuracy": (pooled["tp"] + pooled["tn"]) / n_rows if n_rows else float("nan")}
    if far_targets and len(far_targets) == len(groups):
        ratios = [per_part[name]["far"] / far_targets[name] for name in groups if np.isfinite(per_part[name]["far"])]
        extras["target_far"] = float(np.median(list(far_targets.values())))
        extras["far_ratio"] = pooled["far"] / extras["target_far"]
        extras["far_ratio_median"] = float(np.median(ratios)) if ratios else float("nan")
    if budget_groups:
        if any(g[3] is None for g in budget_groups.values()):
            budget_groups = {k: g[:3] for k, g in budget_groups.items()}
        at = evaluate_groups(budget_groups)["pooled"]
        extras["at_budget"] = {
            "events_per_day": budget_per_day,
            **{k: at[k] for k in ("event_recall", "f1", "far", "mar", "false_alarm_events", "normal_hours")},
            "false_alarms_per_day": 24 * at["false_alarms_per_hour"],
            "detection_delay_median": at["detection_delay_median"],
        }
    if costs is not None:
        usable = {name: view for name, view in views.items() if "rows" in view}
        extras["operating_points"] = {
            **(pool_operating_points(usable) if usable else {"rows": []}),
            "per_part": views,
        }
    if choices:
        extras["auto_choices"] = choices
        extras["auto_choice_counts"] = dict(sorted(Counter(choices.values()).items(), key=lambda kv: -kv[1]))
    if category_counts:
        extras["per_category_recall"] = {k: hit / total for k, (hit, total) in sorted(category_counts.items())}
    result = {
        **pooled,
        **extras,
        "oracle_best_f1_mean": float(np.mean(oracle_values)) if oracle_values else float("nan"),
        **interpretation,
        "macro": report["macro"],
        "fit_seconds": fit_seconds,
        "score_seconds": score_seconds,
        "rows_scored": rows_scored,
        "n_parts": len(parts),
        **({"fleet_parts": fleet_parts} if fleet else {}),
        "per_part": per_part,
    }
    return _round(result)


def _fit_fleet(
    parts: Sequence[EvaluationPart], make_pipeline: Callable[[], Pipeline]
) -> tuple[dict[str, Pipeline], int, float]:
    """Every part's pipeline fitted as one fleet: (pipelines by part name, parts trained batched, seconds)."""
    from vigil.fleet import fit_pipelines, supports_fleet

    template = make_pipeline()
    if not supports_fleet(template.detector):
        return {}, 0, 0.0
    labels = {p.name: p.y_train for p in parts if p.y_train is not None} or None
    start = time.perf_counter()
    outcome = fit_pipelines(template, {p.name: p.X_train for p in parts}, labels)
    seconds = time.perf_counter() - start
    if outcome.failed:
        raise next(iter(outcome.failed.values()))
    return outcome.fitted, len(outcome.batched), seconds


def _operating_view(pipe: Pipeline, part: EvaluationPart, costs: dict[str, Any]) -> dict[str, Any]:
    """The part's cost view from its held-out training rows; a part too short for it says why."""
    try:
        faulty, truth = validation_faults(pipe, part.X_train)
        return operating_points(
            pipe.calibration_scores_, faulty, truth, pipe.alarm_, pipe.threshold_, seconds_per_row=_step(part), **costs
        )
    except InvalidInputError as exc:
        return {"refused": str(exc)}


def environment() -> dict[str, str]:
    """Versions that produced a result, for the record."""
    import scipy
    import sklearn

    return {
        "vigil": vigil.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }
