"""Fit one pipeline per asset (file, machine, device) at once: the detectors train as one fleet.

Every member is what ``template.clone().fit(rows)`` makes of it (its own scaler, holdout, threshold and
alarm stage); only the detectors' training is shared, as one batched computation
(:mod:`vigil.detectors.fleet`) when the detector supports it, one at a time otherwise. A member whose rows
are refused gets its error, naming it, and no pipeline; the others are unaffected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.detectors.fleet import FleetFit, FleetScores, fit_fleet, named_error, score_fleet, supports_fleet
from vigil.errors import InvalidInputError, VigilError
from vigil.pipeline import FitPlan, Pipeline

__all__ = ["PipelineFleet", "fit_groups", "fit_pipelines", "score_pipelines", "split_groups", "supports_fleet"]


@dataclass
class PipelineFleet:
    """The outcome of :func:`fit_pipelines`.

    Attributes
    ----------
    fitted : dict
        Member name → fitted :class:`~vigil.pipeline.Pipeline`, in the order given.
    failed : dict
        Member name → the exception that left it without a pipeline (its message names the member).
    batched : list of str
        The members whose detectors trained in the batched computation.
    """

    fitted: dict[str, Pipeline] = field(default_factory=dict)
    failed: dict[str, Exception] = field(default_factory=dict)
    batched: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> dict[str, str]:
        """Member name → why it has no pipeline."""
        return {name: str(exc) for name, exc in self.failed.items()}


def fit_pipelines(
    template: Pipeline,
    data: Mapping[str, Any],
    labels: Mapping[str, Any] | None = None,
    *,
    max_members: int | None = None,
) -> PipelineFleet:
    """Fit a clone of ``template`` on each member's training rows, the detectors as one fleet.

    Parameters
    ----------
    template : Pipeline
        Unfitted; every member gets a clone (same detector parameters and seed).
    data : mapping of str to array-like
        Member name → its training rows (time-ordered, mostly normal).
    labels : mapping of str to array-like, optional
        Member name → its training labels, for detectors that use them.
    max_members : int, optional
        Most members trained in one batched computation (see :func:`vigil.detectors.fleet.fit_fleet`).

    Examples
    --------
    >>> import numpy as np
    >>> from vigil.detectors.forecasters import TCNForecasterDetector
    >>> t = np.arange(240) / 4
    >>> rows = {f"pump-{i}": np.column_stack([np.sin(t + i), np.cos(t)]) for i in range(2)}
    >>> rows["pump-2"] = np.full((240, 2), np.nan)
    >>> template = Pipeline(TCNForecasterDetector(window=8, filters=4, epochs=3, random_state=0))
    >>> fleet = fit_pipelines(template, rows)
    >>> list(fleet.fitted), fleet.batched
    (['pump-0', 'pump-1'], ['pump-0', 'pump-1'])
    >>> fleet.reasons["pump-2"]
    'pump-2: X...NaN...'
    """
    result = PipelineFleet()
    plans: dict[str, tuple[Pipeline, FitPlan]] = {}
    for name, X in data.items():
        pipe = template.clone()
        try:
            plans[name] = (pipe, pipe.prepare_fit(X, None if labels is None else labels.get(name)))
        except VigilError as exc:
            result.failed[name] = named_error(name, exc)
    needs_labels = any(plan.detector_y is not None for _, plan in plans.values())
    if needs_labels:  # a fleet is unsupervised: members with labels fit one at a time
        detectors = _one_at_a_time(template, plans)
    else:
        rows = {name: plan.detector_rows for name, (_, plan) in plans.items()}
        detectors = fit_fleet(template.detector, rows, max_members=max_members)
        result.batched = list(detectors.batched)
    result.failed.update(detectors.failed)
    for name, (pipe, plan) in plans.items():
        detector = detectors.fitted.get(name)
        if detector is None:
            continue
        try:
            result.fitted[name] = pipe.complete_fit(plan, detector)
        except VigilError as exc:
            result.failed[name] = named_error(name, exc)
    order = list(data)
    result.failed = {name: result.failed[name] for name in order if name in result.failed}
    return result


def _one_at_a_time(template: Pipeline, plans: Mapping[str, tuple[Pipeline, FitPlan]]) -> FleetFit:
    out = FleetFit()
    for name, (_, plan) in plans.items():
        try:
            out.fitted[name] = template.detector.clone().fit(plan.detector_rows, plan.detector_y)
        except VigilError as exc:
            out.failed[name] = named_error(name, exc)
    return out


def score_pipelines(pipelines: Mapping[str, Pipeline], data: Mapping[str, Any]) -> FleetScores:
    """Score each member's rows with its own fitted pipeline, the detectors' forward passes batched.

    Equal to ``pipelines[name].score_samples(data[name])`` for each member to float rounding; a member
    whose rows are refused gets its error (naming it) in ``failed``.
    """
    out = FleetScores()
    scaled = {}
    for name, X in data.items():
        try:
            scaled[name] = pipelines[name].transform(X)
        except VigilError as exc:
            out.failed[name] = named_error(name, exc)
    raw = score_fleet({name: pipelines[name].detector_ for name in scaled}, scaled)
    out.failed.update(raw.failed)
    out.scores = {name: pipelines[name].smooth(scores) for name, scores in raw.scores.items()}
    order = list(data)
    out.failed = {name: out.failed[name] for name in order if name in out.failed}
    return out


def fit_groups(X: pd.DataFrame, groups: Any, template: Pipeline, *, max_members: int | None = None) -> PipelineFleet:
    """One pipeline per distinct value of ``groups`` (an asset column: one value per row of ``X``), fitted
    on that value's rows in their order, the detectors as one fleet (see :func:`fit_pipelines`).

    Examples
    --------
    >>> from vigil.detectors.pca import PCADetector
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["temp", "rpm"])
    >>> fleet = fit_groups(X, ["pump-1", "pump-2", "pump-3"] * 19 + ["pump-4"] * 3, Pipeline(PCADetector()))
    >>> list(fleet.fitted), fleet.reasons["pump-4"]
    (['pump-1', 'pump-2', 'pump-3'], 'pump-4: X has 3 rows, at least 4 needed')
    """
    return fit_pipelines(template, split_groups(X, groups), max_members=max_members)


def split_groups(X: pd.DataFrame, groups: Any) -> dict[str, pd.DataFrame]:
    """The rows of ``X`` of each distinct value of ``groups`` (one per row), in their order; the groups in the
    order they first appear."""
    keys = np.asarray(groups).astype(str)
    if keys.shape != (len(X),):
        msg = f"groups has {keys.size} values for {len(X)} rows; give one group per row"
        raise InvalidInputError(msg)
    frame = X.reset_index(drop=True)
    return {str(key): frame.loc[keys == key].reset_index(drop=True) for key in dict.fromkeys(keys)}
