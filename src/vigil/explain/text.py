"""Sentences an operator can act on: "pump3.outlet_pressure_bar reads 31 % below what the model expects"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.pipeline import Pipeline

__all__ = ["FeatureFinding", "explain_rows"]

# A feature whose share of the score is below this is called normal in the sentence.
NORMAL_SHARE = 0.05


@dataclass(frozen=True)
class FeatureFinding:
    """One feature's part in one row's score."""

    feature: str
    share: float
    observed: float
    expected: float | None
    sigmas: float | None  # (observed − expected) in the feature's training standard deviations

    def phrase(self) -> str:
        if self.expected is None or self.sigmas is None:
            return f"{self.feature} = {self.observed:.4g} drove {100 * self.share:.0f} % of the score"
        direction = "above" if self.observed > self.expected else "below"
        gap = self.observed - self.expected
        relative = ""
        if abs(self.expected) > 1e-9 and np.sign(self.observed) == np.sign(self.expected):
            relative = f"{100 * abs(gap) / abs(self.expected):.0f} % "
        return (
            f"{self.feature} reads {self.observed:.4g}, {relative}{direction} the {self.expected:.4g} the model "
            f"expects ({abs(self.sigmas):.1f} σ; {100 * self.share:.0f} % of the score)"
        )


def _expected_raw(pipe: Pipeline, X: Any) -> NDArray[np.float64] | None:
    scaled = pipe._transform(X)
    expected = pipe.detector_._expected(scaled)
    if expected is None:
        return None
    return np.asarray(expected) * pipe.scaler_.scale_ + pipe.scaler_.center_


def explain_rows(pipe: Pipeline, X: Any, *, top_k: int = 3) -> list[tuple[list[FeatureFinding], str]]:
    """For each row: the ``top_k`` findings, largest share first, and a sentence built from them.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from vigil.detectors.mahalanobis import MahalanobisDetector
    >>> rng = np.random.default_rng(0)
    >>> flow = rng.normal(50, 5, 600)
    >>> X = pd.DataFrame({"flow": flow, "pressure": 0.1 * flow + rng.normal(0, 0.1, 600),
    ...                   "temp": rng.normal(40, 1, 600)})
    >>> pipe = Pipeline(MahalanobisDetector(random_state=0)).fit(X)
    >>> findings, sentence = explain_rows(pipe, pd.DataFrame({"flow": [50.0], "pressure": [3.0], "temp": [40.0]}))[0]
    >>> findings[0].feature
    'pressure'
    >>> print(sentence)
    pressure reads 3, 40 % below the 4.991 the model expects (3.9 σ; 100 % of the score); temp and flow normal
    """
    shares = pipe.contributions(X)
    observed = pipe._transform(X) * pipe.scaler_.scale_ + pipe.scaler_.center_
    expected = _expected_raw(pipe, X)
    names = pipe.feature_names_out_
    out = []
    for i in range(shares.shape[0]):
        order = np.argsort(-shares[i], kind="stable")
        findings: list[FeatureFinding] = []
        for j in order[: max(1, min(top_k, len(names)))]:
            if findings and shares[i, j] < NORMAL_SHARE:
                break
            exp = None if expected is None else float(expected[i, j])
            sig = None if exp is None else float((observed[i, j] - exp) / pipe.scaler_.scale_[j])
            findings.append(FeatureFinding(names[j], float(shares[i, j]), float(observed[i, j]), exp, sig))
        normal = [names[j] for j in order[::-1] if shares[i, j] < NORMAL_SHARE][:2]
        sentence = "; ".join(f.phrase() for f in findings)
        if normal:
            sentence += f"; {' and '.join(normal)} normal"
        out.append((findings, sentence))
    return out
