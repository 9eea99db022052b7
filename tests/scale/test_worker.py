"""The Kafka worker in this process: scoring, dead letters, commit after store, idempotent replay."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from scale_helpers import Message, committed_offsets, make_stream, produce, wait_for

from vigil.alerts import SqlAlertStore, alert_id
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Decision, Runtime, RuntimeConfig

pytestmark = pytest.mark.kafka

PARTITIONS = 4


@contextmanager
def running_worker(
    store, registry: ModelRegistry, bootstrap: str, topic: str, group: str, options: dict, outcomes: dict
) -> Iterator[object]:
    from vigil.scale.worker import KafkaWorker, WorkerConfig

    def record(partition, offset, items):
        outcomes.setdefault((partition, offset), []).extend(items)

    runtime = Runtime(store, registry, config=RuntimeConfig(device_gap_seconds=30.0))
    config = WorkerConfig(bootstrap, topic, group, commit_interval=0.1, kafka_options=options)
    worker = KafkaWorker(runtime, config, on_outcomes=record)
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:  # surfaced below, in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=run, name="test-worker")
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(30)
        runtime.stop()
    assert not thread.is_alive(), "the worker did not stop within 30 s"
    assert not failures, failures


def end_offsets(placed: dict) -> dict[int, int]:
    ends: dict[int, int] = {}
    for partition, offset in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


def expected_alerts(pipe: Pipeline, stream: list[Message]) -> dict[str, tuple[float, float, int]]:
    """Per device (first flagged time, last flagged time, flagged points), from batch scoring."""
    X = np.array([m.values for m in stream])
    flags = pipe.predict(X)
    out: dict[str, tuple[float, float, int]] = {}
    for message, flag in zip(stream, flags, strict=True):
        if flag:
            first, _, n = out.get(message.device, (message.time, message.time, 0))
            out[message.device] = (first, message.time, n + 1)
    return out


def test_worker_scores_dead_letters_and_commits_everything(
    kafka_bootstrap: str,
    kafka_options: dict,
    topic_name: str,
    registry: ModelRegistry,
    fitted: Pipeline,
    tmp_path: Path,
) -> None:
    from vigil.scale.kafka_clients import ensure_topic

    assert ensure_topic(kafka_bootstrap, topic_name, partitions=PARTITIONS) == PARTITIONS
    stream = make_stream(20, 30, bursts={3: (10, 5), 7: (20, 4)})
    unkeyed = b'{"device": "dev-00", "time": 1, "readings": {"flow": 1.0}}'
    placed = produce(kafka_bootstrap, topic_name, stream, raw=[(None, unkeyed), (b"dev-01", b"{not json")])
    group = f"g-{uuid.uuid4().hex[:8]}"
    outcomes: dict = {}
    with SqlAlertStore(tmp_path / "alerts.db") as store:
        with running_worker(store, registry, kafka_bootstrap, topic_name, group, kafka_options, outcomes):
            assert wait_for(lambda: len(outcomes) == len(placed), 30), f"{len(outcomes)} of {len(placed)} done"
        alerts = store.list(limit=None)
        letters = store.list_dead_letters(limit=None)

    assert committed_offsets(kafka_bootstrap, group, topic_name, PARTITIONS) == end_offsets(placed)
    kinds = {}
    for key, items in outcomes.items():
        assert len(items) == 1, (key, items)
        kinds[key] = items[0] if isinstance(items[0], Decision) else items[0].kind
    by_value = {v: k for k, v in placed.items() if isinstance(v, bytes)}
    assert kinds[by_value[unkeyed]] == "invalid_record"
    assert kinds[by_value[b"{not json"]] == "invalid_json"
    assert sorted(letter.kind for letter in letters) == ["invalid_json", "invalid_record"]
    flags = dict(zip(stream, fitted.predict(np.array([m.values for m in stream])), strict=True))
    for key, message in placed.items():
        if isinstance(message, Message):
            decision = kinds[key]
            assert isinstance(decision, Decision) and decision.device == message.device
            assert decision.anomaly == bool(flags[message]), message
    expected = expected_alerts(fitted, stream)
    assert set(expected) >= {"dev-03", "dev-07"}
    assert {a.device: (a.start.timestamp(), a.end.timestamp(), a.n_points) for a in alerts} == expected
    assert all(a.id == alert_id(a.device, fitted.version_, a.start) for a in alerts)


def test_replaying_the_topic_in_a_new_group_changes_no_alert(
    kafka_bootstrap: str, kafka_options: dict, topic_name: str, registry: ModelRegistry, tmp_path: Path
) -> None:
    from vigil.scale.kafka_clients import ensure_topic

    ensure_topic(kafka_bootstrap, topic_name, partitions=PARTITIONS)
    # dev-05's fault lasts to the end, so its alert is still open when the replay starts.
    stream = make_stream(8, 40, bursts={2: (2, 5), 5: (30, 10)})
    placed = produce(kafka_bootstrap, topic_name, stream)
    with SqlAlertStore(tmp_path / "alerts.db") as store:
        first: dict = {}
        with running_worker(store, registry, kafka_bootstrap, topic_name, "first", kafka_options, first):
            assert wait_for(lambda: len(first) == len(placed), 30)
        before = {a.id: a.to_dict() for a in store.list(limit=None)}
        again: dict = {}
        with running_worker(store, registry, kafka_bootstrap, topic_name, "replay", kafka_options, again) as worker:
            assert wait_for(lambda: len(again) == len(placed), 30)
        after = {a.id: a.to_dict() for a in store.list(limit=None)}

    assert {a["device"] for a in before.values()} == {"dev-02", "dev-05"}
    assert [a["status"] for a in before.values() if a["device"] == "dev-05"] == ["open"]
    assert after == before
    assert [a["status"] for a in before.values() if a["device"] == "dev-02"] == ["closed"]
    assert worker.stats.warmed == 1  # dev-05's open alert was resumed, not reopened
    replayed = [item for items in again.values() for item in items]
    duplicates = [o for o in replayed if not isinstance(o, Decision)]
    assert {o.kind for o in duplicates} <= {"duplicate", "out_of_order"}
    assert {o.device for o in duplicates} == {"dev-05"}


class FlakyStore:
    """An alert store that refuses writes while ``down`` is set, like a database that went away."""

    def __init__(self, store: SqlAlertStore) -> None:
        self.store = store
        self.down = threading.Event()
        self.refused = 0

    def upsert_many(self, alerts, dead_letters=()):
        if self.down.is_set():
            self.refused += 1
            msg = "the database is unreachable"
            raise ConnectionError(msg)
        return self.store.upsert_many(alerts, dead_letters)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def test_offsets_wait_for_the_store(
    kafka_bootstrap: str, kafka_options: dict, topic_name: str, registry: ModelRegistry, tmp_path: Path
) -> None:
    from vigil.scale.kafka_clients import ensure_topic

    ensure_topic(kafka_bootstrap, topic_name, partitions=1)
    stream = make_stream(1, 20, bursts={0: (10, 3)})
    group = "g-store"
    outcomes: dict = {}
    with SqlAlertStore(tmp_path / "alerts.db") as real:
        store = FlakyStore(real)
        with running_worker(store, registry, kafka_bootstrap, topic_name, group, kafka_options, outcomes):
            placed = produce(kafka_bootstrap, topic_name, stream[:10])  # normal readings: nothing to store
            assert wait_for(lambda: committed_offsets(kafka_bootstrap, group, topic_name, 1) == {0: 10}, 30)
            store.down.set()
            placed.update(produce(kafka_bootstrap, topic_name, stream[10:]))
            assert wait_for(lambda: store.refused >= 2, 30)
            # The fault's batch is scored but cannot be stored: its offsets must not be committed.
            assert committed_offsets(kafka_bootstrap, group, topic_name, 1) == {0: 10}
            assert len(outcomes) == 10
            store.down.clear()
            assert wait_for(lambda: len(outcomes) == len(placed), 30)
        assert committed_offsets(kafka_bootstrap, group, topic_name, 1) == {0: len(placed)}
        assert [a.n_points for a in real.list(limit=None)] == [3]
