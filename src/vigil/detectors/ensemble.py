"""An ensemble of complementary detectors whose scores are put on one scale before they are combined."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import BaseDetector, Interval, Options, as_shares
from vigil.errors import InvalidInputError
from vigil.registry import detector_class, make_detector, register

__all__ = ["EnsembleDetector"]

_MEMBER_PREFIX = "member{}__"


def _member_names(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) >= 1 and all(isinstance(v, str) and v for v in value)


def _member_params(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, dict) for v in value)


@register("ensemble", "Members' scores normalised on their training scores, then averaged (or their maximum)")
class EnsembleDetector(BaseDetector):
    """Combine detectors that see different faults (a distance and a forecaster, say) on one scale.

    Raw scores of two detectors are not comparable (a squared distance against a forecast error), so each
    member's score is first normalised on that member's own training scores:

    * ``"robust"``: ``(s - median) / IQR`` of the training scores (IQR floored so that a constant member
      cannot divide by zero);
    * ``"tail"``: ``-log10`` of the empirical tail p-value ``(1 + #train ≥ s) / (n + 1)``, extended beyond
      the largest training score by the robust excess ``(s - max) / IQR`` so that the ranking of scores
      past every training score is kept rather than saturated.

    * ``"quantile"``: the score divided by the member's ``tail_quantile`` quantile of those scores (after a
      shift by their minimum when it is negative), so that 1 is the member's own high normal score.

    The normalised scores are combined by their ``"mean"`` (a fault that two members both see a little
    counts) or ``"max"`` (one member sure of a fault is enough). With ``holdout=0`` the scores the
    normalisation is fitted on are in-sample, so a member that fits its training rows closely (a forecaster)
    looks calmer there than on new rows and weighs too much afterwards. With ``holdout > 0`` the members are
    fitted on the rows before the last ``holdout`` share and the normalisation on their scores of those
    held-out rows (scored with the history a windowed member needs), as the pipeline does for its threshold;
    the members are not refitted, so the normalisation belongs to the models that score. The pipeline's
    calibration on its own held-out rows sets the threshold either way.

    Feature contributions are the members' own shares, weighted by how much each member adds to the row's
    combined score (for ``"max"``: the shares of the member that gave the maximum).

    Parameters
    ----------
    members : tuple (or list) of str
        Registered detector names, each fitted with its defaults (seeded with ``random_state``).
    member_params : tuple (or list) of dict
        One dict of parameters per member (``{}`` for its defaults), e.g. ``({}, {"relative_drift": 1.0})``;
        empty (the default): every member with its defaults.
    normalisation : {"robust", "tail", "quantile"}
    combination : {"mean", "max"}
    holdout : float in [0, 0.5]
        Share of the training rows (the last ones) held out for the normalisation (0: in-sample).
    tail_quantile : float in (0.5, 1)
        The quantile ``"quantile"`` divides by.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(300, 3))
    >>> det = EnsembleDetector(members=("mahalanobis", "pca"), random_state=0).fit(X)
    >>> bool(det.score_samples([[6.0, 0.0, 0.0]])[0] > det.threshold_)
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "members": [_member_names],
        "member_params": [_member_params],
        "normalisation": [Options("robust", "tail", "quantile")],
        "combination": [Options("mean", "max")],
        "holdout": [Interval(float, 0.0, 0.5, closed="both")],
        "tail_quantile": [Interval(float, 0.5, 1.0, closed="neither")],
    }

    def __init__(
        self,
        *,
        members: tuple[str, ...] = ("mahalanobis", "pca"),
        member_params: tuple[dict[str, Any], ...] = (),
        normalisation: str = "robust",
        combination: str = "mean",
        holdout: float = 0.0,
        tail_quantile: float = 0.99,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.members = members
        self.member_params = member_params
        self.normalisation = normalisation
        self.combination = combination
        self.holdout = holdout
        self.tail_quantile = tail_quantile

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"random_state": 0},
            {"members": ("pca", "iforest"), "normalisation": "tail", "combination": "max", "random_state": 1},
            {
                "members": ("mahalanobis", "pca"),
                "member_params": ({}, {"n_components": 1}),
                "normalisation": "quantile",
                "holdout": 0.25,
                "random_state": 2,
            },
        ]

    def _params_of(self) -> list[dict[str, Any]]:
        if not self.member_params:
            return [{} for _ in self.members]
        if len(self.member_params) != len(self.members):
            msg = (
                f"EnsembleDetector: {len(self.member_params)} member_params for {len(self.members)} members "
                f"{self.members!r} (one dict per member, {{}} for its defaults)"
            )
            raise InvalidInputError(msg)
        return [dict(p) for p in self.member_params]

    def _build_members(self) -> list[BaseDetector]:
        built = []
        for name, params in zip(self.members, self._params_of(), strict=True):
            cls = detector_class(name)
            if cls is type(self):
                msg = f"EnsembleDetector(members={self.members!r}): an ensemble cannot be its own member"
                raise InvalidInputError(msg)
            if self.random_state is not None and "random_state" in cls._param_names():
                params.setdefault("random_state", self.random_state)
            built.append(make_detector(name, **params))
        return built

    def _min_fit_rows(self) -> int:
        rows = max(member._min_fit_rows() for member in self._build_members())
        # With a holdout, the members see the rows before it and the normalisation needs at least 2 after it.
        return max(2, rows if self.holdout == 0 else int(np.ceil(rows / (1.0 - self.holdout))) + 2)

    @property
    def context_rows(self) -> int:
        return max((m.context_rows for m in getattr(self, "members_", [])), default=0)

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        split = len(values) - round(self.holdout * len(values)) if self.holdout > 0 else len(values)
        self.members_ = [member.fit(values[:split]) for member in self._build_members()]
        sorted_scores = []
        medians, scales, shifts, tails = [], [], [], []
        for member in self.members_:
            if split < len(values):
                # The held-out rows, each scored from a full window of history.
                scores = member.score_samples(values[max(split - member.context_rows, 0) :])[split - len(values) :]
            else:
                scores = member.score_samples(values)
            scores = np.sort(scores)
            q1, median, q3, tail = np.quantile(scores, [0.25, 0.5, 0.75, self.tail_quantile])
            spread = float(q3 - q1)
            # A member whose training scores are (nearly) constant gets a floor so that it cannot swamp the others.
            scales.append(max(spread, 1e-9 * max(abs(float(median)), 1.0), 1e-12))
            medians.append(float(median))
            shift = min(float(scores[0]), 0.0)
            shifts.append(shift)
            tails.append(max(float(tail) - shift, 1e-9 * max(abs(float(tail)), 1.0), 1e-12))
            sorted_scores.append(scores)
        self.train_scores_ = np.vstack(sorted_scores)
        self.medians_ = np.asarray(medians)
        self.scales_ = np.asarray(scales)
        self.shifts_ = np.asarray(shifts)
        self.tails_ = np.asarray(tails)

    def _normalised(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Member × row matrix of normalised scores."""
        out = np.empty((len(self.members_), values.shape[0]))
        for i, member in enumerate(self.members_):
            raw = member._checked_scores(values)
            if self.normalisation == "robust":
                out[i] = (raw - self.medians_[i]) / self.scales_[i]
            elif self.normalisation == "quantile":
                out[i] = (raw - self.shifts_[i]) / self.tails_[i]
            else:
                train = self.train_scores_[i]
                n = train.size
                at_or_above = n - np.searchsorted(train, raw, side="left")
                excess = np.maximum(raw - train[-1], 0.0) / self.scales_[i]
                out[i] = -np.log10((1.0 + at_or_above) / (n + 1.0)) + excess
        return out

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        normalised = self._normalised(values)
        return normalised.mean(axis=0) if self.combination == "mean" else normalised.max(axis=0)

    def _contributions(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        normalised = self._normalised(values)
        shares = np.stack([as_shares(m._contributions(values)) for m in self.members_])  # member × row × feature
        if self.combination == "max":
            weights = (normalised == normalised.max(axis=0, keepdims=True)).astype(np.float64)
        else:
            weights = np.maximum(normalised, 0.0)
        weights = weights + 1e-12  # rows where no member is above its median: equal weights
        return np.einsum("mr,mrf->rf", weights, shares)

    def _learned_state(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k != "members_"}
        for i, member in enumerate(self.members_):
            prefix = _MEMBER_PREFIX.format(i)
            state.update({prefix + key: value for key, value in member._learned_state().items()})
        return state

    def _restore_state(self, state: dict[str, Any]) -> None:
        self.members_ = self._build_members()
        for i, member in enumerate(self.members_):
            prefix = _MEMBER_PREFIX.format(i)
            member._restore_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        for key, value in state.items():
            if not key.startswith("member"):
                setattr(self, key, value)
