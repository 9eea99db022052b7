"""From training scores to a decision threshold: control limit, target false-alarm rate, POT.

Every thresholder learns from scores of *normal* (training or held-out training) data only; none ever
looks at test labels. ``fit(scores)`` sets ``threshold_``; ``is_anomaly(score)`` is ``score > threshold_``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

from vigil.base import Interval, satisfies
from vigil.errors import InvalidInputError, NotFittedError

__all__ = [
    "POTThreshold",
    "QuantileThreshold",
    "TargetFARThreshold",
    "Thresholder",
    "check_parameters",
    "make_thresholder",
    "thresholder_from_dict",
]


def check_parameters(obj: Any) -> None:
    """Check every parameter of a thresholder against its ``_parameter_constraints``; name the bad one."""
    for name, allowed in obj._parameter_constraints.items():
        value = getattr(obj, name)
        if not any(satisfies(c, value) for c in allowed):
            msg = f"{type(obj).__name__}({name}={value!r}) is invalid: expected {' or '.join(map(repr, allowed))}"
            raise InvalidInputError(msg)


class Thresholder:
    """Base class: learns ``threshold_`` from a 1-D array of normal scores."""

    kind: ClassVar[str] = ""
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._parameter_constraints}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def _check(self, scores: Any) -> NDArray[np.float64]:
        check_parameters(self)
        values = np.asarray(scores, dtype=np.float64)
        if values.ndim != 1 or values.size < 2:
            msg = f"{type(self).__name__} needs a 1-D array of at least 2 scores, got shape {values.shape}"
            raise InvalidInputError(msg)
        if not np.isfinite(values).all():
            msg = f"scores[row {int(np.flatnonzero(~np.isfinite(values))[0])}] is not finite"
            raise InvalidInputError(msg)
        return values

    def fit(self, scores: Any) -> Self:
        values = self._check(scores)
        self.threshold_ = float(self._threshold(values))
        self.n_scores_ = int(values.size)
        return self

    def _threshold(self, scores: NDArray[np.float64]) -> float:
        raise NotImplementedError

    def is_anomaly(self, scores: Any) -> NDArray[np.bool_]:
        if not hasattr(self, "threshold_"):
            msg = f"{type(self).__name__} is not fitted yet: call fit(scores) first"
            raise NotFittedError(msg)
        return np.asarray(scores, dtype=np.float64) > self.threshold_

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "params": self.get_params()}
        if hasattr(self, "threshold_"):
            out["threshold"] = self.threshold_
            out["n_scores"] = self.n_scores_
        return out


class QuantileThreshold(Thresholder):
    """Upper control limit: ``factor`` × the ``quantile`` of normal scores (SKAB's UCL rule).

    Examples
    --------
    >>> QuantileThreshold(quantile=0.5, factor=2.0).fit([1.0, 2.0, 3.0]).threshold_
    4.0
    """

    kind = "quantile"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "quantile": [Interval(float, 0.0, 1.0)],
        "factor": [Interval(float, 0.0, None, closed="neither")],
    }

    def __init__(self, *, quantile: float = 0.99, factor: float = 1.0) -> None:
        self.quantile = quantile
        self.factor = factor

    def _threshold(self, scores: NDArray[np.float64]) -> float:
        return self.factor * float(np.quantile(scores, self.quantile))


class TargetFARThreshold(Thresholder):
    """Threshold expected to flag at most ``far`` of normal points (split-conformal rule).

    Fitted on scores of normal data the model did *not* train on, the ⌈(n+1)(1−far)⌉-th smallest score
    bounds the false-alarm rate of exchangeable new normal points by ``far``. When n is too small for
    that rank to exist, the largest score is used and ``guaranteed_`` is False.

    Examples
    --------
    >>> t = TargetFARThreshold(far=0.1).fit(list(range(1, 21)))
    >>> t.threshold_, t.guaranteed_
    (19.0, True)
    """

    kind = "target-far"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"far": [Interval(float, 0.0, 1.0, closed="neither")]}

    def __init__(self, *, far: float = 0.01) -> None:
        self.far = far

    def _threshold(self, scores: NDArray[np.float64]) -> float:
        n = scores.size
        rank = math.ceil((n + 1) * (1.0 - self.far))
        ordered = np.sort(scores)
        self.guaranteed_ = rank <= n
        return float(ordered[min(rank, n) - 1])


def _fit_gpd(excesses: NDArray[np.float64]) -> tuple[float, float]:
    """Maximum-likelihood generalised Pareto shape γ and scale σ of positive excesses (location 0).

    Falls back to the exponential tail (γ = 0, σ = mean) when the fit fails or is no more likely.
    """
    mean = float(excesses.mean())
    exp_nll = -float(np.sum(stats.expon.logpdf(excesses, scale=mean)))
    with warnings.catch_warnings():
        # The optimiser probes shapes whose support excludes some excesses; those trials are rejected.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            gamma, _, sigma = stats.genpareto.fit(excesses, floc=0.0)
        except (RuntimeError, ValueError, optimize.OptimizeWarning):
            return 0.0, mean
        nll = -float(np.sum(stats.genpareto.logpdf(excesses, gamma, scale=sigma)))
    if not (np.isfinite(nll) and np.isfinite(gamma) and sigma > 0) or exp_nll <= nll:
        return 0.0, mean
    return float(gamma), float(sigma)


class POTThreshold(Thresholder):
    """Peaks over threshold (extreme value theory, Siffer et al. 2017, the batch part of SPOT).

    Scores above an initial high quantile ``level`` are modelled with a generalised Pareto distribution;
    the threshold is the score exceeded with probability ``risk`` under that tail model, so it can lie
    beyond the largest training score where a plain quantile cannot.

    Parameters
    ----------
    risk : float
        Probability that a normal score exceeds the threshold.
    level : float
        Quantile of the normal scores where the tail begins.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.random.default_rng(0).exponential(size=5000)
    >>> t = POTThreshold(risk=1e-3, level=0.95).fit(scores)
    >>> 5.5 < t.threshold_ < 8.5   # the exact 1e-3 quantile of Exp(1) is ln(1000) ≈ 6.9
    True
    """

    kind = "pot"
    gamma_: float
    sigma_: float
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "risk": [Interval(float, 0.0, 0.5, closed="neither")],
        "level": [Interval(float, 0.5, 1.0, closed="neither")],
    }

    def __init__(self, *, risk: float = 1e-3, level: float = 0.98) -> None:
        self.risk = risk
        self.level = level

    def _threshold(self, scores: NDArray[np.float64]) -> float:
        t = float(np.quantile(scores, self.level))
        excesses = scores[scores > t] - t
        n, n_t = scores.size, excesses.size
        if n_t < 5 or float(excesses.mean()) <= 0:
            # Too few peaks to fit a tail: the best available statement is the top of the data.
            self.gamma_, self.sigma_ = 0.0, 0.0
            return float(scores.max())
        gamma, sigma = _fit_gpd(excesses)
        self.gamma_, self.sigma_ = gamma, sigma
        ratio = self.risk * n / n_t
        if abs(gamma) < 1e-9:
            return t - sigma * math.log(ratio)
        return t + sigma / gamma * (ratio ** (-gamma) - 1.0)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if hasattr(self, "gamma_"):
            out["gamma"], out["sigma"] = self.gamma_, self.sigma_
        return out


_KINDS: dict[str, type[Thresholder]] = {cls.kind: cls for cls in (QuantileThreshold, TargetFARThreshold, POTThreshold)}


def make_thresholder(kind: str, **params: Any) -> Thresholder:
    """Create a thresholder by kind name: ``quantile``, ``target-far`` or ``pot``.

    Examples
    --------
    >>> make_thresholder("pot", risk=1e-4)
    POTThreshold(risk=0.0001, level=0.98)
    """
    if kind not in _KINDS:
        msg = f"unknown threshold kind {kind!r}; choose one of {sorted(_KINDS)}"
        raise InvalidInputError(msg)
    return _KINDS[kind](**params)


def thresholder_from_dict(document: dict[str, Any]) -> Thresholder:
    """Rebuild a fitted thresholder from :meth:`Thresholder.to_dict` output."""
    thresholder = make_thresholder(document["kind"], **document.get("params", {}))
    if "threshold" in document:
        thresholder.threshold_ = float(document["threshold"])
        thresholder.n_scores_ = int(document.get("n_scores", 0))
    if "gamma" in document and isinstance(thresholder, POTThreshold):  # only a tail model writes them
        thresholder.gamma_, thresholder.sigma_ = float(document["gamma"]), float(document["sigma"])
    return thresholder
