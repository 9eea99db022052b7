"""Champion/challenger retraining on recent telemetry, with operators' confirmed anomalies left out.

:func:`retrain` takes the recent rows a running service saved for a model (``REGISTRY/<model>/recent.npz``)
or a table given by the caller, drops every row that falls inside a *confirmed* alert of its device, and
splits the rest in time: the older part trains a challenger of the same configuration as the active
model (the champion: the same detector and parameters, scaler, threshold rule, smoothing and alarm rule),
the newest part (``holdback``) judges both. The challenger is stored as a new
version in every case — so the decision can be audited and reversed — and activated only if it is not
worse: its false-alarm rate on held-back normal rows is at most the champion's plus ``tolerance``, and,
when the held-back rows include confirmed anomalies, it flags at least as many of them (less
``tolerance``). :func:`retrain_many` retrains several models, the challengers of one configuration as
one fleet (:mod:`vigil.fleet`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import InvalidInputError, VigilError
from vigil.fleet import fit_pipelines
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.model_slot import read_recent, recent_path

__all__ = ["RetrainResult", "load_recent", "retrain", "retrain_many"]


@dataclass(frozen=True)
class RetrainResult:
    """What :func:`retrain` did and why."""

    model: str
    champion: str
    challenger: str
    activated: bool
    reason: str
    n_train: int
    n_holdback: int
    n_excluded: int
    champion_far: float
    challenger_far: float
    champion_recall: float | None
    challenger_recall: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_recent(registry: ModelRegistry, name: str) -> pd.DataFrame:
    """The recent rows a running service saved for model ``name``: ``device``, ``time`` and the features.

    Raises
    ------
    InvalidInputError
        The service has saved no rows for this model yet.
    """
    path = recent_path(registry, name)
    saved = read_recent(path)
    if saved is None:
        msg = f"no recent telemetry saved for model {name!r} ({path} is missing): run the service first or pass data"
        raise InvalidInputError(msg)
    devices, times, values, features = saved
    frame = pd.DataFrame(values, columns=features)
    frame.insert(0, "time", times)
    frame.insert(0, "device", devices)
    return frame


def _posix_seconds(column: pd.Series) -> pd.Series:
    """Times as POSIX seconds: numbers are taken as they are, text as ISO 8601 (a naive time is UTC)."""
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(np.float64)
    parsed = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
    if parsed.isna().any():
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        msg = f"column 'time', row {i}: {column.iloc[i]!r} is neither POSIX seconds nor an ISO 8601 time"
        raise InvalidInputError(msg)
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def _confirmed_mask(data: pd.DataFrame, confirmed: list[tuple[str, float, float]]) -> np.ndarray:
    mask = np.zeros(len(data), dtype=bool)
    devices = data["device"].to_numpy()
    times = data["time"].to_numpy(dtype=np.float64)
    for device, start, end in confirmed:
        mask |= (devices == device) & (times >= start) & (times <= end)
    return mask


@dataclass
class _Case:
    """One model's retraining data: the champion, its recent rows split in time, and the confirmed rows."""

    name: str
    champion_version: str | None
    champion: Pipeline
    X_train: pd.DataFrame
    X_hold: pd.DataFrame
    hold_positive: np.ndarray
    n_excluded: int


def retrain(
    registry: ModelRegistry,
    name: str,
    *,
    store: Any = None,
    data: pd.DataFrame | None = None,
    holdback: float = 0.25,
    tolerance: float = 0.005,
    min_rows: int = 200,
    activate: bool = True,
) -> RetrainResult:
    """Fit a challenger on recent normal data, compare it with the active model, activate it if not worse.

    Parameters
    ----------
    registry : ModelRegistry
    name : str
        The model (asset type) to retrain.
    store : alert store, optional
        Source of confirmed alerts, whose rows are excluded from training and count as positives in the
        held-back part.
    data : DataFrame, optional
        Columns ``device``, ``time`` (POSIX seconds) and the model's features; default the rows the
        service saved (:func:`load_recent`).
    holdback : float
        Newest share of the rows used only to compare the two models.
    tolerance : float
        Slack on the false-alarm rate and recall comparisons.
    min_rows : int
        Fewest training rows accepted.
    activate : bool
        Activate an accepted challenger (else only store it).

    Examples
    --------
    >>> import tempfile
    >>> from vigil.detectors.pca import PCADetector
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(600, 2)), columns=["a", "b"])
    >>> registry = ModelRegistry(tempfile.mkdtemp())
    >>> _ = registry.add("pump", Pipeline(PCADetector(n_components=1)).fit(X[:300]), activate=True)
    >>> recent = X.assign(device="p1", time=np.arange(600.0))
    >>> result = retrain(registry, "pump", data=recent)
    >>> result.n_train, result.n_holdback, result.activated == (registry.active("pump") == result.challenger)
    (450, 150, True)
    """
    outcome = retrain_many(
        registry,
        [name],
        store=store,
        data=None if data is None else {name: data},
        holdback=holdback,
        tolerance=tolerance,
        min_rows=min_rows,
        activate=activate,
    )[name]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def retrain_many(
    registry: ModelRegistry,
    names: Sequence[str],
    *,
    store: Any = None,
    data: Mapping[str, pd.DataFrame] | None = None,
    holdback: float = 0.25,
    tolerance: float = 0.005,
    min_rows: int = 200,
    activate: bool = True,
) -> dict[str, RetrainResult | VigilError]:
    """:func:`retrain` for several models at once; challengers of one configuration train as one fleet.

    The challengers whose champions share a configuration (detector, its parameters, scaler, threshold,
    alarm rule…) are fitted together by :func:`vigil.fleet.fit_pipelines`, so a plant with a model per asset
    pays a deep detector's per-step overhead once per step for all of them; each is still judged against its
    own champion, on its own held-back rows. A model that cannot be retrained gets its error (naming it) in
    the result and the others go on. ``data`` maps a model to its table (default: the rows the service saved).
    """
    if not 0.0 < holdback < 1.0:
        msg = f"holdback must be a share in (0, 1), got {holdback!r}"
        raise InvalidInputError(msg)
    confirmed: list[tuple[str, float, float]] = []
    if store is not None:
        for alert in store.list(status="confirmed", limit=None):
            confirmed.append((alert.device, alert.start.timestamp(), alert.end.timestamp()))
    outcomes: dict[str, RetrainResult | VigilError] = {}
    cases: dict[str, _Case] = {}
    for name in names:
        try:
            given = None if data is None else data.get(name)
            cases[name] = _prepare(registry, name, given, confirmed, holdback, min_rows)
        except VigilError as exc:
            outcomes[name] = exc
    groups: dict[str, list[_Case]] = {}
    for case in cases.values():
        # Same configuration, same fleet: the unfitted clone's repr names the detector, its parameters and
        # the pipeline's settings.
        groups.setdefault(repr(case.champion.clone()), []).append(case)
    for members in groups.values():
        fleet = fit_pipelines(members[0].champion.clone(), {case.name: case.X_train for case in members})
        for case in members:
            if case.name in fleet.failed:
                error = fleet.failed[case.name]
                outcomes[case.name] = error if isinstance(error, VigilError) else InvalidInputError(str(error))
                continue
            outcomes[case.name] = _judge(registry, case, fleet.fitted[case.name], tolerance, activate)
    return {name: outcomes[name] for name in names}


