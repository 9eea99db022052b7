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

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from vigil.alarms import AlarmPolicy
from vigil.alerts import Alert, AlertEvent, AlertSink, AlertStore, Publisher
from vigil.errors import InvalidInputError, VigilError
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.device_calibration import ThresholdChange
from vigil.streaming.drift import DriftReport, score_drift
from vigil.streaming.messages import Rejection, decode_payload
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
from vigil.streaming.runtime_devices import DeviceTable
from vigil.streaming.runtime_intake import Accepted, RecordChecker, Router, dead_letter, device_of
from vigil.streaming.runtime_metrics import RuntimeMetrics
from vigil.streaming.runtime_scoring import score_batch, set_feedback_floor
from vigil.streaming.runtime_types import Decision, Outcome, Redelivery, RuntimeConfig
from vigil.streaming.runtime_views import device_rows, threshold_view, timeline_rows
from vigil.streaming.sensor_policy import SensorPolicy

__all__ = ["Decision", "Outcome", "Redelivery", "Runtime", "RuntimeConfig"]

log = logging.getLogger(__name__)


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
        self.router = Router(routes, names, max_devices=self.config.max_devices)
        self.routes = self.router.routes
        self._slots: dict[str, ModelSlot] = {name: self._load_slot(name) for name in names}
        self.devices_table = DeviceTable(
            max_devices=self.config.max_devices, timeline_points=self.config.timeline_points
        )
        self.checker = RecordChecker(self.router, self._slots, self.devices_table, self.sensor_policies, self.metrics)
        self._refused: set[tuple[str, str | None]] = set()  # (model, version) activated elsewhere that failed to load
        self._queue: queue.Queue[_Submission | _Control] = queue.Queue(maxsize=self.config.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        started = time.monotonic()
        self._last_flush = self._last_recent_flush = self._last_poll = started
        self._last_drift_check = self._last_counter_flush = started
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
            self.devices_table.declare(device, model, silent_after)

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
                    "routes": self.router.patterns(name),
                }
            )
        return out

    def drift(self, name: str) -> DriftReport:
        """Compare the model's recent scores with its training scores (see :func:`score_drift`)."""
        slot = self._slot(name)
        return score_drift(list(slot.recent_scores), slot.pipeline.train_score_quantiles_)

    def devices(self) -> list[dict[str, Any]]:
        """Every device seen: its model, last time, last score and threshold, and its score statistics."""
        return device_rows(self.devices_table, self._slots, self.sensor_policies)

    def declared_assets(self) -> dict[str, bool]:
        """Each declared asset, by name, and whether it is silent now: what :meth:`devices` says of them, without
        building every device's row (``/metrics`` asks on every scrape)."""
        return self.devices_table.declared()

    def timeline(self, device: str) -> list[dict[str, Any]]:
        """The device's recent points (time, score, threshold, anomaly, the sensor values scored), oldest first."""
        state = self.devices_table.get(device)
        if state is None:
            msg = f"no device {device!r} has sent telemetry since the service started"
            raise InvalidInputError(msg)
        return timeline_rows(state)

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
        groups: dict[str, list[Accepted]] = {}
        check = self.checker.check
        for s_index, sub in enumerate(submissions):
            if sub.rejection is not None:
                letter = dead_letter(sub.rejection, sub.source, sub.raw)
                letters.append(letter)
                outcomes.append([letter])
                continue
            records = sub.records or []
            row: list[Outcome | None] = [None] * len(records)
            outcomes.append(row)
            for r_index, record in enumerate(records):
                where = f"record {r_index}" if len(records) > 1 else "record"
                try:
                    accepted = check(record, sub.device_hint, where)
                except Exception as exc:  # a record the checks did not foresee costs only itself
                    log.exception("checking %s from %s failed unexpectedly", where, sub.source)
                    accepted = Rejection("internal", f"{where}: could not be checked: {exc!r}", device_of(record))
                if type(accepted) is Accepted:
                    accepted.submission, accepted.index = s_index, r_index
                    groups.setdefault(accepted.model, []).append(accepted)
                elif isinstance(accepted, Redelivery):  # already processed: acknowledged, counted, not scored again
                    row[r_index] = accepted
                    redelivered += 1
                else:
                    letter = dead_letter(accepted, sub.source, record)  # type: ignore[arg-type]
                    letters.append(letter)
                    row[r_index] = letter

        events: list[AlertEvent] = []
        scored: Counter[str] = Counter()
        for model, pending in groups.items():
            results = score_batch(self._slots[model], pending, self.devices_table, events)
            for item, result in zip(pending, results, strict=True):
                outcome: Decision | DeadLetter
                if isinstance(result, Rejection):
                    outcome = dead_letter(result, submissions[item.submission].source, item.reading)
                    letters.append(outcome)
                else:
                    scored[model] += 1
                    outcome = result
                outcomes[item.submission][item.index] = outcome

        if not self.sink.deliver(events, letters, stop=self._stop):
            return  # stopping while the store is down: leave the submissions unacknowledged
        self.devices_table.count_letters(letters, self.router.route)
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

    # -- housekeeping ----------------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        self.devices_table.watch_silence(now)
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
        config = self.config
        for last, period, action in (
            ("_last_counter_flush", config.counter_flush_seconds, self._flush_counts),
            ("_last_recent_flush", config.recent_flush_seconds, self._save_recent),
            ("_last_poll", config.registry_poll_seconds, self._poll_registry),
            ("_last_drift_check", config.drift_check_seconds, self._watch_drift),
        ):
            if now - getattr(self, last) >= period:
                setattr(self, last, now)
                action()

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
        self.devices_table.forget_history(new.name)
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
            set_feedback_floor(slot, change.device, slot.alarm_states[change.device])
        log.info(
            "device %s: threshold %.4g -> %.4g (%s by %s: %s)",
            change.device, change.old, change.new, change.action, change.who, change.reason,
        )  # fmt: skip

    def _threshold_slot(self, device: str) -> ModelSlot | None:
        """The served model version whose thresholds apply to ``device``: its model's, or one that has its history."""
        seen = self.devices_table.get(device)
        if seen is not None and seen.model in self._slots:
            return self._slots[seen.model]
        return next((s for s in self._slots.values() if s.calibration.history(device)), None)

    def _threshold_view(self, device: str) -> dict[str, Any] | None:
        slot = self._threshold_slot(device)
        return None if slot is None else threshold_view(device, slot, self.devices_table.get(device))

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
        held = {state.name for state in self.devices_table}
        for slot in self._slots.values():
            held.update(slot.tracker.devices)
        return held

    def release_devices(self, devices: Iterable[str]) -> int:
        """Forget these devices' state without closing their open alerts; return how many were held."""
        devices = list(devices)
        released = self.devices_table.release(devices)
        for slot in self._slots.values():
            for device in devices:
                if slot.tracker.forget(device):
                    released.add(device)
                slot.open_devices.discard(device)
        return len(released)

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
        self.devices_table.add(alert.device, slot.name, last_ts=ts, committed_from=committed_from)
        slot.last_event_ts = max(slot.last_event_ts or ts, ts)
        slot.last_event_mono = time.monotonic()
        return True

    def reload_calibration(self) -> None:
        """Read the per-device thresholds of every served version again (another worker may have changed them)."""
        for slot in self._slots.values():
            read_calibration(calibration_path(self.registry, slot.name, slot.version), slot.calibration, slot.threshold)

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
