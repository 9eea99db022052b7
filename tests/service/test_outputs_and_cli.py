"""Webhooks, `vigil replay` into a running service, the serve command's argument errors, and exports."""

from __future__ import annotations

import importlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from service_helpers import anomalous_readings, payload, record, training_frame

from vigil.alerts import SqlAlertStore
from vigil.service.cli import main
from vigil.service.webhooks import WebhookSink
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime, RuntimeConfig
from vigil.streaming.sources.mqtt import MqttIngest, MqttOptions

MODULES = [
    "vigil.streaming.dead_letters",
    "vigil.streaming.messages",
    "vigil.streaming.model_registry",
    "vigil.streaming.runtime",
    "vigil.streaming.runtime_metrics",
    "vigil.streaming.runtime_types",
    "vigil.streaming.model_slot",
    "vigil.streaming.device_calibration",
    "vigil.streaming.drift",
    "vigil.streaming.retrain",
    "vigil.service",
    "vigil.service.app",
    "vigil.service.auth",
    "vigil.service.cli",
    "vigil.streaming.sources.mqtt",
    "vigil.service.prometheus",
    "vigil.service.replay",
    "vigil.service.server",
    "vigil.service.webhooks",
]


@pytest.mark.parametrize("name", MODULES)
def test_modules_export_what_they_define(name: str) -> None:
    module = importlib.import_module(name)
    assert len(set(module.__all__)) == len(module.__all__)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names missing {member}"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_alert_events_reach_webhooks(store: SqlAlertStore, registry: ModelRegistry, receiver) -> None:
    url, received = receiver
    sink = WebhookSink([url], timeout=5)
    rng = np.random.default_rng(0)
    try:
        with Runtime(store, registry, sinks=[sink]) as runtime:
            runtime.submit(payload(*[record("p1", float(t), anomalous_readings(rng)) for t in range(5)]), "t")
            runtime.drain()
    finally:
        sink.close()
    # one batch: the opening, then only the last of its four updates
    assert [event["event"] for event in received] == ["opened", "updated"]
    assert received[0]["alert"]["device"] == "p1"
    assert received[1]["alert"]["n_points"] == 5
    assert sink.delivered == 2 and sink.failed == 0


def test_an_unreachable_webhook_is_counted_not_fatal() -> None:
    sink = WebhookSink(["http://127.0.0.1:1/none"], timeout=1, retries=0)
    from vigil.alerts import AlertTracker

    events = AlertTracker(model_version="m").update("p1", 0.0, 5.0, 1.0, True, {"a": 1.0})
    sink.publish(events, [])
    sink.close()
    assert sink.failed == 1


@pytest.mark.mqtt
def test_replay_publishes_a_table_into_the_service(
    tmp_path: Path, store: SqlAlertStore, registry: ModelRegistry, broker: str
) -> None:
    prefix = f"vigilreplay-{uuid.uuid4().hex[:8]}"
    csv = tmp_path / "live.csv"
    frame = training_frame(seed=9, n=50)
    frame.insert(0, "time", np.arange(50, dtype=float))
    frame.to_csv(csv, index=False)
    runtime = Runtime(store, registry, config=RuntimeConfig())
    options = MqttOptions(url=broker, topic=f"{prefix}/+/telemetry", client_id=f"{prefix}-svc", session_expiry=30)
    ingest = MqttIngest(runtime, options)
    runtime.start()
    ingest.start()
    try:
        assert ingest.wait_connected(10)
        code = main(
            [
                "replay",
                str(csv),
                "--mqtt",
                broker,
                "--rate",
                "0",
                "--time",
                "time",
                "--devices",
                "3",
                "--topic-template",
                f"{prefix}/{{device}}/telemetry",
            ]
        )
        assert code == 0
        deadline = time.monotonic() + 20
        while runtime.metrics.snapshot()["scored"].get("pump", 0) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting on the broker's deliveries, with a deadline
        assert runtime.metrics.snapshot()["scored"]["pump"] == 150
        assert {d["device"] for d in runtime.devices()} == {"device-000", "device-001", "device-002"}
    finally:
        ingest.stop()
        runtime.stop()


def test_serve_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--registry", str(tmp_path / "none")]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path / "missing"), "--registry", str(tmp_path / "r")]) == 2
    with pytest.raises(SystemExit):
        main(["serve", "--route", "no-equals-sign"])


def test_replay_refuses_a_table_without_sensors(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("time,name\n0,a\n")
    assert main(["replay", str(csv), "--mqtt", "mqtt://127.0.0.1:1", "--time", "time"]) == 2


def test_sigterm_stops_the_service_cleanly_and_keeps_its_recent_rows(tmp_path: Path, registry: ModelRegistry) -> None:
    import signal
    import subprocess
    import sys
    import urllib.request

    from service_helpers import WRITE_TOKEN, free_port, normal_readings, port_open

    tokens = tmp_path / "tokens"
    tokens.write_text(f"write {WRITE_TOKEN}\n")
    port = free_port()
    command = [sys.executable, "-m", "vigil.service", "serve", "--registry", str(registry.root),
               "--store", f"sqlite:///{tmp_path / 'alerts.db'}", "--http", f"127.0.0.1:{port}",
               "--token-file", str(tokens)]  # fmt: skip
    service = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port):
            assert service.poll() is None and time.monotonic() < deadline, service.communicate()[0]
            time.sleep(0.2)
        rng = np.random.default_rng(9)
        body = payload(*[record("p1", float(i), normal_readings(rng)) for i in range(300)])
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/ingest", data=body, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200
        service.send_signal(signal.SIGTERM)
        output, _ = service.communicate(timeout=60)
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate()
    assert service.returncode == 0, output
    from vigil.streaming.retrain import load_recent

    assert len(load_recent(registry, "pump")) == 300  # saved on the way out, not lost with the process
