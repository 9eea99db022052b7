"""Hostile payloads mixed with valid readings, through the real HTTP app and a real Mosquitto.

The invariant: every valid reading is scored exactly once, every hostile payload is dead-lettered exactly
once, the service keeps answering, and the queue drains. Bounded in examples and time (a few seconds each).
"""

from __future__ import annotations

import json
import random
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from vigil.hostile import HOSTILE_KINDS, hostile_payload, valid_payload
from vigil.service.app import create_app
from vigil.service.auth import TokenAuth
from vigil.streaming.runtime import Runtime
from vigil.streaming.sources.mqtt import MqttIngest, MqttOptions

TOKEN = "fuzz-write-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
SENSORS = ["temp_c", "pressure_bar", "flow_m3h", "current_a"]  # the fixture model's sensors (conftest.py)
CLOCK = [0]  # the readings' time keeps growing across examples, which share one runtime
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

#: Arbitrary JSON, nested a little: what a confused device might send instead of a record.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def hostile_mix(seed: int, n_valid: int, n_hostile: int, *, counter: list[int]) -> list[tuple[bytes, bool]]:
    """Valid readings of 10 devices in time order and hostile payloads of their own devices, shuffled."""
    rng = random.Random(seed)
    items = []
    for i in range(n_valid):
        counter[0] += 1
        items.append((valid_payload(f"v-{i % 10}", float(counter[0]), SENSORS, rng), True))
    kinds = sorted(HOSTILE_KINDS)
    for i in range(n_hostile):
        counter[0] += 1
        device = f"h-{seed}-{i}"
        items.append((hostile_payload(rng.choice(kinds), device, float(counter[0]), SENSORS, rng), False))
    valid = [item for item in items if item[1]]
    hostile = [item for item in items if not item[1]]
    rng.shuffle(hostile)
    # Keep the valid readings in time order (each device's clock only moves forward); interleave the rest.
    merged, v = [], iter(valid)
    for item in hostile:
        merged.append(item)
        merged.extend(next(v, None) for _ in range(rng.randrange(0, 3)))
    merged.extend(v)
    return [item for item in merged if item is not None]


def counts(runtime: Runtime) -> tuple[int, int]:
    runtime.drain()
    snap = runtime.metrics.snapshot()
    return sum(snap["scored"].values()), runtime.store.count_dead_letters()


@given(seed=st.integers(0, 10**6), n_valid=st.integers(1, 20), n_hostile=st.integers(1, 20))
@FUZZ
def test_http_scores_every_valid_reading_once_and_dead_letters_every_hostile_one_once(
    runtime: Runtime, seed: int, n_valid: int, n_hostile: int
) -> None:
    before = counts(runtime)
    items = hostile_mix(seed, n_valid, n_hostile, counter=CLOCK)
    with TestClient(create_app(runtime, auth=TokenAuth({TOKEN: "write"}))) as client:
        for body, valid in items:
            response = client.post("/ingest", content=body, headers=HEADERS)
            assert response.status_code == (200 if valid else 422), (response.status_code, body[:200])
        assert client.get("/health").json()["status"] in ("ok", "degraded")
    scored, dead = counts(runtime)
    assert (scored - before[0], dead - before[1]) == (n_valid, n_hostile)
    assert runtime.queue_depth == 0


@given(document=json_values)
@FUZZ
def test_arbitrary_json_is_one_dead_letter_or_a_scored_record(runtime: Runtime, document) -> None:
    before = counts(runtime)
    body = json.dumps(document).encode()
    outcomes = runtime.submit(body, "fuzz").result(timeout=10)
    scored, dead = counts(runtime)
    assert (scored - before[0]) + (dead - before[1]) == len(outcomes) >= 1


@given(body=st.binary(max_size=300))
@FUZZ
def test_arbitrary_bytes_never_stop_the_service(runtime: Runtime, body: bytes) -> None:
    with TestClient(create_app(runtime, auth=TokenAuth({TOKEN: "write"}))) as client:
        response = client.post("/ingest", content=body, headers=HEADERS)
        assert response.status_code in (200, 422), response.text
    assert runtime.running


@pytest.mark.mqtt
def test_mqtt_scores_every_valid_reading_once_and_acknowledges_every_hostile_one(runtime: Runtime, broker) -> None:
    prefix = f"vigilfuzz-{uuid.uuid4().hex[:8]}"
    options = MqttOptions(url=broker, topic=f"{prefix}/+/telemetry", client_id=f"{prefix}-svc", session_expiry=30,
                          alert_topic=None, dead_letter_topic=None)  # fmt: skip
    ingest = MqttIngest(runtime, options).start()
    assert ingest.wait_connected(10)
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub")
    publisher.max_inflight_messages_set(500)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    try:
        rng = random.Random(7)
        n_valid = n_hostile = 0
        clock = 0.0
        kinds = sorted(HOSTILE_KINDS)
        for i in range(1200):
            clock += 1.0
            if rng.random() < 0.5:
                device = f"v-{i % 10}"
                body, n_valid = valid_payload(device, clock, SENSORS, rng), n_valid + 1
            else:
                device = f"h-{i}"
                body, n_hostile = hostile_payload(rng.choice(kinds), device, clock, SENSORS, rng), n_hostile + 1
            publisher.publish(f"{prefix}/{device}/telemetry", body, qos=1)
        deadline = time.monotonic() + 40
        while counts(runtime) != (n_valid, n_hostile) and time.monotonic() < deadline:
            time.sleep(0.1)  # the broker delivers on its own schedule: poll with a deadline
        assert counts(runtime) == (n_valid, n_hostile)
        assert runtime.queue_depth == 0 and runtime.running
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        ingest.stop()
