"""Fixtures of the service tests: a fitted model, a registry, a store, a running runtime, a broker, a live
HTTP server and headless Chromium."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

for _module in ("fastapi", "uvicorn", "paho.mqtt", "prometheus_client", "httpx"):
    pytest.importorskip(_module, reason=f"the service tests need {_module}: pip install 'vigil[service]'")

from service_helpers import READ_TOKEN, WRITE_TOKEN, free_port, port_open, training_frame  # noqa: E402

from vigil.alerts import SqlAlertStore  # noqa: E402
from vigil.detectors.pca import PCADetector  # noqa: E402
from vigil.pipeline import Pipeline  # noqa: E402
from vigil.service.app import create_app  # noqa: E402
from vigil.service.auth import TokenAuth  # noqa: E402
from vigil.streaming.model_registry import ModelRegistry  # noqa: E402
from vigil.streaming.runtime import Runtime, RuntimeConfig  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def fitted() -> Pipeline:
    return Pipeline(PCADetector(n_components=1)).fit(training_frame())


@pytest.fixture(scope="session")
def fitted_v2() -> Pipeline:
    return Pipeline(PCADetector(n_components=1)).fit(training_frame(seed=1))


@pytest.fixture
def registry(tmp_path: Path, fitted: Pipeline) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    reg.add("pump", fitted, activate=True)
    return reg


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlAlertStore]:
    with SqlAlertStore(tmp_path / "alerts.db") as s:
        yield s


@pytest.fixture
def config() -> RuntimeConfig:
    return RuntimeConfig(device_gap_seconds=5.0, calibration_min_samples=50, registry_poll_seconds=0.2)


@pytest.fixture
def runtime(store: SqlAlertStore, registry: ModelRegistry, config: RuntimeConfig) -> Iterator[Runtime]:
    with Runtime(store, registry, config=config) as rt:
        yield rt


@pytest.fixture
def broker(service_missing) -> str:
    if not port_open("127.0.0.1", 1883):
        service_missing("no MQTT broker at 127.0.0.1:1883 (start mosquitto)")
    return "mqtt://127.0.0.1:1883"


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[str]:
    import uvicorn

    app = create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write", READ_TOKEN: "read"}))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'vigil[service]' for Playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
