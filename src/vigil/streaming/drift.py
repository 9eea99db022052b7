"""Score drift: do live scores still look like the scores the model gave its training data?

A fitted :class:`~vigil.pipeline.Pipeline` keeps quantiles of its training scores. If the plant is
unchanged, about 10 % of live scores exceed the training 0.9 quantile and about 1 % the 0.99 quantile.
Each check is a one-sample test of a proportion: a z-value beyond ``z_limit`` in either direction on any
quantile reports drift — scores creeping up (wear, a new operating mode) or collapsing (a stuck feed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DriftReport", "score_drift"]


@dataclass(frozen=True)
class DriftReport:
    """The outcome of :func:`score_drift`.

    Attributes
    ----------
    n : int
        Live scores compared.
    drifted : bool
    checks : list of dict
        Per training quantile: ``quantile``, ``threshold`` (its score), ``expected`` and ``observed`` shares
        above it, and ``z``.
    message : str
    """

    n: int
    drifted: bool
    checks: list[dict[str, float]] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "drifted": self.drifted, "checks": self.checks, "message": self.message}


def score_drift(
    scores: Sequence[float] | np.ndarray,
    train_quantiles: Mapping[str, float],
    *,
    z_limit: float = 4.0,
    min_samples: int = 200,
) -> DriftReport:
    """Compare live ``scores`` with the training quantiles of the model that produced them.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=5000)
    >>> quantiles = {str(q): float(np.quantile(train, q)) for q in (0.5, 0.9, 0.99)}
    >>> score_drift(rng.normal(size=2000), quantiles).drifted
    False
    >>> score_drift(rng.normal(loc=1.0, size=2000), quantiles).drifted
    True
    """
    values = np.asarray(scores, dtype=np.float64)
    n = len(values)
    if n < min_samples:
        return DriftReport(n, False, [], f"too few scores to judge drift ({n} < {min_samples})")
    checks = []
    worst = 0.0
    for key, level in sorted(train_quantiles.items(), key=lambda item: float(item[0])):
        q = float(key)
        if not 0.0 < q < 1.0:
            continue
        expected = 1.0 - q
        observed = float(np.mean(values > level))
        z = (observed - expected) / math.sqrt(expected * (1.0 - expected) / n)
        checks.append({"quantile": q, "threshold": float(level), "expected": expected, "observed": observed, "z": z})
        worst = max(worst, abs(z))
    drifted = worst > z_limit
    if not checks:
        return DriftReport(n, False, [], "the model has no training quantiles to compare with")
    top = max(checks, key=lambda c: abs(c["z"]))
    message = (
        f"{100 * top['observed']:.1f} % of {n} recent scores exceed the training {top['quantile']:g} quantile "
        f"(expected {100 * top['expected']:.1f} %, z = {top['z']:.1f})"
    )
    return DriftReport(n, drifted, checks, ("drift: " if drifted else "no drift: ") + message)
