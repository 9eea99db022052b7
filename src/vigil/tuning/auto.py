"""``--detector auto``: choose a detector, its settings and its alarm rule on the training rows alone.

A user who does not know which detector fits a plant should not get an arbitrary default, nor one picked on
the test labels. :func:`select_pipeline` scores a short, fixed list of candidates (:data:`CANDIDATES`) on
validation folds cut from the training rows: each fold fits a candidate on the rows before a block, in
time order, and scores the block twice, as it is (normal operation: every alarm there is false) and with
synthetic faults injected (:func:`~vigil.evaluation.injection.inject_anomalies`, several kinds, a few
draws). Every named alarm rule (:data:`~vigil.alarms.rules.ALARM_RULES`) then decides the same scores.

The criterion, stated before any benchmark was run: the highest point F1 of the alarms on the faulty
blocks (pooled over folds and draws); candidates within :data:`TIE` of the best are tied, and a tie goes
to the fewest false-alarm events per 1,000 normal rows on the untouched blocks, then to the earlier entry of
the list (the simpler, cheaper one). The whole ranking and the reason are recorded
(:class:`Selection`), printed by the command line and saved with the model.

Selection is bounded: the list is fixed, each candidate costs ``n_folds`` fits, and ``budget_seconds``
stops it from starting another candidate once spent (the ones left are recorded as skipped, so a run that
hit its budget says so). Without a budget, and with a seed, the choice is deterministic.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.alarms.rules import ALARM_RULES, make_alarm_stage
from vigil.alarms.stage import AlarmStage
from vigil.calibration.thresholds import Thresholder
from vigil.errors import InvalidInputError
from vigil.evaluation.cv import forward_chaining_folds
from vigil.evaluation.injection import inject_validation_faults
from vigil.evaluation.metrics import evaluate_groups
from vigil.features.categorical import CategoryEncoder
from vigil.pipeline import Pipeline
from vigil.progress import progress as progress_bar
from vigil.registry import available_detectors, make_detector

__all__ = [
    "AUTO",
    "CANDIDATES",
    "OPTIONAL_CANDIDATES",
    "TIE",
    "AutoPipeline",
    "Candidate",
    "Selection",
    "candidates_named",
    "describe_selection",
    "select_pipeline",
]

AUTO = "auto"
"""The detector name that asks for selection (``vigil fit`` uses it when no detector is named)."""

TIE = 0.01
"""Validation F1 within this of the best counts as a tie (the folds cannot tell such candidates apart)."""


@dataclass(frozen=True)
class Candidate:
    """One entry of the list: a registered detector with fixed parameters and score smoothing."""

    label: str
    detector: str
    params: dict[str, Any] = field(default_factory=dict)
    smoothing: int = 1
    calibrate: str = "smoothed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "detector": self.detector,
            "params": dict(self.params),
            "smoothing": self.smoothing,
            "calibrate": self.calibrate,
        }


# Cheapest first: a tie goes to the earlier entry. The deep ones are the two cheapest forecasters of the
# SKAB tables (the windowed TCN with its relative-drift error, and the sequence TCN); the others cost too
# much per fold on a small CPU to be worth a place in a selection that must stay within minutes.
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("pca", "pca"),
    Candidate("mahalanobis", "mahalanobis"),
    Candidate("online-zscore", "online-zscore"),
    Candidate("iforest", "iforest"),
    Candidate("mahalanobis-s10raw", "mahalanobis", smoothing=10, calibrate="raw"),
    Candidate("tcn-sequence-drift", "tcn-sequence", {"relative_drift": 1.0}),
    Candidate("tcn-forecaster-drift", "tcn-forecaster", {"relative_drift": 1.0}),
)

# Named with --candidates only, not in the default list: SMD's best fixed entry (the sequence TCN with its
# learnt persistence map), so that selection can choose the alarm rule alone for that family.
OPTIONAL_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("tcn-sequence-persistence-drift", "tcn-sequence", {"relative_drift": 1.0, "persistence": True}),
)

# Each draw injects faults of one family, so that a detector blind to one family is seen to be.
_FAULT_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("level_shift", "drift"),
    ("stuck", "noise"),
    ("spike", "level_shift", "drift", "stuck", "noise"),
)


@dataclass
class Selection:
    """What :func:`select_pipeline` chose, how every candidate scored, and why."""

    chosen: Candidate
    alarm_rule: str
    ranking: list[dict[str, Any]]
    why: str
    skipped: list[dict[str, str]]
    seconds: float
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": {**self.chosen.to_dict(), "alarm_rule": self.alarm_rule},
            "why": self.why,
            "criterion": self.settings["criterion"],
            "ranking": self.ranking,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "settings": {k: v for k, v in self.settings.items() if k != "criterion"},
        }

    def summary(self, top: int = 5) -> str:
        """A few lines for a person: the choice, the reason, and the best entries of the ranking."""
        return describe_selection(self.to_dict(), top=top)


def describe_selection(document: dict[str, Any], top: int = 5) -> str:
    """The lines :meth:`Selection.summary` prints, from the saved record (``Selection.to_dict``)."""
    lines = [f"auto: {document['why']}"]
    lines.append(f"  {'candidate':<24}{'alarms':<13}{'F1':>7}{'event recall':>14}{'FA events/1k rows':>19}")
    for row in document["ranking"][:top]:
        lines.append(
            f"  {row['label']:<24}{row['alarm_rule']:<13}{row['f1']:>7.3f}{row['event_recall']:>14.3f}"
            f"{row['false_alarms_per_1000_rows']:>19.2f}"
        )
    for row in document["skipped"]:
        lines.append(f"  skipped {row['label']}: {row['reason']}")
    return "\n".join(lines)


def candidates_named(labels: Sequence[str]) -> tuple[Candidate, ...]:
    """The entries of :data:`CANDIDATES` and :data:`OPTIONAL_CANDIDATES` with these labels, in that order."""
    table = CANDIDATES + OPTIONAL_CANDIDATES
    known = {c.label: c for c in table}
    unknown = [label for label in labels if label not in known]
    if unknown or not labels:
        msg = f"unknown auto candidates {unknown}; choose from {', '.join(known)}"
        raise InvalidInputError(msg)
    return tuple(c for c in table if c.label in set(labels))


def _available(candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[dict[str, str]]]:
    registered = available_detectors()
    usable, skipped = [], []
    for candidate in candidates:
        if candidate.detector in registered:
            usable.append(candidate)
        else:
            needs = "PyTorch (pip install 'vigil[deep]')" if importlib.util.find_spec("torch") is None else "it"
            skipped.append({"label": candidate.label, "reason": f"detector {candidate.detector!r} needs {needs}"})
    return usable, skipped


def _build(
    candidate: Candidate, *, scaler: str, threshold: Thresholder | None, holdout: float, seed: int, alarm: Any
) -> Pipeline:
    params = dict(candidate.params)
    if "random_state" in available_detectors()[candidate.detector]._param_names():
        params.setdefault("random_state", seed)
    return Pipeline(
        make_detector(candidate.detector, **params),
        scaler=scaler,
        threshold=threshold,
        holdout=holdout,
        smoothing=candidate.smoothing,
        calibrate=candidate.calibrate,
        alarm=alarm,
    )


def _faults(block: np.ndarray, scale: np.ndarray, draw: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    kinds = _FAULT_FAMILIES[draw % len(_FAULT_FAMILIES)]
    return inject_validation_faults(block, scale=scale, kinds=kinds, random_state=seed)


def _frame(rows: np.ndarray, like: Any) -> Any:
    return pd.DataFrame(rows, columns=like.columns) if isinstance(like, pd.DataFrame) else rows


def _score_block(pipe: Pipeline, values: np.ndarray, start: int, block: np.ndarray, like: Any) -> np.ndarray:
    """Scores of ``block`` (rows from ``start``) after the history the pipeline needs, as in a stream."""
    context = pipe.context_rows
    history = values[max(start - context, 0) : start]
    return pipe.score_samples(_frame(np.vstack([history, block]), like))[len(history) :]


def select_pipeline(
    X: Any,
    *,
    candidates: Sequence[Candidate] = CANDIDATES,
    alarm_rules: Sequence[str] | None = None,
    alarm: AlarmStage | None = None,
    scaler: str = "standard",
    threshold: Thresholder | None = None,
    holdout: float = 0.25,
    n_folds: int = 2,
    train_share: float = 0.6,
    draws: int = 6,
    seed: int = 0,
    budget_seconds: float | None = None,
    progress: bool = False,
) -> Selection:
    """Rank ``candidates`` × ``alarm_rules`` on validation folds of the training rows ``X``; see the module.

    Parameters
    ----------
    X : DataFrame or array of shape (n_rows, n_features)
        Time-ordered training rows, believed normal. Nothing else is read: no test row, no label.
    candidates : sequence of Candidate
        The list to choose from (default :data:`CANDIDATES`); entries whose detector is not installed are
        skipped, with the reason.
    alarm_rules : sequence of str, optional
        Named alarm rules to choose among (default: every rule of :data:`~vigil.alarms.rules.ALARM_RULES`).
    alarm : AlarmStage, optional
        A given (unfitted) alarm stage instead: every candidate is judged under it, recorded as ``"given"``.
    scaler, threshold, holdout :
        As for :class:`~vigil.pipeline.Pipeline`; every candidate is calibrated the same way.
    n_folds : int
        Forward-chaining validation blocks after the first ``train_share`` of the rows.
    draws : int
        Injections of synthetic faults per block, each of one fault family (shifts and drifts, stuck and
        noisy sensors, any kind).
    seed : int
        Seeds the detectors and the injections.
    budget_seconds : float, optional
        Start no further candidate once this many seconds are spent (the rest are recorded as skipped); the
        first candidate that can be judged always is, so that there is a choice.
    """
    rules = list(ALARM_RULES) if alarm_rules is None else list(alarm_rules)
    unknown = sorted(set(rules) - set(ALARM_RULES))
    if unknown or not rules:
        msg = f"unknown alarm rules {unknown} for auto selection; choose from {', '.join(ALARM_RULES)}"
        raise InvalidInputError(msg)
    stages = {"given": alarm} if alarm is not None else {rule: make_alarm_stage(rule) for rule in rules}
    rules = list(stages)
    if not candidates:
        msg = "auto selection needs at least one candidate"
        raise InvalidInputError(msg)
    values = np.asarray(X, dtype=np.float64)
    n = len(values)
    try:
        folds = forward_chaining_folds(n, n_folds, min_train=round(train_share * n))
    except InvalidInputError as exc:
        msg = f"auto selection cannot cut {n} training rows into {n_folds} validation folds: {exc}"
        raise InvalidInputError(msg) from exc
    usable, skipped = _available(candidates)
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    bar = progress_bar(total=len(usable) * len(folds), desc="auto selection", unit="fit", enabled=progress)
    try:
        for position, candidate in enumerate(usable):
            if budget_seconds is not None and results and time.perf_counter() - start > budget_seconds:
                skipped.append(
                    {"label": candidate.label, "reason": f"the time budget of {budget_seconds:g} s was spent"}
                )
                bar.update(len(folds))
                continue
            bar.set_postfix_str(candidate.label)
            began = time.perf_counter()
            try:
                rows = _judge(candidate, values, X, folds, stages, scaler, threshold, holdout, draws, seed)
            except InvalidInputError as exc:
                skipped.append({"label": candidate.label, "reason": f"refused by these folds: {exc}"})
                bar.update(len(folds))
                continue
            bar.update(len(folds))
            seconds = time.perf_counter() - began
            results += [{**row, "position": position, "seconds": round(seconds, 3)} for row in rows]
    finally:
        bar.close()
    if not results:
        reasons = "; ".join(f"{s['label']}: {s['reason']}" for s in skipped)
        msg = f"auto selection found no candidate it could judge ({reasons})"
        raise InvalidInputError(msg)
    ranking = _rank(results, rules)
    best = ranking[0]
    chosen = next(c for c in usable if c.label == best["label"])
    settings = {
        "criterion": (
            "highest point F1 of the alarms on synthetic faults injected into time-ordered validation blocks of "
            f"the training rows; within {TIE} of the best, fewest false-alarm events per 1,000 rows on the "
            "untouched blocks, then the earlier (simpler) candidate"
        ),
        "n_folds": n_folds,
        "train_share": train_share,
        "draws": draws,
        "fault_families": [list(f) for f in _FAULT_FAMILIES[: max(draws, 1)]],
        "seed": seed,
        "budget_seconds": budget_seconds,
        "alarm_rules": rules,
        "candidates": [c.label for c in candidates],
        "training_rows": n,
    }
    return Selection(
        chosen, best["alarm_rule"], ranking, _why(ranking, folds, draws), skipped, time.perf_counter() - start, settings
    )


def _judge(
    candidate: Candidate,
    values: np.ndarray,
    X: Any,
    folds: list[Any],
    stages: dict[str, AlarmStage],
    scaler: str,
    threshold: Thresholder | None,
    holdout: float,
    draws: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Fit ``candidate`` once per fold; every alarm rule decides the same clean and faulty block scores."""
    rules = list(stages)
    faulty: dict[str, dict[str, tuple[Any, ...]]] = {rule: {} for rule in rules}
    clean: dict[str, list[int]] = {rule: [0, 0, 0] for rule in rules}  # false-alarm events, flagged rows, rows
    for fold in folds:
        pipe = _build(candidate, scaler=scaler, threshold=threshold, holdout=holdout, seed=seed, alarm=None)
        pipe.fit(X.iloc[fold.train] if isinstance(X, pd.DataFrame) else values[fold.train])
        first = int(fold.validation[0])
        block = values[fold.validation]
        normal = _score_block(pipe, values, first, block, X)
        injected = []
        for draw in range(draws):
            rows, truth = _faults(block, pipe.scaler_.scale_, draw, seed * 1000 + fold.number * 10 + draw)
            injected.append((truth, _score_block(pipe, values, first, rows, X)))
        for rule in rules:
            stage = stages[rule].clone().fit(pipe.calibration_scores_, pipe.threshold_)
            run = stage.run(normal)
            clean[rule][0] += int(run.raised.sum())
            clean[rule][1] += int(run.active.sum())
            clean[rule][2] += len(normal)
            for draw, (truth, scores) in enumerate(injected):
                faulty[rule][f"{fold.number}.{draw}"] = (truth, stage.run(scores).active, None)
    ranked: list[dict[str, Any]] = []
    for rule in rules:
        pooled = evaluate_groups(faulty[rule])["pooled"]
        events, flagged, n_rows = clean[rule]
        ranked.append(
            {
                **candidate.to_dict(),
                "alarm_rule": rule,
                "f1": float(pooled["f1"]) if np.isfinite(pooled["f1"]) else 0.0,
                "event_recall": float(pooled["event_recall"]),
                "far_faulty": float(pooled["far"]),
                "far_clean": flagged / n_rows,
                "false_alarms_per_1000_rows": 1000.0 * events / n_rows,
            }
        )
    return ranked


