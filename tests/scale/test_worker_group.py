"""Two ``vigil worker`` processes in one consumer group; one is SIGKILLed a quarter of the way through.

Every message must be scored (or, if the dead worker had already folded it into a stored alert, refused
by the new owner as a duplicate), each device's readings must be handled in order, and the alert store
must hold exactly the alerts that batch scoring of each device's readings gives: one per device, with
its first and last flagged time and its number of flagged points, so no alert is duplicated and no point
is counted twice.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scale_helpers import Message, committed_offsets, make_stream, produce, wait_for

from vigil.alerts import SqlAlertStore, alert_id
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 6
DEVICES = 20
STEPS = 150  # 3,000 messages


def start_worker(name: str, tmp: Path, bootstrap: str, topic: str, registry: Path, options: dict) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "vigil.scale", "worker",
        "--kafka", bootstrap, "--topic", topic, "--group", "scorers", "--client-id", name,
        "--registry", str(registry), "--store", f"sqlite:///{tmp / 'alerts.db'}",
        "--alert-topic", "", "--dead-letter-topic", "",
        "--device-gap", "1000000",  # one alert per faulty device: no alert may close between its points
        "--commit-interval", "0.2", "--decision-log", str(tmp / f"{name}.jsonl"),
    ]  # fmt: skip
    for key, value in options.items():
        command += ["--kafka-option", f"{key}={value}"]
    stderr = (tmp / f"{name}.log").open("wb")
    try:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    finally:
        stderr.close()


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]  # a killed writer may leave half a line


def assigned(path: Path) -> bool:
    return path.is_file() and "assigned partitions" in path.read_text(errors="replace")


def test_sigkill_of_one_worker_loses_and_duplicates_nothing(
    kafka_bootstrap: str,
    kafka_options: dict,
    topic_name: str,
    registry: ModelRegistry,
    fitted: Pipeline,
    tmp_path: Path,
) -> None:
    from vigil.scale.kafka_clients import ensure_topic

    ensure_topic(kafka_bootstrap, topic_name, partitions=PARTITIONS)
    # Faults spread over the stream; several straddle the kill at a quarter of the way.
    bursts = {d: ((d * 13) % (STEPS - 12), 4 + d % 7) for d in range(0, DEVICES, 2)}
    bursts[1] = (0, STEPS)  # a fault that lasts throughout: its alert is open when its worker dies
    stream = make_stream(DEVICES, STEPS, bursts)
    workers = {name: start_worker(name, tmp_path, kafka_bootstrap, topic_name, registry.root, kafka_options)
               for name in ("a", "b")}  # fmt: skip
    placed: dict = {}
    try:
        assert wait_for(lambda: all(assigned(tmp_path / f"{n}.log") for n in workers), 30), "the group never formed"
        # Produce in steps so that the kill lands mid-stream rather than after the workers caught up.
        producer = threading.Thread(
            target=lambda: [
                (placed.update(produce(kafka_bootstrap, topic_name, stream[i : i + 200])), time.sleep(0.1))
                for i in range(0, len(stream), 200)
            ]
        )
        producer.start()
        logs = {name: tmp_path / f"{name}.jsonl" for name in workers}

        def done() -> int:
            return sum(len(read_log(path)) for path in logs.values())

        # Kill the worker that scores dev-01, a quarter of the way through.
        assert wait_for(lambda: done() >= len(stream) // 4, 60)
        victim = next(n for n in workers if any(r["device"] == "dev-01" for r in read_log(logs[n])))
        survivor = next(n for n in workers if n != victim)
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        at_kill = len(read_log(logs[victim]))
        producer.join(60)
        assert len(placed) == len(stream)
        seen = lambda: {(r["partition"], r["offset"]) for p in logs.values() for r in read_log(p)}  # noqa: E731
        assert wait_for(lambda: seen() >= set(placed), 60), f"{len(set(placed) - seen())} messages never handled"
        workers[survivor].send_signal(signal.SIGTERM)
        assert workers[survivor].wait(30) == 0, (tmp_path / f"{survivor}.log").read_text()[-3000:]
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)

    assert 0 < at_kill < len(stream), "the kill did not land mid-stream"
    records = {name: read_log(path) for name, path in logs.items()}
    message_at = {key: message for key, message in placed.items()}
    pipe_flags = dict(zip(stream, fitted.predict(np.array([m.values for m in stream])), strict=True))

    # Every message was handled: scored, or refused as already folded into a stored alert.
    handled: dict[tuple[int, int], list[dict]] = {}
    for name, rows in records.items():
        for row in rows:
            handled.setdefault((row["partition"], row["offset"]), []).append({**row, "worker": name})
    assert set(handled) == set(placed)
    for key, rows in handled.items():
        message: Message = message_at[key]
        for row in rows:
            assert row["device"] == message.device
            if row["outcome"] == "scored":
                assert row["anomaly"] == bool(pipe_flags[message])
            else:
                assert row["outcome"] in ("duplicate", "out_of_order"), row

    # Order: each worker handled each partition's offsets, and each device's readings, in order.
    for name, rows in records.items():
        last_offset: dict[int, int] = {}
        last_time: dict[str, str] = {}
        for row in rows:
            assert row["offset"] > last_offset.get(row["partition"], -1), (name, row)
            last_offset[row["partition"]] = row["offset"]
            if row["outcome"] == "scored":
                assert row["time"] > last_time.get(row["device"], ""), (name, row)
                last_time[row["device"]] = row["time"]
    # Only the killed worker's uncommitted tail was handled twice, and only on its partitions.
    twice = [key for key, rows in handled.items() if len({r["worker"] for r in rows}) > 1]
    victim_partitions = {r["partition"] for r in records[victim]}
    assert {p for p, _ in twice} <= victim_partitions

    # The alerts are exactly those of batch scoring: one per faulty device, every flagged point once.
    expected: dict[str, tuple[float, float, int]] = {}
    for message in stream:
        if pipe_flags[message]:
            first, _, n = expected.get(message.device, (message.time, message.time, 0))
            expected[message.device] = (first, message.time, n + 1)
    with SqlAlertStore(tmp_path / "alerts.db") as store:
        alerts = store.list(limit=None)
    found = [(a.device, a.start.timestamp(), a.end.timestamp(), a.n_points) for a in alerts]
    assert sorted(found) == sorted((d, *v) for d, v in expected.items())
    assert all(a.id == alert_id(a.device, fitted.version_, a.start) for a in alerts)
    ends: dict[int, int] = {}
    for partition, offset in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    committed = committed_offsets(kafka_bootstrap, "scorers", topic_name, PARTITIONS)
    assert {p: o for p, o in committed.items() if p in ends} == ends
    print(f"killed {victim} after {at_kill} messages; {len(twice)} handled twice; alerts {len(alerts)}")
    assert [a.n_points for a in alerts if a.device == "dev-01"] == [STEPS]  # one alert, grown by both workers
    survivor_log = (tmp_path / f"{survivor}.log").read_text(errors="replace")
    assert "resumed open alert" in survivor_log, "the new owner should have warmed the devices it took over"
