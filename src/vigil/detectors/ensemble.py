"""An ensemble of complementary detectors whose scores are put on one scale before they are combined."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import BaseDetector, Options, as_shares
from vigil.errors import InvalidInputError
from vigil.registry import detector_class, make_detector, register

__all__ = ["EnsembleDetector"]

_MEMBER_PREFIX = "member{}__"


def _member_names(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) >= 1 and all(isinstance(v, str) and v for v in value)


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

    The normalised scores are combined by their ``"mean"`` (a fault that two members both see a little
    counts) or ``"max"`` (one member sure of a fault is enough). The training scores the normalisation
    is fitted on are in-sample, so a member that fits its training rows closely looks calmer there than
    on new rows; the pipeline's calibration on held-out rows sets the threshold either way.

    Feature contributions are the members' own shares, weighted by how much each member adds to the row's
    combined score (for ``"max"``: the shares of the member that gave the maximum).

    Parameters
    ----------
    members : tuple (or list) of str
        Registered detector names, each fitted with its defaults (seeded with ``random_state``).
    normalisation : {"robust", "tail"}
    combination : {"mean", "max"}
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
        "normalisation": [Options("robust", "tail")],
        "combination": [Options("mean", "max")],
    }

    def __init__(
        self,
        *,
        members: tuple[str, ...] = ("mahalanobis", "pca"),
        normalisation: str = "robust",
        combination: str = "mean",
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.members = members
        self.normalisation = normalisation
        self.combination = combination

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"random_state": 0},
            {"members": ("pca", "iforest"), "normalisation": "tail", "combination": "max", "random_state": 1},
        ]

    def _build_members(self) -> list[BaseDetector]:
        built = []
        for name in self.members:
            cls = detector_class(name)
            if cls is type(self):
                msg = f"EnsembleDetector(members={self.members!r}): an ensemble cannot be its own member"
                raise InvalidInputError(msg)
            seed = {} if self.random_state is None else {"random_state": self.random_state}
            built.append(make_detector(name, **(seed if "random_state" in cls._param_names() else {})))
        return built

    def _min_fit_rows(self) -> int:
        return max([2, *(detector_class(name)._min_fit_rows(detector_class(name)()) for name in self.members)])

    @property
    def context_rows(self) -> int:
        return max((m.context_rows for m in getattr(self, "members_", [])), default=0)

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        self.members_ = [member.fit(values) for member in self._build_members()]
        sorted_scores = []
        medians, scales = [], []
        for member in self.members_:
            scores = np.sort(member.score_samples(values))
            q1, median, q3 = np.quantile(scores, [0.25, 0.5, 0.75])
            spread = float(q3 - q1)
            # A member whose training scores are (nearly) constant gets a floor so that it cannot swamp the others.
            scales.append(max(spread, 1e-9 * max(abs(float(median)), 1.0), 1e-12))
            medians.append(float(median))
            sorted_scores.append(scores)
        self.train_scores_ = np.vstack(sorted_scores)
        self.medians_ = np.asarray(medians)
        self.scales_ = np.asarray(scales)

    def _normalised(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Member × row matrix of normalised scores."""
        out = np.empty((len(self.members_), values.shape[0]))
        for i, member in enumerate(self.members_):
            raw = member._checked_scores(values)
            if self.normalisation == "robust":
                out[i] = (raw - self.medians_[i]) / self.scales_[i]
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