def _rank(results: list[dict[str, Any]], rules: list[str]) -> list[dict[str, Any]]:
    top = max(r["f1"] for r in results)
    order = {rule: i for i, rule in enumerate(rules)}

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        tied = row["f1"] >= top - TIE
        # Tied rows by false alarms, then list order; the rest by F1.
        if tied:
            return (0, row["false_alarms_per_1000_rows"], row["position"], order[row["alarm_rule"]])
        return (1, -row["f1"], row["position"], order[row["alarm_rule"]])

    ranked = sorted(results, key=key)
    out = []
    for rank, row in enumerate(ranked, start=1):
        out.append({"rank": rank, "tied_with_best": row["f1"] >= top - TIE, **{k: _r(v) for k, v in row.items()}})
    return out


def _r(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def _why(ranking: list[dict[str, Any]], folds: list[Any], draws: int) -> str:
    best = ranking[0]
    evidence = f"{len(folds)} validation blocks of the training rows × {draws} synthetic-fault draws"
    head = (
        f"chose {best['label']} with the {best['alarm_rule']} alarm rule: validation F1 {best['f1']:.3f} "
        f"(event recall {best['event_recall']:.2f}, {best['false_alarms_per_1000_rows']:.2f} false-alarm events "
        f"per 1,000 normal rows) on {evidence}"
    )
    tied = [r for r in ranking[1:] if r["tied_with_best"]]
    if tied:
        head += (
            f"; {len(tied)} other entr{'y' if len(tied) == 1 else 'ies'} within {TIE} F1 "
            f"(best of them {tied[0]['label']}/{tied[0]['alarm_rule']} {tied[0]['f1']:.3f}), "
            "the tie going to fewer false alarms, then the simpler candidate"
        )
    else:
        runner = next((r for r in ranking[1:] if r["label"] != best["label"]), None)
        if runner is not None:
            head += f"; next best detector {runner['label']}/{runner['alarm_rule']} at {runner['f1']:.3f}"
    return head


class AutoPipeline(Pipeline):
    """A :class:`~vigil.pipeline.Pipeline` whose detector, smoothing and alarm rule are chosen in ``fit``.

    ``fit`` runs :func:`select_pipeline` on the training rows, then fits the chosen configuration on all
    of them, exactly as a named detector would be fitted. It is then an ordinary fitted pipeline (saved,
    loaded, scored and decided the same way), with ``selection_`` (:meth:`Selection.to_dict`), which
    :meth:`~vigil.pipeline.Pipeline.save` writes into the model's ``config.json``.

    ``candidates`` defaults to :data:`CANDIDATES`. ``alarm`` fixes the alarm stage (selection then chooses
    the detector and its settings only); ``None`` lets selection choose among the named rules. The other
    keywords go to :func:`select_pipeline`.
    """

    def __init__(
        self,
        *,
        scaler: str = "standard",
        threshold: Thresholder | None = None,
        holdout: float = 0.25,
        alarm: AlarmStage | None = None,
        candidates: Sequence[Candidate] | None = None,
        n_folds: int = 2,
        draws: int = 6,
        seed: int = 0,
        budget_seconds: float | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(
            make_detector("pca"), scaler=scaler, threshold=threshold, holdout=holdout, alarm=alarm
        )  # a placeholder until fit chooses
        self.candidates = CANDIDATES if candidates is None else tuple(candidates)
        self.n_folds = n_folds
        self.draws = draws
        self.seed = seed
        self.budget_seconds = budget_seconds
        self.progress = progress
        self._fixed_alarm = alarm

    def __repr__(self) -> str:
        chosen = getattr(self, "selection_", None)
        what = chosen["chosen"]["label"] if chosen else "not fitted"
        return f"AutoPipeline({what}, candidates={len(self.candidates)}, n_folds={self.n_folds}, seed={self.seed})"

    def fit(self, X: Any, y: Any = None) -> AutoPipeline:
        rows = X
        if y is not None:
            # Selection judges candidates on normal rows; labelled anomalies of training are left out of it.
            normal = ~np.asarray(y, dtype=bool)
            rows = X.loc[normal] if isinstance(X, pd.DataFrame) else np.asarray(X)[normal]
        if self.categorical:
            # Candidates are judged on the encoded numbers; the chosen pipeline encodes X again itself.
            rows = CategoryEncoder(self.categorical).fit(rows).transform(rows)
        selection = select_pipeline(
            rows,
            candidates=self.candidates,
            alarm=self._fixed_alarm,
            scaler=self.scaler,
            threshold=self.threshold,
            holdout=self.holdout,
            n_folds=self.n_folds,
            draws=self.draws,
            seed=self.seed,
            budget_seconds=self.budget_seconds,
            progress=self.progress,
        )
        chosen = selection.chosen
        built = _build(
            chosen, scaler=self.scaler, threshold=self.threshold, holdout=self.holdout, seed=self.seed, alarm=None
        )
        self.detector = built.detector
        self.smoothing = chosen.smoothing
        self.calibrate = chosen.calibrate
        self.alarm = (
            self._fixed_alarm.clone() if self._fixed_alarm is not None else make_alarm_stage(selection.alarm_rule)
        )
        super().fit(X, y)
        self.selection_ = selection.to_dict()
        return self