def _prepare(
    registry: ModelRegistry,
    name: str,
    frame: pd.DataFrame | None,
    confirmed: list[tuple[str, float, float]],
    holdback: float,
    min_rows: int,
) -> _Case:
    champion_version = registry.active(name)
    champion = registry.load(name)
    frame = load_recent(registry, name) if frame is None else frame
    missing = [c for c in ("device", "time", *champion.feature_names_in_) if c not in frame.columns]
    if missing:
        msg = f"model {name}: retraining data lacks columns {missing}"
        raise InvalidInputError(msg)
    frame = frame.assign(time=_posix_seconds(frame["time"])).sort_values("time", kind="stable")
    frame = frame.reset_index(drop=True)
    positive = _confirmed_mask(frame, confirmed)
    n_hold = max(1, round(holdback * len(frame)))
    split = len(frame) - n_hold
    X = frame[list(champion.feature_names_in_)]
    X_train = X.iloc[:split][~positive[:split]].reset_index(drop=True)
    if len(X_train) < min_rows:
        msg = f"model {name}: only {len(X_train)} normal rows to train on (at least {min_rows} needed)"
        raise InvalidInputError(msg)
    return _Case(
        name, champion_version, champion, X_train, X.iloc[split:], positive[split:], int(positive[:split].sum())
    )


def _judge(
    registry: ModelRegistry, case: _Case, challenger: Pipeline, tolerance: float, activate: bool
) -> RetrainResult:
    """Compare the challenger with the champion on the held-back rows; store it, and activate it if not worse."""
    name, champion, champion_version = case.name, case.champion, case.champion_version
    X_hold, hold_positive = case.X_hold, case.hold_positive
    n_hold = len(X_hold)
    champion_flags = champion.predict(X_hold)
    challenger_flags = challenger.predict(X_hold)
    normal = ~hold_positive
    champion_far = float(champion_flags[normal].mean()) if normal.any() else 0.0
    challenger_far = float(challenger_flags[normal].mean()) if normal.any() else 0.0
    champion_recall = float(champion_flags[hold_positive].mean()) if hold_positive.any() else None
    challenger_recall = float(challenger_flags[hold_positive].mean()) if hold_positive.any() else None

    reasons = []
    if challenger_far > champion_far + tolerance:
        reasons.append(f"false-alarm rate {challenger_far:.4f} > champion's {champion_far:.4f} + {tolerance}")
    if (
        champion_recall is not None
        and challenger_recall is not None
        and challenger_recall < champion_recall - tolerance
    ):
        reasons.append(f"recall on confirmed anomalies {challenger_recall:.3f} < champion's {champion_recall:.3f}")
    accepted = not reasons
    reason = "not worse than the champion" if accepted else "; ".join(reasons)
    if challenger.version_ == champion_version:
        accepted, reason = False, "the challenger is identical to the champion"
    meta = {
        "parent": champion_version,
        "retrain": {
            "accepted": accepted,
            "reason": reason,
            "champion_far": champion_far,
            "challenger_far": challenger_far,
            "champion_recall": champion_recall,
            "challenger_recall": challenger_recall,
            "n_train": len(case.X_train),
            "n_holdback": int(n_hold),
        },
    }
    version = registry.add(name, challenger, meta=meta)
    activated = False
    if accepted and activate:
        registry.activate(name, version, reason=f"retrain: {reason}")
        activated = True
    return RetrainResult(
        model=name,
        champion=str(champion_version),
        challenger=version,
        activated=activated,
        reason=reason,
        n_train=len(case.X_train),
        n_holdback=int(n_hold),
        n_excluded=case.n_excluded,
        champion_far=champion_far,
        challenger_far=challenger_far,
        champion_recall=champion_recall,
        challenger_recall=challenger_recall,
    )
