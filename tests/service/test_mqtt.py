"""MQTT ingestion against a real Mosquitto: alerts and dead letters out, broker restarts, SIGKILL restarts."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from service_helpers import SENSORS, anomalous_readings, free_port, normal_readings, port_open

from vigil.alerts import SqlAlertStore
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime, RuntimeConfig
from vigil.streaming.sources.mqtt import MqttIngest, MqttOptions

pytestmark = pytest.mark.mqtt


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # polling an outside process's effect, with a deadline
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class Publisher:
    """A QoS 1 test client that also collects what arrives on the topics it subscribes to."""

    def __init__(self, port: int, subscribe: list[str] = ()) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(200)
        self.received: list[tuple[str, dict]] = []
        self._subscribed = threading.Event()
        self._topics = list(subscribe)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if self._topics:
            assert self._subscribed.wait(10)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        for topic in self._topics:
            client.subscribe(topic, qos=1)

    def publish(self, topic: str, body: dict | bytes) -> mqtt.MQTTMessageInfo:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.publish(topic, data, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def prefix() -> str:
    return f"vigiltest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def service(store: SqlAlertStore, registry: ModelRegistry, config: RuntimeConfig, broker: str, prefix: str):
    def start(protocol: str = "5", port: int = 1883) -> tuple[Runtime, MqttIngest]:
        runtime = Runtime(store, registry, config=config)
        options = MqttOptions(
            url=f"mqtt://127.0.0.1:{port}",
            topic=f"{prefix}/+/telemetry",
            client_id=f"{prefix}-svc",
            protocol=protocol,
            session_expiry=60,
            alert_topic=f"{prefix}/alerts",
            dead_letter_topic=f"{prefix}/dead",
            reconnect_min=1,
            reconnect_max=2,
        )
        ingest = MqttIngest(runtime, options)
        runtime.sinks.append(ingest)
        runtime.start()
        ingest.start()
        assert ingest.wait_connected(10)
        started.append((runtime, ingest))
        return runtime, ingest

    started: list[tuple[Runtime, MqttIngest]] = []
    yield start
    for runtime, ingest in started:
        ingest.stop()
        runtime.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_messages_are_scored_and_alerts_and_dead_letters_published(
    service, store: SqlAlertStore, prefix: str, protocol: str
) -> None:
    runtime, _ = service(protocol)
    listener = Publisher(1883, subscribe=[f"{prefix}/alerts", f"{prefix}/dead"])
    try:
        rng = np.random.default_rng(0)
        for t in range(20):
            readings = anomalous_readings(rng) if t >= 10 else normal_readings(rng)
            listener.publish(f"{prefix}/pump-1/telemetry", {"time": float(t), "readings": readings})
        listener.publish(f"{prefix}/pump-1/telemetry", b"{broken")
        listener.publish(f"{prefix}/pump-2/telemetry", {"device": "pump-3", "time": 0.0, "readings": {"a": 1}})
        wait_for(lambda: runtime.metrics.snapshot()["scored"].get("pump", 0) == 20, 20, "20 scored records")
        wait_for(lambda: store.count_dead_letters() == 2, 10, "2 dead letters")
        alerts = store.list()
        assert len(alerts) == 1 and alerts[0].device == "pump-1" and alerts[0].n_points == 10
        wait_for(lambda: sum(t.endswith("/dead") for t, _ in listener.received) == 2, 10, "dead letters on their topic")
        wait_for(lambda: any(t.endswith("/alerts") for t, _ in listener.received), 10, "an alert on its topic")
        kinds = sorted(body["kind"] for topic, body in listener.received if topic.endswith("/dead"))
        assert kinds == ["invalid_json", "invalid_record"]
        events = [body for topic, body in listener.received if topic.endswith("/alerts")]
        assert events[0]["event"] == "opened" and events[0]["alert"]["id"] == alerts[0].id
    finally:
        listener.close()


def test_poison_messages_beyond_the_receive_maximum_never_stall_ingestion(
    service, store: SqlAlertStore, prefix: str
) -> None:
    """2,100 payloads holding a 4,301-digit integer (more than the broker's receive maximum of 2,000
    unacknowledged messages), then 100 valid ones: every poison message is dead-lettered and acknowledged,
    so the valid ones still arrive and are scored."""
    runtime, _ = service("5")
    publisher = Publisher(1883)
    rng = np.random.default_rng(5)
    others = ", ".join(f'"{name}": 0.5' for name in SENSORS[1:]).encode()
    poison = b'{"time": 1, "readings": {"temp_c": ' + b"7" * 4301 + b", " + others + b"}}"
    try:
        for i in range(2100):
            publisher.publish(f"{prefix}/bad-{i % 7}/telemetry", poison)
        for t in range(100):
            publisher.publish(f"{prefix}/good-{t % 5}/telemetry", {"time": float(t), "readings": normal_readings(rng)})
        wait_for(lambda: runtime.metrics.snapshot()["scored"].get("pump", 0) == 100, 60, "100 valid records scored")
        wait_for(lambda: store.count_dead_letters() == 2100, 30, "2,100 dead letters")
        assert store.count_dead_letters("wrong_type") == 2100
    finally:
        publisher.close()


def test_a_broker_restart_mid_stream_loses_no_message(service, own_broker, prefix: str) -> None:
    port = own_broker.port
    runtime, ingest = service("5", port)
    publisher = Publisher(port)
    rng = np.random.default_rng(1)
    sent = 600
    try:
        for t in range(sent):
            if t == sent // 2:
                own_broker()  # restart while messages are in flight
            publisher.publish(f"{prefix}/pump-{t % 4}/telemetry", {"time": float(t), "readings": normal_readings(rng)})
        snapshot = runtime.metrics.snapshot
        deadline = time.monotonic() + 90
        while snapshot()["scored"].get("pump", 0) < sent and time.monotonic() < deadline:
            time.sleep(0.05)  # the broker redelivers on its own schedule: poll with a deadline
        state = (
            f"metrics {snapshot()}, connections {ingest.connections}, publisher up {publisher.client.is_connected()}"
        )
        assert snapshot()["scored"].get("pump", 0) == sent, state
        assert ingest.connections >= 2, state
        # QoS 1 is at least once: copies redelivered after the restart are refused by the time-order check
        assert set(snapshot()["dead_letters"]) <= {"duplicate", "out_of_order"}, state
    finally:
        publisher.close()


def test_sigkill_mid_stream_keeps_every_alert_and_resumes(
    tmp_path: Path, fitted: Pipeline, broker: str, prefix: str
) -> None:
    model = tmp_path / "model"
    fitted.save(model)
    db = tmp_path / "alerts.db"
    command = [
        sys.executable,
        "-m",
        "vigil.service",
        "serve",
        "--model",
        f"pump={model}",
        "--registry",
        str(tmp_path / "registry"),
        "--store",
        f"sqlite:///{db}",
        "--http",
        "127.0.0.1:0",
        "--mqtt",
        broker,
        "--topic",
        f"{prefix}/+/telemetry",
        "--client-id",
        f"{prefix}-svc",
        "--session-expiry",
        "120",
        "--device-gap",
        "1000",
        "--log-level",
        "warning",
    ]

    def launch() -> subprocess.Popen:
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = proc.stderr.readline()
        assert "listening on" in line, line
        return proc

    def scored_points() -> int:
        with SqlAlertStore(db) as store:
            return sum(a.n_points for a in store.list(limit=None))

    publisher = Publisher(1883)
    rng = np.random.default_rng(2)
    proc = launch()
    try:
        for t in range(200):  # every point anomalous: one alert per device that keeps growing
            publisher.publish(
                f"{prefix}/pump-{t % 2}/telemetry", {"time": float(t), "readings": anomalous_readings(rng)}
            )
        wait_for(lambda: scored_points() >= 100, 30, "alerts stored before the kill")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()
        with SqlAlertStore(db) as store:
            before = {a.id: a for a in store.list(limit=None)}
        assert 1 <= len(before) <= 2
        for t in range(200, 300):  # published while the service is down: the broker keeps them
            publisher.publish(
                f"{prefix}/pump-{t % 2}/telemetry", {"time": float(t), "readings": anomalous_readings(rng)}
            )
        proc = launch()
        wait_for(lambda: scored_points() >= 300, 60, "every message scored after the restart")
        with SqlAlertStore(db) as store:
            after = store.list(limit=None)
        assert len(after) == 2  # one alert per device: none duplicated by the restart
        assert {a.device for a in after} == {"pump-0", "pump-1"}
        for alert in after:
            if alert.id in before:
                assert alert.start == before[alert.id].start
                assert alert.n_points >= before[alert.id].n_points
            assert alert.n_points == 150
        with SqlAlertStore(db) as store:  # copies redelivered after the kill were committed before it
            assert store.count_dead_letters() == 0, [d.reason for d in store.list_dead_letters()]
    finally:
        publisher.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        if proc.stderr is not None and not proc.stderr.closed:
            proc.stderr.close()


def test_username_and_password_from_a_file(
    tmp_path: Path, store: SqlAlertStore, registry: ModelRegistry, service_missing
) -> None:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd = shutil.which("mosquitto_passwd")
    if not Path(binary).exists() or passwd is None:
        service_missing("mosquitto and mosquitto_passwd are needed (apt-get install mosquitto)")
    secret = f"pw-{uuid.uuid4().hex}"
    passwords = tmp_path / "passwords"
    subprocess.run([passwd, "-c", "-b", str(passwords), "vigil", secret], check=True, capture_output=True)
    passwords.chmod(0o644)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n{user}")
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 10, "mosquitto to listen")
        from vigil.streaming.sources.mqtt import read_password_file

        runtime = Runtime(store, registry)
        good = MqttIngest(
            runtime,
            MqttOptions(
                url=f"mqtt://127.0.0.1:{port}",
                client_id=f"auth-{uuid.uuid4().hex[:6]}",
                username="vigil",
                password=read_password_file(str(secret_file)),
            ),
        )
        bad = MqttIngest(
            runtime,
            MqttOptions(url=f"mqtt://vigil:wrong@127.0.0.1:{port}", client_id=f"auth-{uuid.uuid4().hex[:6]}"),
        )
        assert secret not in repr(good.options)
        assert "wrong" not in repr(bad.options)
        good.start()
        bad.start()
        try:
            assert good.wait_connected(10)
            assert not bad.wait_connected(2)
        finally:
            good.stop()
            bad.stop()
    finally:
        broker.terminate()
        broker.wait(10)
