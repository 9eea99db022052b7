"""The streaming runtime: telemetry in, decisions and alerts out, one worker thread, micro-batches.

Transports (HTTP, MQTT) hand raw payloads to :meth:`Runtime.submit`, which decodes them on the caller's
thread and queues them. One worker thread takes whatever has queued — up to ``max_batch`` records, waiting
at most ``max_delay`` seconds for more — and for that micro-batch:

1. checks every record (shape, device route, the model's sensors, finite numbers, time order per device)
   and turns each refusal into a :class:`~vigil.streaming.dead_letters.DeadLetter`;
2. scores the accepted records of each model in one call of the same fitted
   :class:`~vigil.pipeline.Pipeline` used everywhere else (windowed models get each device's history);
3. compares each score with the device's threshold and feeds the model's alert tracker, so a sustained
   anomaly is one alert that grows;
4. hands the batch's alert events and dead letters to the :class:`~vigil.alerts.sink.AlertSink`, which
   commits them in one transaction (retrying while the store is down) and only then publishes them;
5. only then reports each submission as done — an MQTT message is acknowledged after its decisions are
   durable, so a crash before that makes the broker redeliver it.

Model versions are swapped between batches (:meth:`Runtime.activate`): the queue keeps filling meanwhile,
so no message is lost, and the old version's open alerts are closed. On start, alerts left open by a
previous run of the same version are resumed, so a restart after a crash continues them instead of
opening duplicates.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vigil.alarms import AlarmPolicy, AlarmState
from vigil.alerts import Alert, AlertEvent, AlertSink, AlertStore, Publisher
from vigil.errors import InvalidInputError, NumericalError, SchemaError, VigilError
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.device_calibration import ThresholdChange
from vigil.streaming.drift import DriftReport, score_drift
from vigil.streaming.messages import Reading, Rejection, decode_payload, parse_record
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.model_slot import (
    ModelSlot,
    calibration_path,
    load_slot,
    read_calibration,
    save_alarm_states,
    save_calibration,
    save_recent,
)
from vigil.streaming.runtime_metrics import RuntimeMetrics
from vigil.streaming.runtime_types import Decision, Outcome, Redelivery, RuntimeConfig
from vigil.streaming.sensor_policy import SensorPolicy, apply_policies
from vigil.times import format_time
from vigil.validation import check_record

__all__ = ["Decision", "Outcome", "Redelivery", "Runtime", "RuntimeConfig"]

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Recent accepted times remembered per device to recognise redeliveries (MQTT's receive maximum is larger,
#: but a broker redelivers in order, and older copies still fall before the device's time and are refused).
_SEEN_PER_DEVICE = 256


@dataclass
class _Submission:
    records: list[Any] | None
    source: str
    received: float
    device_hint: str | None
    rejection: Rejection | None = None
    raw: str = ""
    on_done: Callable[[list[Outcome]], None] | None = None


@dataclass
class _Control:
    action: Callable[[], Any]
    future: Future[Any]


#: A record's readings in model order: a list on the fast path, validation's array otherwise.
_Vector = Sequence[float] | np.ndarray


@dataclass
class _Pending:
    submission: int
    index: int
    reading: Reading
    vector: _Vector
    received: float
    note: str = ""


@dataclass
class _Device:
    """What the runtime keeps per device: time order, a detector window, recent points, score statistics."""

    name: str
    model: str
    last_ts: float | None = None
    history: np.ndarray | None = None
    # (time, score, threshold, anomaly, note, (sensor names, the values scored)); the names are the model's
    # own list, shared, so a point costs only its values.
    timeline: deque[tuple[float, float, float, bool, str, tuple[Sequence[str], tuple[float, ...]] | None]] = field(
        default_factory=deque
    )
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    flagged: int = 0
    # Recent accepted (time -> readings hash), so that a broker's or client's redelivery of one of them is
    # recognised as such; and the start of the span a resumed alert already holds (its points were committed
    # before a restart, so the same times coming again are redeliveries too).
    seen: dict[float, int] = field(default_factory=dict)
    committed_from: float | None = None
    # Declared assets (a plant file) exist before their first record; one silent for longer than
    # ``silent_after`` seconds is reported until it sends again.
    declared: bool = False
    silent_after: float | None = None
    last_seen: float | None = None  # monotonic time of the last accepted record (or of the declaration)
    silent_since: float | None = None  # POSIX time the silence started (its last record, or the declaration)
    dead_letters: int = 0  # since the service started, and the kind of the latest
    last_dead_letter: str = ""

    def remember(self, ts: float, digest: int) -> None:
        self.seen[ts] = digest
        if len(self.seen) > _SEEN_PER_DEVICE:
            del self.seen[next(iter(self.seen))]  # dicts keep insertion order: the oldest goes

    def is_redelivery(self, ts: float, digest: int) -> bool:
        if self.seen.get(ts) == digest:
            return True
        return (
            self.committed_from is not None and self.last_ts is not None and self.committed_from <= ts <= self.last_ts
        )

    def observe(
        self,
        ts: float,
        score: float,
        threshold: float,
        is_anomaly: bool,
        note: str = "",
        values: tuple[Sequence[str], tuple[float, ...]] | None = None,
    ) -> None:
        """Add a scored point: to the timeline, and to the running mean and variance (Welford)."""
        self.timeline.append((ts, score, threshold, is_anomaly, note, values))
        self.n += 1
        delta = score - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (score - self.mean)
        self.flagged += is_anomaly


class Runtime:
    """Score telemetry from any transport with the registry's active models; store and publish alerts.

    Parameters
    ----------
    store : AlertStore
        Where alerts and dead letters are kept (:class:`~vigil.alerts.store.SqlAlertStore`).
    registry : ModelRegistry
        Where the models and their active versions are.
    models : sequence of str, optional
        Models to serve; default every registry model with an active version.
    routes : sequence of (pattern, model)
        ``fnmatch`` patterns of device ids and the model that scores them, first match wins. A record's
        ``asset_type`` names its model directly. With no routes and one model, every device uses it;
        otherwise a device that matches no route is refused as ``unknown_device``.
    config : RuntimeConfig
    sinks : sequence of Publisher
        Receive each batch's committed alert events and dead letters, through :attr:`sink`
        (:class:`~vigil.alerts.sink.AlertSink`: commit with retries, publish, then acknowledge).
    allow_no_models : bool
        Run with no telemetry model at all (a service that only watches cameras or captures); every
        telemetry record is then refused as ``unknown_device``. Default: no models is an error.
    sensor_policies : mapping of str to mapping of str to SensorPolicy
        Per model, each sensor's valid range and partial-record policy
        (:mod:`vigil.streaming.sensor_policy`); sensors without one refuse null readings and text.
    alarm_policies : mapping of str to AlarmPolicy
        Per model, annunciation rules that replace those saved with its versions (the plant file's
        ``[asset_types.T.alarm]``).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from vigil.detectors.pca import PCADetector
    >>> from vigil.pipeline import Pipeline
    >>> from vigil.alerts import SqlAlertStore
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> tmp = tempfile.mkdtemp()
    >>> registry = ModelRegistry(tmp)
    >>> _ = registry.add("pump", Pipeline(PCADetector(n_components=1)).fit(X), activate=True)
    >>> with SqlAlertStore(":memory:") as store, Runtime(store, registry) as runtime:
    ...     done = runtime.submit(b'{"device": "p1", "time": 0, "readings": {"x0": 0.1, "x1": 0.2}}', "http")
    ...     [type(o).__name__ for o in done.result(timeout=10)]
    ['Decision']
    """

    def __init__(
        self,
        store: AlertStore,
        registry: ModelRegistry,
        *,
        models: Sequence[str] | None = None,
        routes: Sequence[tuple[str, str]] = (),
        config: RuntimeConfig | None = None,
        sinks: Sequence[Publisher] = (),
        allow_no_models: bool = False,
        sensor_policies: Mapping[str, Mapping[str, SensorPolicy]] | None = None,
        alarm_policies: Mapping[str, AlarmPolicy] | None = None,
    ) -> None:
        self.store = store
        self.sensor_policies = {m: dict(p) for m, p in (sensor_policies or {}).items()}
        self.alarm_policies = dict(alarm_policies or {})
        self.registry = registry
        self.config = config if config is not None else RuntimeConfig()
        self.metrics = RuntimeMetrics()
        self.sink = AlertSink(store, sinks, on_store_error=self.metrics.record_store_error)
        self.sinks = self.sink.publishers  # the same list: a publisher appended here is used
        names = list(models) if models is not None else [n for n in registry.names() if registry.active(n)]
        if not names and not allow_no_models:
            msg = f"the model registry {registry.root} has no model with an active version"
            raise InvalidInputError(msg)
        self.routes = [(str(pattern), str(model)) for pattern, model in routes]
        unknown = sorted({model for _, model in self.routes if model not in names})
        if unknown:
            msg = f"routes name models that are not served: {unknown} (served: {names})"
            raise InvalidInputError(msg)
        self._slots: dict[str, ModelSlot] = {name: self._load_slot(name) for name in names}
        self._devices: dict[str, _Device] = {}
        self._declared: list[_Device] = []
        self._route_cache: dict[tuple[str, str | None], str | None] = {}
        self._refused: set[tuple[str, str | None]] = set()  # (model, version) activated elsewhere that failed to load
        self._queue: queue.Queue[_Submission | _Control] = queue.Queue(maxsize=self.config.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_flush = time.monotonic()
        self._last_recent_flush = time.monotonic()
        self._last_poll = time.monotonic()
        self._last_drift_check = time.monotonic()
        self._last_counter_flush = time.monotonic()
        self._flushed_counts: dict[str, int] = {}
        self.metrics.restore(store.counters())
        self._resume_open_alerts()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Runtime:
        """Start the worker thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vigil-runtime", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, close nothing that is still open (a restart resumes it), and stop."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None
        self._save_recent()
        self._flush_counts()

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def health(self) -> list[str]:
        """Why the runtime is degraded: many dead letters, stalled ingestion, a failing store, a model whose scores
        drifted from its training scores (empty: healthy)."""
        config = self.config
        reasons = self.metrics.health(
            window=config.health_window_seconds,
            stall_seconds=config.stall_seconds,
            max_dead_share=config.health_dead_letter_share,
            min_records=config.health_min_records,
        )
        for name, slot in list(self._slots.items()):
            if slot.drifted:
                reasons.append(f"model {name} ({slot.version}): score {slot.drift_message}; consider `vigil retrain`")
        return reasons

    # -- ingestion -----------------------------------------------------------------------------------

    def submit(
        self,
        raw: bytes | str,
        source: str,
        *,
        device_hint: str | None = None,
        on_done: Callable[[list[Outcome]], None] | None = None,
        timeout: float | None = 5.0,
    ) -> Future[list[Outcome]]:
        """Decode a payload and queue it; return a future of one outcome per record, in order.

        A payload that cannot be decoded is queued as one dead letter, so it is stored and published
        like any other. ``on_done`` (if given) is called from the worker thread with the outcomes once
        they are committed.

        Raises
        ------
        queue.Full
            The queue stayed full for ``timeout`` seconds (None waits for as long as it takes).
        """
        future: Future[list[Outcome]] = Future()

        def done(outcomes: list[Outcome]) -> None:
            try:
                if on_done is not None:
                    on_done(outcomes)
            finally:
                future.set_result(outcomes)

        self.enqueue(raw, source, device_hint=device_hint, on_done=done, timeout=timeout)
        return future

    def enqueue(
        self,
        raw: bytes | str,
        source: str,
        *,
        device_hint: str | None = None,
        on_done: Callable[[list[Outcome]], None] | None = None,
        timeout: float | None = 5.0,
    ) -> None:
        """As :meth:`submit`, without a future: the lighter path for transports that only need ``on_done``."""
        received = time.perf_counter()
        decoded = decode_payload(
            raw, max_bytes=self.config.max_payload_bytes, max_records=self.config.max_batch_records
        )
        if isinstance(decoded, Rejection):
            excerpt = raw[:4096].decode("utf-8", "replace") if isinstance(raw, bytes) else raw[:4096]
            item = _Submission(None, source, received, device_hint, decoded, excerpt, on_done)
            n = 1
        else:
            item = _Submission(decoded, source, received, device_hint, None, "", on_done)
            n = len(decoded)
        self.metrics.record_received(source.partition(":")[0], n)
        self._put(item, timeout)

    def reject(self, rejection: Rejection, source: str, raw: bytes | str = b"") -> Future[list[Outcome]]:
        """Queue a refusal decided by a transport (for example a body over the size limit) as a dead letter."""
        future: Future[list[Outcome]] = Future()
        excerpt = raw[:4096].decode("utf-8", "replace") if isinstance(raw, bytes) else raw[:4096]
        self.metrics.record_received(source.partition(":")[0], 1)
        self._put(_Submission(None, source, time.perf_counter(), None, rejection, excerpt, future.set_result), 5.0)
        return future

    def _put(self, item: _Submission | _Control, timeout: float | None) -> None:
        if timeout is not None:
            self._queue.put(item, timeout=timeout)
            return
        while True:  # wait as long as it takes, but not past a stop
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stop.is_set():
                    raise

    def call(self, action: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``action`` on the worker thread between batches and return its result."""
        if not self.running:
            msg = "the runtime is not running"
            raise VigilError(msg)
        future: Future[Any] = Future()
        self._put(_Control(action, future), timeout)
        return future.result(timeout)

    def drain(self, timeout: float = 30.0) -> None:
        """Return once everything queued before this call has been processed and committed."""
        self.call(lambda: None, timeout)

    def declare(self, device: str, model: str, *, silent_after: float | None = None) -> None:
        """Know ``device`` before it sends anything (an asset of a plant file), scored by ``model``.

        It is listed by :meth:`devices` at once; when ``silent_after`` is given, a device that has sent no
        accepted record for that many seconds (since its last one, or since now) is logged and listed as
        silent until it sends again.
        """
        self._slot(model)

        def add() -> None:
            state = self._devices.get(device)
            if state is None:
                state = self._add_device(device, model)
            if not state.declared:
                self._declared.append(state)
            state.declared = True
            state.silent_after = silent_after
            if state.last_seen is None:
                state.last_seen = time.monotonic()

        if self.running:
            self.call(add)
        else:
            add()

    # -- models ----------------------------------------------------------------------------------------

    def activate(self, name: str, version: str, *, reason: str = "activated") -> str | None:
        """Make ``version`` active in the registry and hot-swap it in; return the replaced version."""
        slot = self._slot(name)
        if slot.version != version:
            # Refuse a version that does not load before the registry points at it: the old one keeps serving,
            # and a restart does not find the bad one active.
            self.registry.load(name, version)
        previous = self.registry.activate(name, version, reason=reason)
        if slot.version != version:
            new = self._load_slot(name)
            self.call(lambda: self._install(new))
        return previous

    def rollback(self, name: str) -> str:
        """Re-activate the previous version of ``name`` and hot-swap it in; return it."""
        self._slot(name)
        version = self.registry.rollback(name)
        new = self._load_slot(name)
        self.call(lambda: self._install(new))
        return version

    def apply_verdict(self, alert: Alert) -> ThresholdChange | None:
        """Learn from an operator's verdict; a false positive raises the device's threshold, within bounds.

        Returns the change after a false positive (``old == new`` when the threshold did not move; see
        :mod:`vigil.streaming.device_calibration`); None for another verdict, or when the alert's model
        version is no longer served.
        """
        if alert.status != "false_positive":
            return None
        return self.call(lambda: self._recalibrate(alert))

    def device_threshold(self, device: str) -> dict[str, Any] | None:
        """The device's feedback threshold, its model's, the bounds and guard, and every change; None if unknown."""
        return self.call(lambda: self._threshold_view(device))

    def undo_threshold(self, device: str, *, who: str = "", change_id: int | None = None) -> ThresholdChange | None:
        """Undo the device's latest threshold change still in force (recorded as a change); None if unknown.

        Raises :class:`~vigil.errors.InvalidInputError` when there is nothing to undo, or ``change_id`` is
        not that latest change.
        """
        return self.call(lambda: self._undo_threshold(device, who, change_id))

    def models(self) -> list[dict[str, Any]]:
        """The served models: name, active version, threshold, features, per-device overrides."""
        out = []
        for name, slot in self._slots.items():
            out.append(
                {
                    "name": name,
                    "version": slot.version,
                    "threshold": slot.threshold,
                    "features": list(slot.features),
                    "device_thresholds": slot.calibration.overrides(),
                    "routes": [pattern for pattern, model in self.routes if model == name],
                }
            )
        return out

    def drift(self, name: str) -> DriftReport:
        """Compare the model's recent scores with its training scores (see :func:`score_drift`)."""
        slot = self._slot(name)
        return score_drift(list(slot.recent_scores), slot.pipeline.train_score_quantiles_)

    def devices(self) -> list[dict[str, Any]]:
        """Every device seen: its model, last time, last score and threshold, and its score statistics."""
        out = []
        sensors: dict[str, list[dict[str, Any]]] = {}  # one list per model, however many devices it serves
        for device in list(self._devices.values()):
            if device.model not in sensors:
                sensors[device.model] = self._sensors(device.model)
            last = device.timeline[-1] if device.timeline else None
            out.append(
                {
                    "device": device.name,
                    "model": device.model,
                    "last_time": None if device.last_ts is None else _iso(device.last_ts),
                    "last_score": None if last is None else last[1],
                    "threshold": None if last is None else self._threshold_now(device),
                    "feedback": self._feedback_summary(device),
                    "points": device.n,
                    "score_mean": device.mean if device.n else None,
                    "score_std": math.sqrt(device.m2 / (device.n - 1)) if device.n > 1 else None,
                    "flag_rate": device.flagged / device.n if device.n else None,
                    "declared": device.declared,
                    "silent": device.silent_since is not None,
                    "silent_since": None if device.silent_since is None else _iso(device.silent_since),
                    "dead_letters": device.dead_letters,
                    "last_dead_letter": device.last_dead_letter or None,
                    "drift": self._device_drift(device),
                    "sensors": sensors[device.model],
                }
            )
        return sorted(out, key=lambda d: d["device"])

    def _device_drift(self, device: _Device) -> dict[str, Any] | None:
        """The device's recent scores against its model's training scores (:func:`score_drift`), in brief."""
        slot = self._slots.get(device.model)
        if slot is None:
            return None
        report = score_drift([point[1] for point in list(device.timeline)], slot.pipeline.train_score_quantiles_)
        worst = max((c["z"] for c in report.checks), key=abs, default=None)
        return {"n": report.n, "drifted": report.drifted, "z": worst, "message": report.message}

    def _sensors(self, model: str) -> list[dict[str, Any]]:
        """The model's sensors with the unit and valid range the plant file gives them (None where it does not)."""
        slot = self._slots.get(model)
        if slot is None:
            return []
        policies = self.sensor_policies.get(model, {})
        out = []
        for name in slot.features:
            policy = policies.get(name)
            unit, low, high = (None, None, None) if policy is None else (policy.unit, policy.low, policy.high)
            out.append({"name": name, "unit": unit, "low": low, "high": high})
        return out

    def timeline(self, device: str) -> list[dict[str, Any]]:
        """The device's recent points (time, score, threshold, anomaly, the sensor values scored), oldest first."""
        state = self._devices.get(device)
        if state is None:
            msg = f"no device {device!r} has sent telemetry since the service started"
            raise InvalidInputError(msg)
        return [
            {
                "time": _iso(ts),
                "score": score,
                "threshold": thr,
                "anomaly": flag,
                **({"note": note} if note else {}),
                **({"values": {k: v if v == v else None for k, v in zip(*values, strict=True)}} if values else {}),
            }
            for ts, score, thr, flag, note, values in list(state.timeline)
        ]

    # -- the worker ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            items = self._collect()
            if items:
                try:
                    self._process(items)
                except Exception:  # the service must outlive any bug in one batch
                    log.exception("a micro-batch failed unexpectedly; its submissions stay unacknowledged")
            try:
                self._housekeeping()
            except Exception:
                log.exception("runtime housekeeping failed")
            if self._stop.is_set() and self._queue.empty():
                return

    def _collect(self) -> list[_Submission | _Control]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        items = [first]
        if isinstance(first, _Control):
            return items
        n = len(first.records or ())
        deadline = time.perf_counter() + self.config.max_delay
        while n < self.config.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            items.append(item)
            if isinstance(item, _Control):
                break  # a control runs after the records queued before it, never in the middle of a batch
            n += len(item.records or ())
        return items

    def _process(self, items: list[_Submission | _Control]) -> None:
        submissions = [item for item in items if isinstance(item, _Submission)]
        controls = [item for item in items if isinstance(item, _Control)]
        if submissions:
            self._process_submissions(submissions)
        for control in controls:
            try:
                control.future.set_result(control.action())
            except Exception as exc:
                control.future.set_exception(exc)

    def _process_submissions(self, submissions: list[_Submission]) -> None:
        outcomes: list[list[Outcome | None]] = []
        letters: list[DeadLetter] = []
        redelivered = 0
        groups: dict[str, list[_Pending]] = {}
        for s_index, sub in enumerate(submissions):
            if sub.rejection is not None:
                letter = self._letter(sub.rejection, sub.source, sub.raw)
                letters.append(letter)
                outcomes.append([letter])
                continue
            records = sub.records or []
            row: list[Outcome | None] = [None] * len(records)
            outcomes.append(row)
            for r_index, record in enumerate(records):
                where = f"record {r_index}" if len(records) > 1 else "record"
                try:
                    accepted = self._accept(record, sub.device_hint, where)
                except Exception as exc:  # a record the checks did not foresee costs only itself
                    log.exception("checking %s from %s failed unexpectedly", where, sub.source)
                    accepted = Rejection("internal", f"{where}: could not be checked: {exc!r}", _device_of(record))
                if isinstance(accepted, Redelivery):  # already processed: acknowledged, counted, not scored again
                    row[r_index] = accepted
                    redelivered += 1
                    continue
                if isinstance(accepted, Rejection):
                    letter = self._letter(accepted, sub.source, record)
                    letters.append(letter)
                    row[r_index] = letter
                    continue
                model, reading, vector, note = accepted
                groups.setdefault(model, []).append(_Pending(s_index, r_index, reading, vector, sub.received, note))

        events: list[AlertEvent] = []
        scored: Counter[str] = Counter()
        for model, pending in groups.items():
            slot = self._slots[model]
            for item, result in zip(pending, self._score(slot, pending, events), strict=True):
                outcome: Decision | DeadLetter
                if isinstance(result, Rejection):
                    outcome = self._letter(result, submissions[item.submission].source, item.reading)
                    letters.append(outcome)
                else:
                    scored[model] += 1
                    outcome = result
                outcomes[item.submission][item.index] = outcome

        if not self.sink.deliver(events, letters, stop=self._stop):
            return  # stopping while the store is down: leave the submissions unacknowledged
        self._count_letters(letters)
        now = time.perf_counter()
        latencies = [now - sub.received for sub in submissions for _ in (sub.records or [None])]
        self.metrics.record_batch(
            scored, Counter(letter.kind for letter in letters), Counter(e.kind for e in events), latencies, redelivered
        )
        for sub, row in zip(submissions, outcomes, strict=True):
            if sub.on_done is not None:
                try:
                    sub.on_done([o for o in row if o is not None])
                except Exception:
                    log.exception("a completion callback failed")

    def _accept(
        self, record: Any, device_hint: str | None, where: str
    ) -> tuple[str, Reading, _Vector, str] | Rejection | Redelivery:
        reading = parse_record(record, device_hint=device_hint, where=where)
        if isinstance(reading, Rejection):
            return reading
        device = reading.device
        model = self._route(device, reading.asset_type)
        if model is None:
            if reading.asset_type is not None:
                reason = f"{where}: asset_type {reading.asset_type!r} names no served model ({sorted(self._slots)})"
            else:
                reason = f"{where}: no model is routed to device {device!r}"
            return Rejection("unknown_device", reason, device)
        slot = self._slots[model]
        values, note = reading.values, ""
        missing: dict[str, str] = {}
        policies = self.sensor_policies.get(model)
        if policies is not None:
            result = apply_policies(values, reading.quality, policies)
            self.metrics.record_partial(result.counts)
            if result.rejection is not None:
                kind, why = result.rejection
                return Rejection(kind, f"readings (device={device}, {where}): {why}", device)
            values = result.values or {}
            notes, missing = result.notes, result.missing
            if missing:
                lacking = ", ".join(f"{name!r} ({why})" for name, why in missing.items())
                if not slot.pipeline.scores_without_features:
                    # Its threshold was calibrated on every sensor: a score over fewer says nothing against it.
                    reason = (
                        f"readings (device={device}, {where}): no value for {lacking}; on_missing is "
                        f"'score_without' but model {model} ({type(slot.pipeline.detector_).__name__}) cannot "
                        "score without them"
                    )
                    return Rejection("missing_value", reason, device)
                # A placeholder that passes the checks of the other readings; NaN marks it once they passed.
                values = {**values, **dict.fromkeys(missing, 0.0)}
                notes = [f"scored without {lacking}", *notes]
            note = "; ".join(notes)
        vector: _Vector | None = _fast_vector(values, slot.features, slot.feature_set)
        if vector is None:  # something is off: let validation.py find it and word the reason
            nulls = _missing_readings(reading)
            if nulls:
                self.metrics.record_partial({"missing": sum(v is None for v in reading.values.values())})
                reason = f"readings (device={device}, {where}) have no value for {nulls}"
                return Rejection("missing_value", reason, device)
            try:
                vector = check_record(values, slot.features, where=f"readings (device={device}, {where})")
            except SchemaError as exc:
                return Rejection("sensors_mismatch", str(exc), device)
            except InvalidInputError as exc:
                text = str(exc)
                kind = "non_finite" if (" is NaN" in text or " is infinite" in text) else "wrong_type"
                return Rejection(kind, text, device)
        # A redelivery is recognised by what the record said: its readings, and which sensors it lacked.
        digest = hash(tuple(vector)) if not missing else hash((tuple(vector), frozenset(missing)))
        if missing:
            vector = [math.nan if name in missing else v for name, v in zip(slot.features, vector, strict=True)]
        state = self._devices.get(device)
        if state is None:
            if len(self._devices) >= self.config.max_devices:
                reason = f"{where}: device {device!r} is beyond the limit of {self.config.max_devices} devices"
                return Rejection("unknown_device", reason, device)
            state = self._add_device(device, model)
        elif state.model != model:
            state.model = model
            state.history = None
        ts = reading.timestamp
        if state.last_ts is not None and ts <= state.last_ts:
            if state.is_redelivery(ts, digest):
                return Redelivery(device, reading.time)
            kind = "duplicate" if ts == state.last_ts else "out_of_order"
            reason = (
                f"{where}: time {format_time(reading.time)} of device {device!r} is "
                f"{'the same as' if kind == 'duplicate' else 'earlier than'} its previous {_iso(state.last_ts)}"
            )
            return Rejection(kind, reason, device)
        state.last_ts = ts
        state.remember(ts, digest)
        state.last_seen = time.monotonic()
        if state.silent_since is not None:
            log.info("asset %s is sending again after %.0f s of silence", device, time.time() - state.silent_since)
            state.silent_since = None
        return model, reading, vector, note

    def _route(self, device: str, asset_type: str | None) -> str | None:
        key = (device, asset_type)
        if key in self._route_cache:
            return self._route_cache[key]
        if asset_type is not None:
            model = asset_type if asset_type in self._slots else None
        else:
            model = next((m for pattern, m in self.routes if fnmatch.fnmatchcase(device, pattern)), None)
            if model is None and not self.routes and len(self._slots) == 1:
                model = next(iter(self._slots))
        if len(self._route_cache) < 2 * self.config.max_devices:
            self._route_cache[key] = model
        return model

    def _score(self, slot: ModelSlot, pending: list[_Pending], events: list[AlertEvent]) -> list[Decision | Rejection]:
        """One decision per pending record, or the refusal of the records the model gives no finite score.

        A refused record is left out of its device's history, so its neighbours score as if it had never come.
        """
        X = np.array([item.vector for item in pending], dtype=np.float64)
        n, d = X.shape
        shares = np.zeros((n, d))
        by_device: dict[str, list[int]] = {}
        for i, item in enumerate(pending):
            by_device.setdefault(item.reading.device, []).append(i)
        windows: dict[str, np.ndarray] = {}
        failures: dict[int, Exception] = {}
        scores = np.full(n, np.nan)
        gaps = np.isnan(X)  # the sensors a row is scored without (only row-wise models take such rows)
        groups = _by_missing(gaps)
        if slot.context == 0:
            for missing, group in groups:
                _score_rows(_scorer(slot.pipeline, missing), X, group, scores, failures)
        else:
            for device, rows in by_device.items():
                state = self._devices[device]
                history = state.history if state.history is not None else np.empty((0, d))
                kept = _score_windows(slot.pipeline, history, X, rows, scores, failures)
                joined = np.vstack([history, X[kept]])
                windows[device] = joined
                state.history = joined[-slot.context :]
        # The pipeline's own alarm stage decides, device by device in time order, continuing each device's
        # state: the same object and the same decisions as `Pipeline.decide` over the whole series. Refused
        # records are left out, as if they had never come.
        flagged = np.zeros(n, dtype=bool)
        thresholds = np.full(n, slot.threshold)
        notes: dict[int, str] = {}
        for device, all_rows in by_device.items():
            rows = [i for i in all_rows if i not in failures]
            if not rows:
                continue
            alarm = slot.alarm_state(device)
            override = _set_feedback_floor(slot, device, alarm)
            times = [pending[i].reading.timestamp for i in rows]
            run = slot.pipeline.alarm_.run(scores[rows], alarm, timestamps=times)
            flagged[rows] = run.active
            thresholds[rows] = run.thresholds
            if alarm.floor is not None and alarm.floor < override:
                # The feedback guard capped the floor: a reading flagged at or below the operators' threshold
                # would have been hidden by their feedback, and its decision says so.
                for j in np.flatnonzero(run.flagged & (scores[rows] <= override)):
                    notes[rows[j]] = slot.calibration.guard_note(device, slot.threshold, float(scores[rows[j]]))
            for row, reason in run.notes:
                log.info("device %s at %s: %s", device, pending[rows[row]].reading.time, reason)
            if run.active.any() and device in windows:
                joined = windows[device]
                shares[rows] = _contributions(slot.pipeline, joined)[len(joined) - len(rows) :]
        if slot.context == 0 and flagged.any():
            for missing, group in groups:
                group = group[flagged[group]]
                if len(group):
                    shares[group] = _contributions(slot.pipeline, X[group], missing)

        complete = np.logical_not(gaps.any(axis=1))
        results: list[Decision | Rejection] = []
        refused: dict[int, Rejection] = {}
        for i, exc in failures.items():
            if isinstance(exc, InvalidInputError | ArithmeticError | RuntimeWarning):
                kind, what = "non_finite_score", "gives no finite score for this record"
            else:
                log.error("model %s (%s) failed on a record: %r", slot.name, slot.version, exc)
                kind, what = "internal", "failed on this record"
            reason = f"model {slot.name} ({slot.version}) {what}: {exc}"
            refused[i] = Rejection(kind, reason, pending[i].reading.device)
        mono = time.monotonic()
        for i, item in enumerate(pending):
            if i in refused:
                results.append(refused[i])
                continue
            reading = item.reading
            device = reading.device
            score, threshold, is_anomaly = float(scores[i]), float(thresholds[i]), bool(flagged[i])
            if is_anomaly or device in slot.open_devices:
                # A quiet point of a device without an open alert changes nothing in the tracker (time order
                # is checked above), so the tracker only sees the points that can open, grow or close an alert.
                contributions = dict(zip(slot.features, shares[i].tolist(), strict=True)) if is_anomaly else {}
                row_events = slot.tracker.update(device, reading.time, score, threshold, is_anomaly, contributions)
                slot.note(row_events)
                events.extend(row_events)
                alert = next((e.alert.id for e in row_events if e.kind != "closed"), None)
            else:
                alert = None
            ts = reading.timestamp
            slot.calibration.observe(device, ts, score)
            slot.recent_scores.append(score)
            if complete[i]:  # retraining needs every sensor
                slot.recent_rows.append((device, ts, item.vector))
            note = "; ".join(n for n in (item.note, notes.get(i, "")) if n)
            values = (slot.features, tuple(float(v) for v in item.vector))
            self._devices[device].observe(ts, score, threshold, is_anomaly, note, values)
            if slot.last_event_ts is None or ts > slot.last_event_ts:
                slot.last_event_ts = ts
            slot.last_event_mono = mono
            results.append(
                Decision(device, reading.time, slot.name, slot.version, score, threshold, is_anomaly, alert, note)
            )
        return results

    # -- housekeeping ----------------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        self._watch_silence(now)
        if now - self._last_flush >= 1.0:
            self._last_flush = now
            events: list[AlertEvent] = []
            for slot in self._slots.values():
                if slot.last_event_ts is not None:
                    clock = slot.last_event_ts + (now - slot.last_event_mono)
                    flushed = slot.tracker.flush(clock)
                    slot.note(flushed)
                    events.extend(flushed)
            if events and self.sink.deliver(events, stop=self._stop):
                self.metrics.record_batch(Counter(), Counter(), Counter(e.kind for e in events), [])
        if now - self._last_counter_flush >= self.config.counter_flush_seconds:
            self._last_counter_flush = now
            self._flush_counts()
        if now - self._last_recent_flush >= self.config.recent_flush_seconds:
            self._last_recent_flush = now
            self._save_recent()
        if now - self._last_poll >= self.config.registry_poll_seconds:
            self._last_poll = now
            self._poll_registry()
        if now - self._last_drift_check >= self.config.drift_check_seconds:
            self._last_drift_check = now
            self._watch_drift()

    def _flush_counts(self) -> None:
        """Add what was counted since the last flush to the store's counters (kept for the next try if refused)."""
        current = self.metrics.counts()
        delta = {name: n - self._flushed_counts.get(name, 0) for name, n in current.items()}
        delta = {name: n for name, n in delta.items() if n > 0}
        if not delta:
            return
        try:
            self.store.add_counts(delta)
        except Exception:
            log.exception("the alert store refused the counters; they are added at the next flush")
            return
        self._flushed_counts = current

    def _watch_silence(self, now: float) -> None:
        for state in self._declared:
            if state.silent_after is None or state.silent_since is not None or state.last_seen is None:
                continue
            quiet = now - state.last_seen
            if quiet > state.silent_after:
                state.silent_since = time.time() - quiet
                last = "nothing yet" if state.last_ts is None else f"its last record at {_iso(state.last_ts)}"
                log.warning(
                    "asset %s is silent: no record for %.0f s (limit %g s; %s)",
                    state.name,
                    quiet,
                    state.silent_after,
                    last,
                )

    def _watch_drift(self) -> None:
        """Log when a model's recent scores start or stop looking unlike its training scores."""
        for name, slot in self._slots.items():
            report = score_drift(list(slot.recent_scores), slot.pipeline.train_score_quantiles_)
            slot.drift_message = report.message
            if report.drifted != slot.drifted:
                slot.drifted = report.drifted
                if report.drifted:
                    log.warning("model %s (%s): score %s; consider `vigil retrain`", name, slot.version, report.message)
                else:
                    log.info("model %s (%s): scores back in line with training: %s", name, slot.version, report.message)

    def _poll_registry(self) -> None:
        for name, slot in list(self._slots.items()):
            try:
                active = self.registry.active(name)
                if active is not None and active != slot.version and (name, active) not in self._refused:
                    log.info("model %s: version %s was activated elsewhere; swapping it in", name, active)
                    self._install(self._load_slot(name))
            except VigilError as exc:
                self._refused.add((name, active))  # said once: the poll would repeat it every few seconds
                log.error(
                    "model %s: version %s was activated but is refused; still serving %s: %s",
                    name,
                    active,
                    slot.version,
                    exc,
                )

    # -- models, internals -----------------------------------------------------------------------------

    def _slot(self, name: str) -> ModelSlot:
        slot = self._slots.get(name)
        if slot is None:
            msg = f"model {name!r} is not served (served: {sorted(self._slots)})"
            raise InvalidInputError(msg)
        return slot

    def _load_slot(self, name: str) -> ModelSlot:
        slot = load_slot(self.registry, name, self.config)
        policy = self.alarm_policies.get(name)
        if policy is not None:
            # The rules only decide how flagged scores become alarms; the set levels stay those fitted.
            slot.pipeline.alarm_.policy_ = policy
        return slot

    def _install(self, new: ModelSlot) -> None:
        old = self._slots[new.name]
        if old.version == new.version:
            return
        self.sink.deliver(old.tracker.close_all(), stop=self._stop)
        self._save_recent(old)
        for device in self._devices.values():
            if device.model == new.name:
                device.history = None
        self._slots[new.name] = new
        log.info("model %s: now serving %s (was %s)", new.name, new.version, old.version)

    def _recalibrate(self, alert: Alert) -> ThresholdChange | None:
        slot = next((s for s in self._slots.values() if s.version == alert.model_version), None)
        if slot is None:
            return None  # the alert's model version is no longer served: nothing to adjust
        confirmed = self.store.list(device=alert.device, status="confirmed", limit=1000)
        exclude = [(a.start.timestamp(), a.end.timestamp()) for a in confirmed]
        verdict = alert.feedback[-1] if alert.feedback else {}
        change = slot.calibration.recalibrate(
            alert.device,
            default=slot.threshold,
            peak=alert.score,
            exclude=exclude,
            who=str(verdict.get("user") or ""),
            alert_id=alert.id,
            time=verdict.get("time"),
        )
        if change.new != change.old:
            self._threshold_changed(slot, change)
        return change

    def _undo_threshold(self, device: str, who: str, change_id: int | None) -> ThresholdChange | None:
        slot = self._threshold_slot(device)
        if slot is None:
            return None
        change = slot.calibration.undo(device, default=slot.threshold, who=who, change_id=change_id)
        self._threshold_changed(slot, change)
        return change

    def _threshold_changed(self, slot: ModelSlot, change: ThresholdChange) -> None:
        save_calibration(self.registry, slot)
        if change.device in slot.alarm_states:  # the next reading, and /devices, see the new level at once
            _set_feedback_floor(slot, change.device, slot.alarm_states[change.device])
        log.info(
            "device %s: threshold %.4g -> %.4g (%s by %s: %s)",
            change.device, change.old, change.new, change.action, change.who, change.reason,
        )  # fmt: skip

    def _threshold_slot(self, device: str) -> ModelSlot | None:
        """The served model version whose thresholds apply to ``device``: its model's, or one that has its history."""
        seen = self._devices.get(device)
        if seen is not None and seen.model in self._slots:
            return self._slots[seen.model]
        return next((s for s in self._slots.values() if s.calibration.history(device)), None)

    def _threshold_now(self, device: _Device) -> float | None:
        """The set level the device's next reading is compared with (adaptive level, feedback floor, guard)."""
        slot = self._slots.get(device.model)
        state = None if slot is None else slot.alarm_states.get(device.name)
        if slot is None or state is None:
            return device.timeline[-1][2] if device.timeline else None
        return float(slot.pipeline.alarm_.current_threshold(state))

    def _feedback_summary(self, device: _Device) -> dict[str, Any] | None:
        slot = self._slots.get(device.model)
        if slot is None:
            return None
        cal = slot.calibration
        threshold, guard = cal.levels(device.name, slot.threshold)
        change = cal.in_force(device.name)
        history = cal.history(device.name)
        return {
            "threshold": threshold,
            "model_threshold": slot.threshold,
            "guard": None if math.isinf(guard) else guard,
            "in_force": None if change is None else change.to_dict(),
            "last_change": history[-1].to_dict() if history else None,
        }

    def _threshold_view(self, device: str) -> dict[str, Any] | None:
        slot = self._threshold_slot(device)
        if slot is None:
            return None
        cal = slot.calibration
        threshold, guard = cal.levels(device, slot.threshold)
        change = cal.in_force(device)
        seen = self._devices.get(device)
        return {
            "device": device,
            "model": slot.name,
            "version": slot.version,
            "threshold": threshold,
            "model_threshold": slot.threshold,
            "set_level": None if seen is None else self._threshold_now(seen),
            "guard": None if math.isinf(guard) else guard,
            "bounds": {
                "max_step": cal.max_step,
                "max_raise": cal.max_raise,
                "guard_margin": cal.guard_margin,
                "ceiling": cal.ceiling(slot.threshold),
            },
            "undoable": None if change is None else change.id,
            "history": [c.to_dict() for c in cal.history(device)],
        }

    def _calibration_path(self, name: str, version: str) -> Path:
        return calibration_path(self.registry, name, version)

    # -- handing devices over (the workers of one consumer group, vigil.scale.worker) --------------------
    # A worker keeps per device what this runtime keeps: the open alert and its attribution, the last time
    # seen (for order checks), a windowed model's history. When a rebalance moves a device, the old owner
    # stores everything it scored, then releases the device (its open alert stays open in the store); the
    # new owner resumes that alert on the device's first message and takes its end as the device's last
    # time, so a reading the old owner already folded in is refused as a duplicate, not counted twice.
    # Not handed over: a windowed model's history (filled again from the next readings) and the recent
    # scores of per-device recalibration (the thresholds themselves are read again from the registry).
    # These methods run on the worker thread (:meth:`call`) or before the runtime starts.

    def held_devices(self) -> set[str]:
        """Devices the runtime holds state for (seen, or resumed from the store)."""
        held = set(self._devices)
        for slot in self._slots.values():
            held.update(slot.tracker.devices)
        return held

    def release_devices(self, devices: Iterable[str]) -> int:
        """Forget these devices' state without closing their open alerts; return how many were held."""
        released = 0
        for device in devices:
            found = self._devices.pop(device, None) is not None
            for slot in self._slots.values():
                found = slot.tracker.forget(device) or found
                slot.open_devices.discard(device)
            released += found
        return released

    def resume_alert(self, alert: Alert, *, committed_here: bool = False) -> bool:
        """Continue an open alert of a served version; False when its version is not served here.

        The device's last time becomes the alert's end. ``committed_here``: this runtime's store holds the
        alert's points from a previous run of this service, so the same times coming again are redeliveries
        (acknowledged) rather than duplicates (dead letters).
        """
        slot = next((s for s in self._slots.values() if s.version == alert.model_version), None)
        if slot is None:
            return False
        slot.tracker.resume(alert)
        slot.open_devices.add(alert.device)
        ts = alert.end.timestamp()
        committed_from = alert.start.timestamp() if committed_here else None
        self._add_device(alert.device, slot.name, last_ts=ts, committed_from=committed_from)
        slot.last_event_ts = max(slot.last_event_ts or ts, ts)
        slot.last_event_mono = time.monotonic()
        return True

    def reload_calibration(self) -> None:
        """Read the per-device thresholds of every served version again (another worker may have changed them)."""
        for slot in self._slots.values():
            read_calibration(self._calibration_path(slot.name, slot.version), slot.calibration, slot.threshold)

    def _save_recent(self, slot: ModelSlot | None = None) -> None:
        # Recent rows (for retraining) and each device's alarm-stage state (adaptive level, shelving)
        # are kept with the version, so a restart continues where the service stopped.
        for current in [slot] if slot is not None else list(self._slots.values()):
            save_recent(self.registry, current)
            save_alarm_states(self.registry, current)

    def _resume_open_alerts(self) -> None:
        """Continue alerts a previous run left open (same version); close those of versions no longer served."""
        try:
            open_alerts = self.store.list(status="open", limit=None)
        except Exception:
            log.exception("could not read open alerts from the store; they will not be resumed")
            return
        stale = []
        for alert in open_alerts:
            if not self.resume_alert(alert, committed_here=True):
                alert.status = "closed"
                stale.append(alert)
        if stale:
            self.store.upsert_many(stale, [])

    def _add_device(self, device: str, model: str, **state: Any) -> _Device:
        added = _Device(device, model, timeline=deque(maxlen=self.config.timeline_points), **state)
        self._devices[device] = added
        return added

    def _count_letters(self, letters: list[DeadLetter]) -> None:
        """Count each device's dead letters, so that an operator sees which device sends what cannot be scored.

        A device whose every record is refused is listed too (it would otherwise never appear), as long as
        it is routed to a model and the device limit leaves room.
        """
        for letter in letters:
            device = letter.device
            if device is None:
                continue
            state = self._devices.get(device)
            if state is None:
                model = self._route(device, None)
                if model is None or len(self._devices) >= self.config.max_devices:
                    continue
                state = self._add_device(device, model)
            state.dead_letters += 1
            state.last_dead_letter = letter.kind

    def _letter(self, rejection: Rejection, source: str, payload: Any) -> DeadLetter:
        if isinstance(payload, Reading):
            payload = {"device": payload.device, "time": format_time(payload.time), "readings": payload.values}
        if not isinstance(payload, str):
            try:
                payload = json.dumps(payload, default=str)
            except (TypeError, ValueError):
                payload = repr(payload)
        return DeadLetter(
            kind=rejection.kind, reason=rejection.reason, source=source, payload=payload, device=rejection.device
        )


def _by_missing(gaps: np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """The rows grouped by which sensors they lack (``gaps``: True where a row's reading is NaN), complete first."""
    if not gaps.any():
        return [((), np.arange(len(gaps)))]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(gaps):
        groups.setdefault(tuple(np.flatnonzero(row).tolist()), []).append(i)
    return [(missing, np.array(rows)) for missing, rows in sorted(groups.items())]


def _scorer(pipeline: Any, missing: tuple[int, ...]) -> Callable[[np.ndarray], Any]:
    if not missing:
        return pipeline.score_samples
    return lambda X: pipeline.score_without(X, missing)


def _score_rows(
    score: Callable[[np.ndarray], Any],
    X: np.ndarray,
    rows: np.ndarray,
    scores: np.ndarray,
    failures: dict[int, Exception],
) -> None:
    """Score ``X[rows]`` of a row-wise model into ``scores``; put the rows it cannot score in ``failures``.

    One call scores the batch; only when it fails are the rows halved until the failing ones stand alone,
    so a hostile record costs a few extra calls and never its neighbours' scores.
    """
    try:
        with np.errstate(all="ignore"):  # an overflow shows as a non-finite score, refused below
            values = np.asarray(score(X[rows]), dtype=np.float64)
        if not np.isfinite(values).all():
            msg = "the model produced non-finite scores"
            raise NumericalError(msg)
        scores[rows] = values
    except Exception as exc:
        if len(rows) == 1:
            failures[int(rows[0])] = exc
            return
        half = len(rows) // 2
        _score_rows(score, X, rows[:half], scores, failures)
        _score_rows(score, X, rows[half:], scores, failures)


def _score_windows(
    pipeline: Any,
    history: np.ndarray,
    X: np.ndarray,
    rows: list[int],
    scores: np.ndarray,
    failures: dict[int, Exception],
) -> list[int]:
    """Score one device's ``rows`` of a windowed model after its ``history``; return the rows it could score.

    When the device's rows fail together, they are scored one at a time, each after the rows kept so far,
    so a refused row never enters the window of the rows after it.
    """
    try:
        with np.errstate(all="ignore"):
            values = np.asarray(pipeline.score_samples(np.vstack([history, X[rows]])), dtype=np.float64)
        values = values[len(history) :]
        if np.isfinite(values).all():
            scores[rows] = values
            return list(rows)
    except Exception:  # found row by row below
        log.debug("a windowed batch failed; scoring its rows one at a time")
    kept: list[int] = []
    for row in rows:
        try:
            joined = np.vstack([history, X[[*kept, row]]])
            with np.errstate(all="ignore"):
                value = float(pipeline.score_samples(joined)[-1])
            if not math.isfinite(value):
                msg = f"the model produced a non-finite score ({value})"
                raise NumericalError(msg)
        except Exception as exc:
            failures[row] = exc
            continue
        scores[row] = value
        kept.append(row)
    return kept


def _contributions(pipeline: Any, X: np.ndarray, missing: tuple[int, ...] = ()) -> np.ndarray:
    """Feature shares of flagged rows (0 for the ``missing`` sensors); a row the model cannot explain gets none
    (its score still stands)."""
    try:
        with np.errstate(all="ignore"):
            raw = pipeline.contributions_without(X, missing) if missing else pipeline.contributions(X)
            shares = np.asarray(raw, dtype=np.float64)
        if np.isfinite(shares).all():
            return shares
        log.error("the model gave non-finite feature shares for %d flagged rows; their alerts name no feature", len(X))
    except Exception:
        log.exception("the model could not explain %d flagged rows; their alerts name no feature", len(X))
    return np.zeros(X.shape)


def _device_of(record: Any) -> str | None:
    device = record.get("device") if isinstance(record, dict) else None
    return device if isinstance(device, str) else None


def _set_feedback_floor(slot: ModelSlot, device: str, state: AlarmState) -> float:
    """Put the device's feedback threshold, capped by the guard, under its alarm-stage level; return the threshold.

    The floor is the lower of the operators' threshold and the guard (``guard_margin`` × the model's
    threshold), so feedback never hides a reading above the guard.
    """
    threshold, guard = slot.calibration.levels(device, slot.threshold)
    floor = min(threshold, guard)
    state.floor = floor if floor > slot.threshold else None
    return threshold


def _fast_vector(values: dict[str, Any], features: list[str], feature_set: frozenset[str]) -> list[float] | None:
    """The readings in model order when they are exactly the model's sensors with finite plain numbers, else None.

    This is the common case, checked in a few microseconds; anything else goes through
    :func:`vigil.validation.check_record`, which finds and words the problem.
    """
    if len(values) != len(features) or values.keys() != feature_set:
        return None
    row = [values[name] for name in features]
    for value in row:
        kind = type(value)
        if (kind is not float and kind is not int) or not math.isfinite(value):
            return None
    return row


def _iso(ts: float) -> str:
    if not math.isfinite(ts):
        return ""
    return format_time(datetime.fromtimestamp(ts, tz=UTC))


def _missing_readings(reading: Reading) -> str:
    """The null readings of a record with the source's reason for each, as words; empty when there is none."""
    quality = reading.quality or {}
    missing = [name for name, value in reading.values.items() if value is None]
    return ", ".join(f"{name!r} ({quality.get(name, 'null, no reason given')})" for name in missing)
