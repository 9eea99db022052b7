"""A scorer worker in a Kafka consumer group: telemetry keyed by device in, alerts stored, offsets committed.

Run several ``vigil worker`` processes with the same ``--group``: Kafka spreads the topic's partitions over
them, and since producers key every message by device id (the bridge does, with the partitioner JVM
producers use), each device's readings reach one worker, in order, and its state stays in that worker.
Each worker wraps the same :class:`~vigil.streaming.runtime.Runtime` as the single-process service, so
validation, dead letters, micro-batching, scoring, alerting and the store are the same code.

Delivery is at least once, and alerts are effectively once:

1. a consumed message is handed to the runtime with the message key as the device (a record of another
   device in it is refused, since the key decided where it was routed);
2. the runtime scores it in a micro-batch and commits the batch's alerts and dead letters to the store;
3. only then is the message reported done (:class:`~vigil.scale.offsets.OffsetLedger`), and offsets
   are committed up to the first message not done, every ``commit_interval`` seconds and before a
   partition is given up.

A worker that dies between 2 and 3 leaves messages whose effects are stored but whose offsets are not
committed; their new owner reads them again. Alert ids are a hash of device, model version and start
time, so re-scoring cannot create a second alert; and the new owner resumes the stored open alert of a
device before its first message (``Runtime.resume_alert``), so readings already folded into that alert
are refused as duplicates instead of being counted twice.

Rebalancing uses the cooperative-sticky assignor by default: only partitions that move are revoked.
On revocation the worker drains the runtime (everything consumed is stored), commits, then releases the
devices of those partitions. On assignment it takes a snapshot of the open alerts in the store and
re-reads the per-device thresholds; each newly seen device is warmed from that snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from vigil.alerts import Alert
from vigil.errors import InvalidInputError, VigilError
from vigil.scale._optional import require
from vigil.scale.kafka_clients import consumer_config
from vigil.scale.offsets import OffsetLedger
from vigil.streaming.messages import Rejection
from vigil.streaming.runtime import Outcome, Runtime

__all__ = ["KafkaWorker", "WorkerConfig", "WorkerStats"]

log = logging.getLogger(__name__)

#: Called with (partition, offset, outcomes) once a message's outcomes are stored, before its offset
#: may be committed.
OutcomeHook = Callable[[int, int, Sequence[Outcome]], None]


@dataclass(frozen=True)
class WorkerConfig:
    """Where a worker reads from and how it commits.

    Parameters
    ----------
    bootstrap : str
        Kafka bootstrap servers, ``HOST:PORT[,HOST:PORT...]``.
    topic : str
        The telemetry topic (messages keyed by device id, values as in :mod:`vigil.streaming.messages`).
    group : str
        The consumer group shared by the workers.
    client_id : str, optional
        Names this worker in the broker's logs and group listings.
    max_poll_records : int
        Most messages taken from the consumer at once.
    poll_timeout : float
        Seconds one poll waits for messages.
    commit_interval : float
        Seconds between offset commits while consuming (commits also happen before partitions are
        given up and on shutdown).
    drain_timeout : float
        Seconds a rebalance or shutdown waits for the runtime to store what it was given.
    kafka_options : mapping
        Further librdkafka consumer properties (security, timeouts); they win over Vigil's defaults.
    """

    bootstrap: str
    topic: str
    group: str
    client_id: str | None = None
    max_poll_records: int = 1000
    poll_timeout: float = 0.1
    commit_interval: float = 0.5
    drain_timeout: float = 60.0
    kafka_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class WorkerStats:
    """Counters of one worker (read them from any thread; they are only ever incremented)."""

    consumed: int = 0
    unkeyed: int = 0
    commits: int = 0
    rebalances: int = 0
    warmed: int = 0
    released: int = 0
    assigned: frozenset[int] = frozenset()


class KafkaWorker:
    """Consume a keyed telemetry topic in a consumer group and feed a runtime; commit after storing.

    Parameters
    ----------
    runtime : Runtime
        Scores and stores; this worker starts it if it is not running.
    config : WorkerConfig
    on_outcomes : callable, optional
        ``on_outcomes(partition, offset, outcomes)`` is called from the runtime's thread once a message's
        decisions and dead letters are stored, before its offset can be committed (an audit log, say).
    """

    def __init__(self, runtime: Runtime, config: WorkerConfig, *, on_outcomes: OutcomeHook | None = None) -> None:
        self._kafka = require("confluent_kafka", purpose="Kafka workers")
        if not isinstance(config.topic, str) or not config.topic:
            msg = f"the telemetry topic must be a non-empty string, got {config.topic!r}"
            raise InvalidInputError(msg)
        self.runtime = runtime
        self.config = config
        self.on_outcomes = on_outcomes
        self.stats = WorkerStats()
        self._ledger = OffsetLedger()
        self._owner: dict[str, int] = {}  # device -> the partition its messages arrive on
        self._to_warm: dict[str, Alert] = {}
        self._assigned: set[int] = set()
        self._consumer: Any = None
        self._source = f"kafka:{config.topic}"
        # A runtime resumes every open alert of the store when it is built; a worker owns no device until
        # Kafka assigns it partitions, and must not close (or grow) alerts of devices another worker owns.
        self._on_runtime(lambda: runtime.release_devices(runtime.held_devices()))

    # -- lifecycle -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, until: Callable[[], bool] | None = None) -> WorkerStats:
        """Consume until ``stop`` is set (or ``until()`` is true); then store, commit and leave the group."""
        stop = stop if stop is not None else threading.Event()
        if not self.runtime.running:
            self.runtime.start()
        settings = consumer_config(
            self.config.bootstrap,
            self.config.group,
            client_id=self.config.client_id,
            overrides={
                "partition.assignment.strategy": "cooperative-sticky",
                "on_commit": self._on_commit,
                "error_cb": self._on_error,
                **self.config.kafka_options,
            },
        )
        self._consumer = self._kafka.Consumer(settings, logger=logging.getLogger("vigil.scale.kafka"))
        try:
            self._consumer.subscribe(
                [self.config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            last_commit = time.monotonic()
            while not stop.is_set() and not (until is not None and until()):
                messages = self._consumer.consume(self.config.max_poll_records, self.config.poll_timeout)
                for message in messages:
                    self._handle(message)
                now = time.monotonic()
                if now - last_commit >= self.config.commit_interval:
                    last_commit = now
                    self._commit(asynchronous=True)
        finally:
            self._shutdown()
        return self.stats

    def _shutdown(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            self._drain()
            self._commit(asynchronous=False, consumer=consumer)
        finally:
            consumer.close()  # leaves the group, so the partitions move at once instead of after a timeout

    # -- messages ------------------------------------------------------------------------------------

    def _handle(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                msg = f"the Kafka consumer failed: {error}"
                raise VigilError(msg)
            log.warning("Kafka consumer: %s", error)
            return
        partition, offset = message.partition(), message.offset()
        value = message.value() or b""
        key = message.key()
        device: str | None = None
        if key:
            try:
                device = key.decode("utf-8")
            except UnicodeDecodeError:
                device = None
        self.stats.consumed += 1
        self._ledger.submitted(partition, offset)
        if device is None:
            self.stats.unkeyed += 1
            where = f"{self.config.topic}/{partition}@{offset}"
            reason = f"Kafka message {where} has no UTF-8 device key: producers must key messages by device id"
            future = self.runtime.reject(Rejection("invalid_record", reason), self._source, value)
            future.add_done_callback(lambda f: self._finished(partition, offset, f.result()))
            return
        if self._owner.get(device) != partition:
            self._adopt(device, partition)
        done = partial(self._finished, partition, offset)
        self.runtime.enqueue(value, self._source, device_hint=device, on_done=done, timeout=None)

    def _finished(self, partition: int, offset: int, outcomes: Sequence[Outcome]) -> None:
        if self.on_outcomes is not None:
            try:
                self.on_outcomes(partition, offset, outcomes)
            except Exception:
                log.exception("the outcome hook failed for %s/%d@%d", self.config.topic, partition, offset)
        self._ledger.done(partition, offset)

    def _adopt(self, device: str, partition: int) -> None:
        known = device in self._owner
        self._owner[device] = partition
        alert = self._to_warm.pop(device, None)
        if known or alert is None:
            return
        if self.runtime.call(lambda: self.runtime.resume_alert(alert)):
            self.stats.warmed += 1
            log.info("device %s: resumed open alert %s from the store", device, alert.id)

    # -- offsets -------------------------------------------------------------------------------------

    def _commit(self, *, asynchronous: bool, consumer: Any = None, only: set[int] | None = None) -> None:
        consumer = consumer if consumer is not None else self._consumer
        offsets = {
            p: o for p, o in self._ledger.committable().items() if p in self._assigned and (only is None or p in only)
        }
        if consumer is None or not offsets:
            return
        tps = [self._kafka.TopicPartition(self.config.topic, p, o) for p, o in sorted(offsets.items())]
        try:
            result = consumer.commit(offsets=tps, asynchronous=asynchronous)
        except self._kafka.KafkaException as exc:
            log.warning("committing offsets %s failed: %s; they will be committed later", offsets, exc)
            return
        self.stats.commits += 1
        if not asynchronous:
            self._ledger.mark_committed({tp.partition: tp.offset for tp in result or tps if tp.error is None})

    def _on_commit(self, error: Any, partitions: list[Any]) -> None:
        if error is not None:
            log.warning("an offset commit failed: %s", error)
            return
        self._ledger.mark_committed({tp.partition: tp.offset for tp in partitions if tp.error is None})

    def _on_error(self, error: Any) -> None:
        log.warning("Kafka: %s", error)

    # -- rebalancing (called inside consume, on this worker's thread) --------------------------------

    def _drain(self) -> None:
        if not self.runtime.running:
            return
        try:
            self.runtime.drain(self.config.drain_timeout)
        except Exception:
            log.exception("the runtime did not store what it was given within %.0f s", self.config.drain_timeout)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        added = {tp.partition for tp in partitions}
        self.stats.rebalances += 1
        self._assigned |= added
        self.stats.assigned = frozenset(self._assigned)
        try:
            open_alerts = self.runtime.store.list(status="open", limit=None)
        except Exception:
            log.exception("could not read open alerts; devices of the new partitions start without them")
            open_alerts = []
        self._to_warm = {a.device: a for a in open_alerts if a.device not in self._owner}
        self._on_runtime(self.runtime.reload_calibration)
        log.info("assigned partitions %s of %s (now %s)", sorted(added), self.config.topic, sorted(self._assigned))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {tp.partition for tp in partitions}
        self.stats.rebalances += 1
        self._drain()  # everything consumed from these partitions is stored before they move
        self._commit(asynchronous=False, consumer=consumer, only=revoked)
        self._give_up(revoked)
        log.info("revoked partitions %s of %s (now %s)", sorted(revoked), self.config.topic, sorted(self._assigned))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = {tp.partition for tp in partitions}
        self.stats.rebalances += 1
        log.warning(
            "lost partitions %s of %s (session timed out); their offsets stay uncommitted", lost, self.config.topic
        )
        self._drain()
        self._give_up(lost)

    def _give_up(self, partitions: set[int]) -> None:
        self._ledger.forget(partitions)
        self._assigned -= partitions
        self.stats.assigned = frozenset(self._assigned)
        devices = [d for d, p in self._owner.items() if p in partitions]
        for device in devices:
            del self._owner[device]
        released = self._on_runtime(lambda: self.runtime.release_devices(devices))
        self.stats.released += int(released or 0)

    def _on_runtime(self, action: Callable[[], Any]) -> Any:
        return self.runtime.call(action) if self.runtime.running else action()
