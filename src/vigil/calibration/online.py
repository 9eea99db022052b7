"""Thresholds that follow the plant: learn from unlabelled scores as they arrive, one score at a time.

A static threshold is right for the training period and wrong once the plant drifts. Each class here
starts from the held-out calibration scores and the static threshold a
:class:`~vigil.calibration.thresholds.Thresholder` set on them, then moves with the scores it is shown.
They never decide *which* scores to learn from: the alarm stage (:class:`vigil.alarms.AlarmStage`) feeds
them only scores it believes normal (no alarm in force, no incident-sized share of recent alarms), which
is what keeps an incident from being learnt away, and bounds how far they may move from the static
threshold.

The parameters live on the object (fitted once, saved with the pipeline); the moving part lives in a
plain JSON-ready ``dict`` returned by :meth:`OnlineThreshold.start`, one per device, so one fitted object
serves a whole fleet and its state survives a restart.

=================  ==============================================================  =====================
kind               what moves                                                      memory
=================  ==============================================================  =====================
``fixed``          nothing (the static threshold)                                  none
``baseline``       the typical score level: an exponentially weighted mean of      ``memory`` rows
                   log-scores; the threshold scales with it                        (half-life)
``conformal``      the alarm level α_t of adaptive conformal inference (Gibbs &    ``1 / gamma`` rows
                   Candès 2021): α_t += γ(α − 1[alarm]); threshold = the
                   1 − α_t quantile of the calibration scores
``spot``           SPOT (Siffer et al. 2017): the peaks over an initial quantile   every normal score;
                   feed a generalised Pareto tail; with ``depth > 0`` (DSPOT)       ``depth`` rows for
                   scores are taken relative to the mean of the last ``depth``     the drift level
                   normal scores, so the tail rides on a drifting level
=================  ==============================================================  =====================
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from vigil.base import Interval
from vigil.calibration.thresholds import check_parameters
from vigil.errors import InvalidInputError, NotFittedError

__all__ = [
    "AdaptiveConformalThreshold",
    "FixedThreshold",
    "OnlineThreshold",
    "RollingBaselineThreshold",
    "SPOTThreshold",
    "make_online_threshold",
    "online_threshold_from_dict",
]

State = dict[str, Any]


class OnlineThreshold:
    """Base class: ``fit(scores, threshold)`` once, then ``start`` / ``threshold`` / ``learn`` per device."""

    kind: ClassVar[str] = ""
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    learns_alarms: ClassVar[bool] = False
    """Whether scores above the threshold are shown too (the alarm stage still withholds incidents)."""

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._parameter_constraints}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def fit(self, scores: Any, threshold: float) -> Self:
        """Learn the starting point from held-out normal ``scores`` and the static ``threshold``."""
        check_parameters(self)
        values = np.asarray(scores, dtype=np.float64)
        if values.ndim != 1 or values.size < 2 or not np.isfinite(values).all():
            msg = f"{type(self).__name__} needs at least 2 finite calibration scores, got shape {values.shape}"
            raise InvalidInputError(msg)
        if not math.isfinite(threshold):
            msg = f"{type(self).__name__}: the static threshold {threshold!r} is not finite"
            raise InvalidInputError(msg)
        self.base_ = float(threshold)
        self._fit(values)
        return self

    def _fit(self, scores: NDArray[np.float64]) -> None:
        """Learn what the state starts from (subclasses)."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "base_"):
            msg = f"{type(self).__name__} is not fitted yet: call fit(scores, threshold) first"
            raise NotFittedError(msg)

    def start(self) -> State:
        """A fresh state, as at the end of the calibration period."""
        self._check_fitted()
        return {}

    def threshold(self, state: State) -> float:
        """The threshold in force for the device whose state this is."""
        return self.base_

    def learn(self, state: State, score: float) -> None:
        """Move ``state`` by one score believed normal."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "params": self.get_params()}
        if hasattr(self, "base_"):
            out["fitted"] = self._fitted_dict()
        return out

    def _fitted_dict(self) -> dict[str, Any]:
        return {"base": self.base_}

    def _restore(self, fitted: dict[str, Any]) -> None:
        self.base_ = float(fitted["base"])


class FixedThreshold(OnlineThreshold):
    """The static threshold, unchanged: what every pipeline did before thresholds could adapt.

    Examples
    --------
    >>> t = FixedThreshold().fit([0.1, 0.2, 0.3], threshold=0.5)
    >>> state = t.start(); t.learn(state, 9.0); t.threshold(state)
    0.5
    """

    kind = "fixed"

    def __init__(self) -> None:
        pass


class RollingBaselineThreshold(OnlineThreshold):
    """The threshold scales with the typical score level, for slow level drift of the whole plant.

    The level is an exponentially weighted mean of ``log(max(score, floor))`` with a half-life of
    ``memory`` normal scores, starting from the calibration scores' mean log. The threshold is the static
    one times ``exp(level − level₀)``: when normal scores double, so does the threshold. ``floor`` (a
    share of the static threshold) keeps scores of exactly 0 from dragging the level to −∞.

    Examples
    --------
    >>> t = RollingBaselineThreshold(memory=10).fit([1.0, 1.0, 1.0, 1.0], threshold=3.0)
    >>> state = t.start()
    >>> for _ in range(200):
    ...     t.learn(state, 2.0)                  # the normal level doubles
    >>> round(t.threshold(state), 2)
    6.0
    """

    kind = "baseline"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "memory": [Interval(int, 1, None)],
        "floor": [Interval(float, 0.0, 1.0, closed="neither")],
    }

    def __init__(self, *, memory: int = 600, floor: float = 0.01) -> None:
        self.memory = memory
        self.floor = floor

    def _lowest(self) -> float:
        return max(self.floor * abs(self.base_), 1e-300)

    def _fit(self, scores: NDArray[np.float64]) -> None:
        self.level0_ = float(np.mean(np.log(np.maximum(scores, self._lowest()))))

    def start(self) -> State:
        self._check_fitted()
        return {"level": self.level0_}

    def threshold(self, state: State) -> float:
        return self.base_ * math.exp(state["level"] - self.level0_)

    def learn(self, state: State, score: float) -> None:
        weight = 1.0 - 0.5 ** (1.0 / self.memory)
        state["level"] += weight * (math.log(max(score, self._lowest())) - state["level"])

    def _fitted_dict(self) -> dict[str, Any]:
        return {"base": self.base_, "level0": self.level0_}

    def _restore(self, fitted: dict[str, Any]) -> None:
        super()._restore(fitted)
        self.level0_ = float(fitted["level0"])


class AdaptiveConformalThreshold(OnlineThreshold):
    """Adaptive conformal inference (Gibbs & Candès 2021): hold a target alarm rate on normal operation.

    The threshold is the ``1 − α_t`` quantile of the calibration scores. After each score believed normal,
    ``α_t += gamma × (alpha − 1[score > threshold])``: alarms on normal operation raise the threshold,
    long quiet stretches lower it, so the long-run alarm rate over the scores it learns from is ``alpha``
    whatever the drift. ``α_t`` is kept within ``[1 / (n + 1), 0.5]`` (n calibration scores).

    Examples
    --------
    >>> import numpy as np
    >>> t = AdaptiveConformalThreshold(alpha=0.1, gamma=0.05).fit(np.arange(100.0), threshold=90.0)
    >>> state = t.start(); round(t.threshold(state), 1)
    89.1
    >>> for s in [95.0] * 5:
    ...     t.learn(state, s)                    # five alarms in a row: the level rises
    >>> t.threshold(state) > 89.1
    True
    """

    kind = "conformal"
    # Its feedback is the alarm indicator itself: shown only quiet scores it could only ever lower the
    # threshold. The alarm stage still withholds every score while an incident-sized share of recent rows
    # is alarmed.
    learns_alarms = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "alpha": [Interval(float, 0.0, 0.5, closed="neither")],
        "gamma": [Interval(float, 0.0, 1.0, closed="neither")],
    }

    def __init__(self, *, alpha: float = 0.01, gamma: float = 0.005) -> None:
        self.alpha = alpha
        self.gamma = gamma

    def _fit(self, scores: NDArray[np.float64]) -> None:
        self.calibration_ = np.sort(scores)

    def _quantile(self, alpha: float) -> float:
        return float(np.quantile(self.calibration_, 1.0 - alpha))

    def start(self) -> State:
        self._check_fitted()
        return {"alpha": float(self.alpha)}

    def threshold(self, state: State) -> float:
        return self._quantile(state["alpha"])

    def learn(self, state: State, score: float) -> None:
        missed = 1.0 if score > self._quantile(state["alpha"]) else 0.0
        low = 1.0 / (self.calibration_.size + 1)
        state["alpha"] = min(max(state["alpha"] + self.gamma * (self.alpha - missed), low), 0.5)

    def _fitted_dict(self) -> dict[str, Any]:
        return {"base": self.base_, "calibration": self.calibration_.tolist()}

    def _restore(self, fitted: dict[str, Any]) -> None:
        super()._restore(fitted)
        self.calibration_ = np.sort(np.asarray(fitted["calibration"], dtype=np.float64))


def _gpd_moments(mean: float, var: float) -> tuple[float, float]:
    """Method-of-moments generalised Pareto shape γ and scale σ of excesses with this mean and variance.

    Closed form, so the tail can be re-estimated after every new peak at O(1) cost; it exists for γ < ½,
    which covers every tail whose variance is finite. A degenerate sample gives the exponential tail.
    """
    if mean <= 0 or var <= 0:
        return 0.0, max(mean, 1e-12)
    ratio = mean * mean / var
    return 0.5 * (1.0 - ratio), 0.5 * mean * (1.0 + ratio)


class SPOTThreshold(OnlineThreshold):
    """Streaming peaks-over-threshold (SPOT; with ``depth > 0``, DSPOT), Siffer et al., KDD 2017.

    From the calibration scores: an initial threshold ``t`` at quantile ``level`` and a generalised Pareto
    tail fitted to the excesses over it; the decision threshold is the score exceeded with probability
    ``risk``. Every normal score then updates the count; one above ``t`` adds a peak and re-fits the tail
    (by moments, in closed form). With ``depth = d > 0`` every score is first taken relative to the mean of
    the last ``d`` normal scores, so the tail model rides on a drifting level (DSPOT).

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.random.default_rng(0).exponential(size=2000)
    >>> t = SPOTThreshold(risk=1e-3, level=0.95).fit(scores, threshold=6.9)
    >>> 5.5 < t.threshold(t.start()) < 8.5
    True
    """

    kind = "spot"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "risk": [Interval(float, 0.0, 0.5, closed="neither")],
        "level": [Interval(float, 0.5, 1.0, closed="neither")],
        "depth": [Interval(int, 0, None)],
    }

    def __init__(self, *, risk: float = 1e-3, level: float = 0.98, depth: int = 0) -> None:
        self.risk = risk
        self.level = level
        self.depth = depth

    def _fit(self, scores: NDArray[np.float64]) -> None:
        d = self.depth
        if d and scores.size <= d + 1:
            msg = f"SPOTThreshold(depth={d}) needs more than {d + 1} calibration scores, got {scores.size}"
            raise InvalidInputError(msg)
        if d:
            means = np.convolve(scores, np.ones(d) / d, mode="valid")[:-1]
            relative = scores[d:] - means
            self.window_ = scores[-d:].tolist()
        else:
            relative = scores
            self.window_ = []
        self.init_ = float(np.quantile(relative, self.level))
        peaks = relative[relative > self.init_] - self.init_
        self.n_ = int(relative.size)
        self.peaks_ = [int(peaks.size), float(peaks.sum()), float(np.square(peaks).sum())]

    def start(self) -> State:
        self._check_fitted()
        return {"n": self.n_, "peaks": list(self.peaks_), "window": list(self.window_)}

    def _drift(self, state: State) -> float:
        return float(np.mean(state["window"])) if state["window"] else 0.0

    def _relative_threshold(self, state: State) -> float:
        count, total, squares = state["peaks"]
        if count < 2:
            return self.init_ + (total / count if count else 0.0)
        mean = total / count
        gamma, sigma = _gpd_moments(mean, max(squares / count - mean * mean, 0.0))
        ratio = self.risk * state["n"] / count
        if abs(gamma) < 1e-9:
            return self.init_ - sigma * math.log(ratio)
        return self.init_ + sigma / gamma * (ratio ** (-gamma) - 1.0)

    def threshold(self, state: State) -> float:
        return self._drift(state) + self._relative_threshold(state)

    def learn(self, state: State, score: float) -> None:
        relative = score - self._drift(state)
        state["n"] += 1
        if relative > self.init_:
            excess = relative - self.init_
            state["peaks"][0] += 1
            state["peaks"][1] += excess
            state["peaks"][2] += excess * excess
        if self.depth:
            state["window"].append(float(score))
            del state["window"][: -self.depth]

    def _fitted_dict(self) -> dict[str, Any]:
        return {"base": self.base_, "init": self.init_, "n": self.n_, "peaks": self.peaks_, "window": self.window_}

    def _restore(self, fitted: dict[str, Any]) -> None:
        super()._restore(fitted)
        self.init_ = float(fitted["init"])
        self.n_ = int(fitted["n"])
        self.peaks_ = [int(fitted["peaks"][0]), float(fitted["peaks"][1]), float(fitted["peaks"][2])]
        self.window_ = [float(v) for v in fitted["window"]]


ONLINE_THRESHOLDS: dict[str, type[OnlineThreshold]] = {
    cls.kind: cls for cls in (FixedThreshold, RollingBaselineThreshold, AdaptiveConformalThreshold, SPOTThreshold)
}


def make_online_threshold(kind: str, **params: Any) -> OnlineThreshold:
    """An unfitted online threshold by kind (``fixed``, ``baseline``, ``conformal``, ``spot``)."""
    if kind not in ONLINE_THRESHOLDS:
        msg = f"unknown adaptive threshold {kind!r}; choose one of {', '.join(ONLINE_THRESHOLDS)}"
        raise InvalidInputError(msg)
    cls = ONLINE_THRESHOLDS[kind]
    unknown = sorted(set(params) - set(cls._parameter_constraints))
    if unknown:
        msg = f"{cls.__name__} has no parameter {unknown[0]!r}; valid: {sorted(cls._parameter_constraints)}"
        raise InvalidInputError(msg)
    return cls(**params)


def online_threshold_from_dict(document: dict[str, Any]) -> OnlineThreshold:
    """Rebuild an online threshold saved with :meth:`OnlineThreshold.to_dict`."""
    threshold = make_online_threshold(str(document["kind"]), **dict(document.get("params", {})))
    if "fitted" in document:
        threshold._restore(dict(document["fitted"]))
    return threshold
