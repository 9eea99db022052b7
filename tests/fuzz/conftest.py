"""Fixtures of the fuzzing suite: one fitted model, a registry, a store and a running runtime per test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

for _module in ("fastapi", "httpx", "paho.mqtt", "hypothesis"):
    pytest.importorskip(_module, reason=f"the fuzzing suite needs {_module}: pip install 'vigil[service]'")

from vigil.alerts import SqlAlertStore  # noqa: E402
from vigil.detectors.pca import PCADetector  # noqa: E402
from vigil.pipeline import Pipeline  # noqa: E402
from vigil.streaming.model_registry import ModelRegistry  # noqa: E402
from vigil.streaming.runtime import Runtime, RuntimeConfig  # noqa: E402

SENSORS = ["temp_c", "pressure_bar", "flow_m3h", "current_a"]


@pytest.fixture(scope="session")
def fitted() -> Pipeline:
    rng = np.random.default_rng(0)
    return Pipeline(PCADetector(n_components=2)).fit(pd.DataFrame(rng.normal(size=(600, 4)), columns=SENSORS))


@pytest.fixture
def runtime(tmp_path: Path, fitted: Pipeline) -> Iterator[Runtime]:
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("pump", fitted, activate=True)
    config = RuntimeConfig(registry_poll_seconds=60.0)
    with SqlAlertStore(tmp_path / "alerts.db") as store, Runtime(store, registry, config=config) as rt:
        yield rt


@pytest.fixture
def broker(service_missing) -> str:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1.0):
            return "mqtt://127.0.0.1:1883"
    except OSError:
        service_missing("no MQTT broker at 127.0.0.1:1883 (start mosquitto)")
