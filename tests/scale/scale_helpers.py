"""Helpers of the scale-out tests: keyed telemetry streams, producing, committed offsets."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

SENSORS = ["flow", "pressure", "temp", "current"]
WEIGHTS = np.array([1.0, 0.8, -0.5, 1.2])
START = 1_750_000_000.0


@dataclass(frozen=True)
class Message:
    device: str
    time: float
    values: tuple[float, ...]
    anomalous: bool

    def body(self) -> bytes:
        readings = dict(zip(SENSORS, self.values, strict=True))
        return json.dumps({"device": self.device, "time": self.time, "readings": readings}).encode()


def training_frame(n: int = 600, seed: int = 0):
    """Four correlated sensors driven by one load: a PCA with one component models them."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    load = rng.normal(size=(n, 1))
    values = load @ WEIGHTS[None, :] + 0.05 * rng.normal(size=(n, len(SENSORS)))
    return pd.DataFrame(values, columns=SENSORS)


def make_stream(n_devices: int, n_steps: int, bursts: dict[int, tuple[int, int]], seed: int = 3) -> list[Message]:
    """``n_steps`` readings of ``n_devices`` devices, 1 s apart, interleaved in time order.

    ``bursts`` maps a device index to (first step, length) of a sustained fault: the temperature sensor
    breaks from the load (+3), which the PCA model flags at every point of the burst.
    """
    rng = np.random.default_rng(seed)
    out = []
    for step in range(n_steps):
        load = rng.normal(size=n_devices)
        noise = 0.05 * rng.normal(size=(n_devices, len(SENSORS)))
        for d in range(n_devices):
            values = load[d] * WEIGHTS + noise[d]
            first, length = bursts.get(d, (-1, 0))
            anomalous = first <= step < first + length
            if anomalous:
                values[2] += 3.0
            out.append(Message(f"dev-{d:02d}", START + step, tuple(round(float(v), 6) for v in values), anomalous))
    return out


def produce(bootstrap: str, topic: str, messages: list[Message], *, raw: list[tuple[bytes | None, bytes]] = ()) -> dict:
    """Send keyed messages (and ``raw`` (key, value) pairs after them); return {(partition, offset): message}."""
    from confluent_kafka import Producer

    from vigil.scale.kafka_clients import producer_config

    placed: dict[tuple[int, int], Message | bytes] = {}
    errors = []

    def report(item):
        def callback(error, record):
            if error is not None:
                errors.append(error)
            else:
                placed[(record.partition(), record.offset())] = item

        return callback

    producer = Producer(producer_config(bootstrap, overrides={"linger.ms": 20}))
    for message in messages:
        producer.produce(topic, key=message.device.encode(), value=message.body(), on_delivery=report(message))
        producer.poll(0)
    for key, value in raw:
        producer.produce(topic, key=key, value=value, on_delivery=report(value))
    remaining = producer.flush(30)
    assert remaining == 0 and not errors, (remaining, errors)
    return placed


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found}


def wait_for(condition, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return bool(condition())
        time.sleep(interval)


def listening(host: str, port: int) -> bool:
    """True when something listens on ``host:port``."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
