"""Input drift fires on shifted streams and rarely on stationary ones (bounded false-alarm rate)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.errors import InvalidInputError, NotFittedError
from vigil.features.drift import InputDriftDetector


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**20), sensor=st.integers(0, 3), shift=st.floats(0.6, 3.0))
def test_a_shifted_sensor_is_found_and_named(seed, sensor, shift):
    rng = np.random.default_rng(seed)
    det = InputDriftDetector(window=400, alpha=0.001).fit(rng.normal(size=(3000, 4)))
    recent = rng.normal(size=(400, 4))
    recent[:, sensor] += shift
    det.update(recent)
    report = det.check()
    assert report.drifted
    assert report.sensors[0]["sensor"] == f"x{sensor}"
    assert report.sensors[0]["shift_sigmas"] > 0.3


def test_false_alarm_rate_on_stationary_streams_is_bounded():
    alpha = 0.01
    fired = 0
    trials = 300
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        det = InputDriftDetector(window=200, alpha=alpha).fit(rng.normal(size=(1000, 5)))
        det.update(rng.normal(size=(200, 5)))
        fired += det.check().drifted
    # Bonferroni keeps the family-wise rate at or below alpha; allow binomial slack (mean 3, sd ≈ 1.7).
    assert fired / trials <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials) + 1e-9


def test_window_must_fill_before_a_verdict_and_bad_use_is_reported():
    det = InputDriftDetector(window=50).fit(np.zeros((100, 2)) + np.arange(100)[:, None])
    det.update(np.ones((10, 2)) * 1e6)
    assert not det.check().drifted  # not enough recent rows yet
    with pytest.raises(InvalidInputError, match="columns"):
        det.update(np.ones((5, 3)))
    with pytest.raises(NotFittedError):
        InputDriftDetector().check()
    with pytest.raises(InvalidInputError, match="NaN"):
        det.update(np.array([[np.nan, 1.0]]))
