"""A bad model version never gets served: `vigil serve` refuses to start, a hot swap to it is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from service_helpers import WRITE_TOKEN, normal_readings, payload, record, training_frame

from vigil.detectors.pca import PCADetector
from vigil.hostile import tamper
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Decision, Runtime

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}


def bad_version(registry: ModelRegistry, how: str = "threshold_nan") -> str:
    version = registry.add("pump", Pipeline(PCADetector(n_components=2)).fit(training_frame(seed=3)))
    tamper(registry.version_dir("pump", version), how)
    return version


def scores_still(runtime: Runtime, version: str) -> None:
    rng = np.random.default_rng(0)
    outcome = runtime.submit(payload(record("p1", time.time(), normal_readings(rng))), "test").result(timeout=10)
    assert isinstance(outcome[0], Decision) and outcome[0].version == version


@pytest.mark.parametrize("how", ["threshold_nan", "detector_state_removed", "components_wide", "config_garbage"])
def test_serve_refuses_to_start_on_a_bad_model(tmp_path: Path, fitted: Pipeline, how: str) -> None:
    model = fitted.save(tmp_path / "model")
    tamper(model, how)
    command = [sys.executable, "-m", "vigil.service", "serve", "--model", f"pump={model}",
               "--registry", str(tmp_path / "registry"), "--store", f"sqlite:///{tmp_path / 'a.db'}",
               "--http", "127.0.0.1:0"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert str(model) in done.stderr and "Traceback" not in done.stderr
    shutil.rmtree(tmp_path / "registry", ignore_errors=True)
