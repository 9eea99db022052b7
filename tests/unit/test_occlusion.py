"""Occlusion attribution: model-agnostic, so it must name the broken sensor whatever the detector."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline
from vigil.registry import available_detectors, make_detector


def _plant(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(800, 1))
    values = np.hstack([t, -t, 0.5 * t, rng.normal(size=(800, 1))]) + 0.05 * rng.normal(size=(800, 4))
    frame = pd.DataFrame(values, columns=["flow", "pressure", "current", "ambient"])
    test = frame.iloc[600:].reset_index(drop=True)
    test["current"] += 4.0  # the current sensor no longer agrees with flow and pressure
    return frame.iloc[:600], test


@pytest.mark.parametrize("name", ["pca", "mahalanobis", "iforest", "online-zscore", "autoencoder"])
def test_occlusion_ranks_the_broken_sensor_first(name: str) -> None:
    if name not in available_detectors():
        pytest.skip(f"{name} needs an optional dependency")
    train, test = _plant()
    params = {"random_state": 0} if "random_state" in make_detector(name).get_params() else {}
    pipe = Pipeline(make_detector(name, **params)).fit(train)
    shares = pipe.contributions(test, method="occlusion")
    assert shares.shape == test.shape
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert (shares.argmax(axis=1) == 2).mean() > 0.9


def test_unknown_attribution_method_is_a_clear_error() -> None:
    train, test = _plant()
    pipe = Pipeline(make_detector("pca")).fit(train)
    with pytest.raises(InvalidInputError, match="unknown attribution method 'shap'"):
        pipe.contributions(test, method="shap")
