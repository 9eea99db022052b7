"""Fixtures of the service tests: a fitted model, a registry, a store, a running runtime, a broker, a live
HTTP server and headless Chromium."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

for _module in ("fastapi", "uvicorn", "paho.mqtt", "prometheus_client", "httpx"):
    pytest.importorskip(_module, reason=f"the service tests need {_module}: pip install 'vigil[service]'")

from service_helpers import READ_TOKEN, WRITE_TOKEN, free_port, port_open, serve_in_thread, training_frame  # noqa: E402

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
def own_broker(tmp_path: Path, service_missing) -> Iterator[Callable[[], None]]:
    """A private Mosquitto with persistence on a free port, which the test may restart."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        service_missing("the mosquitto binary is not installed (apt-get install mosquitto)")
    port = free_port()
    data = tmp_path / "broker"
    data.mkdir()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        # as root, mosquitto would switch to its own user, which cannot write to the test's folder
        f"{'user ' + getpass.getuser() + chr(10) if os.geteuid() == 0 else ''}"
        f"persistence_location {data}/\nmax_queued_messages 100000\n"
    )
    processes: list[subprocess.Popen] = []

    def start() -> None:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(proc)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline:
                pytest.fail("mosquitto did not listen within 10 s")
            time.sleep(0.05)  # waiting for the broker to bind its port

    def restart() -> None:
        proc = processes[-1]
        proc.send_signal(signal.SIGTERM)  # a clean stop saves the persistent sessions
        proc.wait(10)
        start()

    start()
    restart.port = port  # type: ignore[attr-defined]
    yield restart
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[str]:
    app = create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write", READ_TOKEN: "read"}))
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'vigil[test]' for Playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


PCAP_HEADER_BYTES = 24


@pytest.fixture(scope="module")
def capture_setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A KitNET model fitted on a benign capture, and the records of a port scan to append to it."""
    pytest.importorskip("dpkt", reason="packet captures need dpkt: pip install 'vigil[network]'")
    from vigil.network.capture import read_packets_as_table
    from vigil.network.kitnet import KitNETDetector
    from vigil.network.synthetic import make_capture, write_pcap

    folder = tmp_path_factory.mktemp("capture")
    cap = make_capture(["port_scan"], train_seconds=120, gap_seconds=20, n_devices=3)
    train, attack, _ = cap.split()
    benign = write_pcap(train, folder / "benign.pcap")
    features, _ = read_packets_as_table(benign)
    model = Pipeline(KitNETDetector(epochs=3, random_state=0)).fit(features).save(folder / "model")
    attack_records = write_pcap(attack, folder / "attack.pcap").read_bytes()[PCAP_HEADER_BYTES:]
    return {"benign": benign, "model": model, "attack_records": attack_records, "n_packets": len(cap.packets)}


@pytest.fixture(scope="module")
def camera_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A patch-gauss image model fitted on 40 good synthetic parts (48 × 48)."""
    pytest.importorskip("torch")
    from PIL import Image

    from vigil.vision.folders import fit_image_folder
    from vigil.vision.synthetic import make_synthetic_set

    folder = tmp_path_factory.mktemp("camera")
    good = folder / "good"
    good.mkdir()
    for i, image in enumerate(make_synthetic_set(40, 0, size=48, seed=1).images):
        Image.fromarray(image).save(good / f"{i:02d}.png")
    fit_image_folder(folder, "patch-gauss", folder / "model", params={"grid": 8}, size=48)
    return folder / "model"
