"""A plant file's ``[sinks.kafka]``: the service publishes alert events and dead letters to Kafka topics."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from scale_helpers import SENSORS, WEIGHTS, free_port

from vigil.pipeline import Pipeline
from vigil.plant import load_plant
from vigil.plant.deploy import apply_plant
from vigil.service.server import Service, ServiceConfig
from vigil.streaming.model_registry import ModelRegistry

pytestmark = pytest.mark.kafka


def _plant(tmp_path: Path, bootstrap: str, alerts: str, dead: str) -> Path:
    sensors = "\n".join(f"{name} = {{}}" for name in SENSORS)
    nodes = ", ".join(f'{name} = "ns=2;s=P1.{name}"' for name in SENSORS)
    text = f"""\
[service]
registry = "registry"
store = "sqlite:///{tmp_path / "alerts.db"}"

[asset_types.pump.sensors]
{sensors}

[sources.line]
kind = "opcua"
endpoint = "opc.tcp://127.0.0.1:{free_port()}/nobody/"

[assets.pump-1]
type = "pump"
source = "line"
map = {{ {nodes} }}

[sinks.kafka]
bootstrap = "{bootstrap}"
alert_topic = "{alerts}"
dead_letter_topic = "{dead}"
options = {{ "message.timeout.ms" = 10000 }}
"""
    path = tmp_path / "plant.toml"
    path.write_text(text)
    return path


def _read(bootstrap: str, topic: str, kafka_options: dict[str, str], wanted: int) -> list[dict]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            **kafka_options,
        }
    )
    consumer.subscribe([topic])
    found: list[dict] = []
    try:
        for _ in range(300):
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                found.append(json.loads(message.value()))
                if len(found) >= wanted:
                    break
    finally:
        consumer.close()
    return found


def test_a_plant_files_kafka_sink_publishes_alert_events_and_dead_letters(
    tmp_path: Path, kafka_bootstrap: str, kafka_options: dict[str, str], fitted: Pipeline
) -> None:
    ModelRegistry(tmp_path / "registry").add("pump", fitted, activate=True)
    alerts, dead = f"alerts-{uuid.uuid4().hex[:8]}", f"dead-{uuid.uuid4().hex[:8]}"
    plant = load_plant(_plant(tmp_path, kafka_bootstrap, alerts, dead))
    config = apply_plant(plant, ServiceConfig(registry=tmp_path / "registry"))
    assert config.kafka_sink["kafka_options"] == {"message.timeout.ms": "10000"}
    rng = np.random.default_rng(0)
    values = rng.normal(size=(10, 1)) * WEIGHTS[None, :] + 0.05 * rng.normal(size=(10, len(SENSORS)))
    values[5:, 0] += 8.0  # the flow sensor breaks away from the load the others follow
    readings = [
        {"device": "pump-1", "time": 1_750_000_000.0 + t, "readings": dict(zip(SENSORS, row, strict=True))}
        for t, row in enumerate(values.tolist())
    ]
    with Service(config) as service:
        service.runtime.submit(json.dumps(readings).encode(), "test").result(timeout=30)
        service.runtime.submit(b"{not json", "test").result(timeout=30)
    events = _read(kafka_bootstrap, alerts, kafka_options, wanted=1)
    assert events and events[0]["event"] == "opened"
    assert events[0]["alert"]["device"] == "pump-1"
    letters = _read(kafka_bootstrap, dead, kafka_options, wanted=1)
    assert letters and "json" in json.dumps(letters[0]).lower()
