"""A bad model version never gets served: `vigil serve` refuses to start, a hot swap to it is refused."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import WRITE_TOKEN, normal_readings, payload, record, training_frame

from vigil.detectors.pca import PCADetector
from vigil.errors import ModelFormatError
from vigil.hostile import tamper
from vigil.pipeline import Pipeline
from vigil.service.app import create_app
from vigil.service.auth import TokenAuth
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


def test_a_hot_swap_to_a_bad_version_is_refused_and_the_old_one_serves(runtime: Runtime, registry) -> None:
    old = registry.active("pump")
    bad = bad_version(registry)
    with pytest.raises(ModelFormatError, match=r"config\.json"):
        runtime.activate("pump", bad)
    assert registry.active("pump") == old  # a restart does not find the bad version active either
    scores_still(runtime, old)


def test_the_api_answers_422_for_a_bad_version(runtime: Runtime, registry) -> None:
    old = registry.active("pump")
    bad = bad_version(registry, "components_wide")
    with TestClient(create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write"}))) as client:
        response = client.post("/models/pump/activate", json={"version": bad}, headers=WRITE)
    assert response.status_code == 422 and "arrays.npz" in response.json()["detail"]
    scores_still(runtime, old)


def test_a_bad_version_activated_elsewhere_is_refused_once(runtime: Runtime, registry, caplog) -> None:
    old = registry.active("pump")
    bad = bad_version(registry, "mean_missing")
    with caplog.at_level(logging.ERROR, logger="vigil.streaming.runtime"):
        registry.activate("pump", bad)
        time.sleep(1.0)  # several registry polls (every 0.2 s in these tests)
        runtime.drain()
    refusals = [r for r in caplog.records if "is refused; still serving" in r.getMessage()]
    assert len(refusals) == 1
    scores_still(runtime, old)


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
