"""Asset incidents in the service: telemetry and camera (or network) alerts of one asset become one incident,
served by /incidents with their evidence and published to webhooks and MQTT."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import READ_TOKEN, WRITE_TOKEN, anomalous_readings, payload, record

from vigil.alerts import Alert, AlertEvent, AlertSink, AssetMap, IncidentCorrelator, SqlAlertStore, alert_id
from vigil.service.server import Service, ServiceConfig
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime, RuntimeConfig

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # polling another thread's effect, with a deadline
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
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


def network_alert(device: str, start: datetime, seconds: float = 5.0) -> Alert:
    return Alert(
        id=alert_id(device, "kitnet-1", start),
        device=device,
        start=start,
        end=start + timedelta(seconds=seconds),
        peak_time=start,
        score=9.0,
        threshold=1.0,
        model_version="kitnet-1",
        top_features=[("HH_jit_L0.1_mean", 0.7)],
        incident_type="port_scan",
        status="closed",
        explanation=f"10.0.0.66 probed 1024 ports of {device}",
        modality="network",
    )


def _png(image) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_service_turns_an_assets_telemetry_and_camera_alerts_into_one_incident(
    tmp_path: Path, registry: ModelRegistry, camera_model: Path, receiver
) -> None:
    from vigil.vision.synthetic import make_synthetic_set

    url, received = receiver
    tokens = tmp_path / "tokens"
    tokens.write_text(f"write {WRITE_TOKEN}\nread {READ_TOKEN}\n")
    assets = tmp_path / "assets.json"
    assets.write_text(json.dumps({"devices": {"cam-7": "pump2"}}))
    config = ServiceConfig(
        registry=registry.root,
        store=f"sqlite:///{tmp_path / 'alerts.db'}",
        token_file=tokens,
        camera_model=camera_model,
        webhooks=[url],
        incident_window=120.0,
        assets=assets,
    )
    rng = np.random.default_rng(0)
    now = time.time()
    with Service(config) as service, TestClient(service.app) as client:
        records = [record("pump2", now - 20 + t, anomalous_readings(rng)) for t in range(5)]
        assert client.post("/ingest", content=payload(*records), headers=WRITE).status_code == 200
        # telemetry alone is an alert, not an incident
        assert client.get("/incidents", headers=READ).json() == {"total": 0, "incidents": []}
        frame = make_synthetic_set(0, 1, size=48, kinds=("hole",), seed=7).images[0]
        seen = client.post("/ingest/image/cam-7?name=part-3.png", content=_png(frame), headers=WRITE).json()
        assert seen["anomaly"] is True
        # another asset's defect at the same time stays an alert of its own
        other = client.post("/ingest/image/cam-9?name=part-4.png", content=_png(frame), headers=WRITE).json()
        assert other["anomaly"] is True

        listing = client.get("/incidents", headers=READ).json()
        assert listing["total"] == 1
        (incident,) = listing["incidents"]
        assert incident["asset"] == "pump2" and incident["status"] == "open"
        assert incident["modalities"] == ["camera", "telemetry"]
        assert incident["devices"] == ["cam-7", "pump2"]
        assert [(a["modality"], a["device"]) for a in incident["alerts"]] == [
            ("telemetry", "pump2"),
            ("camera", "cam-7"),
        ]
        assert "part-3.png" in incident["alerts"][1]["explanation"]
        assert "flow_m3h" in incident["alerts"][0]["explanation"]
        assert incident["missing_alerts"] == []

        detail = client.get(f"/incidents/{incident['id']}", headers=READ).json()
        assert [a["id"] for a in detail["alerts"]] == incident["alert_ids"]
        assert detail["alerts"][0]["top_features"][0][0] == "flow_m3h"  # the full evidence, features included
        assert detail["alerts"][1]["incident_type"] == "visual_defect"
        assert client.get("/incidents?asset=pump3", headers=READ).json()["total"] == 0
        assert client.get("/incidents/nope", headers=READ).status_code == 404
        bad = client.get("/incidents?status=confirmed", headers=READ)
        assert bad.status_code == 422 and "open, closed, merged" in bad.text
        assert client.get("/incidents").status_code == 401  # read scope, like /alerts

        wait_for(lambda: any(b["event"] == "incident_opened" for b in received), 10, "the incident webhook")
        opened = next(b for b in received if b["event"] == "incident_opened")
        assert opened["incident"]["id"] == incident["id"]
        assert opened["incident"]["modalities"] == ["camera", "telemetry"]

    # a restart takes the open incident back: a further alert of the asset grows it instead of opening another
    with Service(config) as service:
        (resumed,) = service.incidents.open_incidents()
        assert resumed.id == incident["id"]
        start = datetime.fromtimestamp(now - 10, tz=UTC)
        assert service.runtime.sink.deliver([AlertEvent("opened", network_alert("pump2/plc", start))])
        stored = service.store.get_incident(incident["id"])
        assert stored is not None and stored.modalities == ["camera", "network", "telemetry"]
        assert service.store.count_incidents() == 1


@pytest.mark.mqtt
def test_incident_events_are_published_on_the_mqtt_incident_topic(
    store: SqlAlertStore, registry: ModelRegistry, broker: str
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from vigil.streaming.sources.mqtt import MqttIngest, MqttOptions

    prefix = f"vigiltest-{uuid.uuid4().hex[:10]}"
    received: list[dict] = []
    subscribed = threading.Event()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-listener")
    listener.on_connect = lambda c, u, f, r, p: c.subscribe(f"{prefix}/incidents", qos=1)
    listener.on_subscribe = lambda *args: subscribed.set()
    listener.on_message = lambda c, u, m: received.append(json.loads(m.payload))
    listener.connect("127.0.0.1", 1883)
    listener.loop_start()
    assert subscribed.wait(10)
    correlator = IncidentCorrelator(AssetMap({"10.0.0.12": "pump2"}), window_seconds=60)
    runtime = Runtime(store, registry, config=RuntimeConfig(device_gap_seconds=5.0))
    runtime.sink.correlator = correlator
    options = MqttOptions(
        url=broker, topic=f"{prefix}/+/telemetry", client_id=f"{prefix}-svc", incident_topic=f"{prefix}/incidents"
    )
    ingest = MqttIngest(runtime, options)
    runtime.sinks.append(ingest)
    capture_sink = AlertSink(store, [ingest], correlator=correlator)  # the capture monitor's path
    rng = np.random.default_rng(0)
    try:
        runtime.start()
        ingest.start()
        assert ingest.wait_connected(10)
        records = [record("pump2", 1_700_000_000.0 + t, anomalous_readings(rng)) for t in range(5)]
        runtime.submit(payload(*records), "test").result(10)
        scan = network_alert("10.0.0.12", datetime.fromtimestamp(1_700_000_010.0, tz=UTC))
        assert capture_sink.deliver([AlertEvent("opened", scan)])
        wait_for(lambda: len(received) >= 1, 10, "an incident event on the MQTT topic")
        assert received[0]["event"] == "opened"
        assert received[0]["incident"]["asset"] == "pump2"
        assert received[0]["incident"]["modalities"] == ["network", "telemetry"]
        assert store.get_incident(received[0]["incident"]["id"]) is not None
    finally:
        ingest.stop()
        runtime.stop()
        listener.disconnect()
        listener.loop_stop()
