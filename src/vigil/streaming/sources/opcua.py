"""OPC UA source (asyncua): data-change subscriptions turned into one Vigil record per asset per sampling tick.

The source opens one session to one server, creates one subscription and one monitored item per mapped node,
with the plant's sampling interval: the *server* samples the nodes and reports changes; Vigil never polls.
OPC UA reports a value only when it changes, so the source holds each node's latest ``DataValue`` and, on
every tick of the sampling interval (aligned to multiples of it on the wall clock), assembles one record per
asset from what it holds::

    {"device": "pump-1", "time": 1717243200.0, "readings": {"temp_c": 41.2, "flow_m3h": null},
     "quality": {"flow_m3h": "BadSensorFailure (node ns=2;s=P1.Flow)"}}

What a value becomes:

- ``Good`` or ``Uncertain`` status and a number: the number;
- ``Bad`` status: ``null``, and the status name with the node id in ``quality``; the runtime applies the
  sensor's missing-value policy (dead letter by default) — a Bad value is never a number;
- a node that holds no number (a string, a boolean, an array), a node id the server does not know, or a node
  that has not reported since the subscription started (after ``first_value_grace``): ``null`` with the
  reason in ``quality``;
- a value older than ``max_age`` seconds, when set: ``null`` with its age.

Records are sent only while the session is up. When the connection drops, no tick produces a record (nothing
is carried over the outage, nothing is invented); the source reconnects with exponential back-off between
``reconnect_min`` and ``reconnect_max`` seconds, subscribes again, and each asset's first record afterwards
closes a *gap* that is logged and kept in :meth:`OpcUaSource.status` with its start, end, missed ticks and
reason. Held values are dropped on disconnection, so a record after reconnection carries only values the new
subscription reported.

The asyncio loop of the client runs in its own thread; records reach the runtime through
:meth:`~vigil.streaming.runtime.Runtime.enqueue`, which blocks (back-pressure) while the runtime's queue is
full, off the loop so keep-alives go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.errors import InvalidInputError
from vigil.streaming.dead_letters import DeadLetter
from vigil.times import format_time

try:
    from asyncua import Client, ua
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    _msg = "the OPC UA source needs asyncua: pip install 'vigil[plant]'"
    raise ImportError(_msg) from exc

__all__ = ["OpcUaAsset", "OpcUaOptions", "OpcUaSource", "parse_node_id"]

log = logging.getLogger(__name__)

#: Closed gaps remembered per asset for :meth:`OpcUaSource.status`.
_GAPS_KEPT = 20
#: Commit latencies remembered for the lag percentiles of :meth:`OpcUaSource.status`.
_LAGS_KEPT = 10_000


def parse_node_id(text: str, *, where: str) -> str:
    """Check an OPC UA node id (``ns=2;s=Pump1.Temp``, ``i=2258``...) and return it in canonical form.

    Examples
    --------
    >>> parse_node_id("ns=2;s=Pump1.Temp", where="pump-1.temp_c")
    'ns=2;s=Pump1.Temp'
    >>> parse_node_id("Pump1.Temp", where="pump-1.temp_c")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: pump-1.temp_c: 'Pump1.Temp' is not an OPC UA node id (write for example ns=2;s=Pump1.Temp or ns=2;i=1001)
    """  # noqa: E501
    try:
        return ua.NodeId.from_string(text).to_string()
    except Exception as exc:  # asyncua raises several kinds for malformed text
        msg = f"{where}: {text!r} is not an OPC UA node id (write for example ns=2;s=Pump1.Temp or ns=2;i=1001)"
        raise InvalidInputError(msg) from exc


@dataclass(frozen=True)
class OpcUaAsset:
    """One asset fed by the server: its device id, its sensors' node ids, and optionally its model.

    Parameters
    ----------
    name : str
        The device id of its records.
    nodes : mapping of str to str
        Sensor name -> node id.
    asset_type : str, optional
        Written into each record as ``asset_type`` (the model that scores it).
    """

    name: str
    nodes: Mapping[str, str]
    asset_type: str | None = None


@dataclass(frozen=True)
class OpcUaOptions:
    """How to reach one OPC UA server and what to subscribe to.

    Parameters
    ----------
    endpoint : str
        ``opc.tcp://HOST:PORT/PATH``.
    assets : sequence of OpcUaAsset
    sampling_interval : float
        Seconds between samples the server takes of each node, and between the records of an asset.
    publishing_interval : float, optional
        Seconds between the server's notification messages; default the sampling interval.
    username, password : str, optional
        User-name identity token (otherwise anonymous).
    security : str, optional
        asyncua's security string, ``Policy,Mode,client_cert.pem,client_key.pem[,server_cert.der]``, for
        example ``Basic256Sha256,SignAndEncrypt,cert.pem,key.pem``; default no security.
    timeout : float
        Seconds each request may take.
    reconnect_min, reconnect_max : float
        The back-off range between connection attempts, in seconds. The default ceiling of 5 s keeps the
        first record after an outage of any length within 10 s of the server being back (a wait of at most
        5 s, then a session and a subscription, then one tick).
    first_value_grace : float, optional
        Seconds after subscribing before an asset whose nodes have not all reported is sent with those
        sensors missing; default two sampling intervals.
    max_age : float, optional
        A held value older than this many seconds is reported missing; default None (OPC UA reports only
        changes, so an unchanged value stays current while the subscription lives).
    """

    endpoint: str
    assets: Sequence[OpcUaAsset]
    sampling_interval: float = 1.0
    publishing_interval: float | None = None
    username: str | None = None
    password: str | None = None
    security: str | None = None
    timeout: float = 4.0
    reconnect_min: float = 1.0
    reconnect_max: float = 5.0
    first_value_grace: float | None = None
    max_age: float | None = None

    def __repr__(self) -> str:  # never show the password
        return f"OpcUaOptions(endpoint={self.endpoint!r}, assets={len(self.assets)}, user={self.username!r})"


@dataclass
class _Held:
    value: float | None
    reason: str | None
    at: float  # monotonic time of the notification


@dataclass
class _AssetState:
    asset: OpcUaAsset
    held: dict[str, _Held] = field(default_factory=dict)
    records: int = 0
    last_time: float | None = None
    gap_start: float | None = None
    gap_reason: str = ""
    gaps: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_GAPS_KEPT))
    gaps_total: int = 0


class OpcUaSource:
    """Feed a :class:`~vigil.streaming.runtime.Runtime` from one OPC UA server (see the module docstring).

    Parameters
    ----------
    runtime : Runtime
        Anything with ``enqueue(raw, source, device_hint=..., on_done=..., timeout=...)``.
    options : OpcUaOptions

    Raises
    ------
    InvalidInputError
        A malformed node id, a node mapped to two sensors, an asset declared twice, or a non-positive interval.
    """

    def __init__(self, runtime: Any, options: OpcUaOptions) -> None:
        self.runtime = runtime
        self.options = options
        self.source = f"opcua:{options.endpoint}"
        if not options.endpoint.startswith("opc.tcp://"):
            msg = f"OPC UA endpoint must start with opc.tcp://, got {options.endpoint!r}"
            raise InvalidInputError(msg)
        if not (options.sampling_interval > 0 and math.isfinite(options.sampling_interval)):
            msg = f"OPC UA sampling interval must be a positive number of seconds, got {options.sampling_interval!r}"
            raise InvalidInputError(msg)
        self._assets: dict[str, _AssetState] = {}
        self._nodes: dict[str, tuple[str, str]] = {}  # node id -> (asset, sensor)
        for asset in options.assets:
            if asset.name in self._assets:
                msg = f"{self.source}: asset {asset.name!r} is declared twice"
                raise InvalidInputError(msg)
            if not asset.nodes:
                msg = f"{self.source}: asset {asset.name!r} maps no node"
                raise InvalidInputError(msg)
            self._assets[asset.name] = _AssetState(asset)
            for sensor, text in asset.nodes.items():
                node = parse_node_id(text, where=f"{self.source} {asset.name}.{sensor}")
                if node in self._nodes:
                    other = ".".join(self._nodes[node])
                    msg = f"{self.source}: node {node} is mapped to both {other} and {asset.name}.{sensor}"
                    raise InvalidInputError(msg)
                self._nodes[node] = (asset.name, sensor)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._connected = threading.Event()
        self._subscribed_at = 0.0
        self.connections = 0
        self.last_error = ""
        self._outcomes = {"records": 0, "scored": 0, "dead_letters": 0}
        self._lags: deque[float] = deque(maxlen=_LAGS_KEPT)
        self._late_ticks = 0

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> OpcUaSource:
        """Connect in the background (retrying with back-off) and start sending records."""
        if self._thread is None:
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(ready,), name="vigil-opcua", daemon=True)
            self._thread.start()
            ready.wait(10.0)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the session and stop the thread; records already handed to the runtime are processed there."""
        if self._thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout)
        self._thread = None
        self._connected.clear()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def status(self) -> dict[str, Any]:
        """Connection, counters, the commit lag, and per asset its records, open gap and recent gaps."""
        with self._lock:
            lags = sorted(self._lags)
            assets = {}
            for name, state in self._assets.items():
                assets[name] = {
                    "records": state.records,
                    "last_time": None if state.last_time is None else _iso(state.last_time),
                    "gap_open_since": None if state.gap_start is None else _iso(state.gap_start),
                    "gap_reason": state.gap_reason if state.gap_start is not None else "",
                    "gaps": list(state.gaps),
                    "gaps_total": state.gaps_total,
                }
            return {
                "kind": "opcua",
                "endpoint": self.options.endpoint,
                "connected": self.connected,
                "connections": self.connections,
                "last_error": self.last_error,
                "sampling_interval": self.options.sampling_interval,
                "late_ticks": self._late_ticks,
                **self._outcomes,
                "lag_p50_s": _quantile(lags, 0.5),
                "lag_p99_s": _quantile(lags, 0.99),
                "assets": assets,
            }

    # -- the loop thread -----------------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        except Exception:  # the service must outlive a bug in one source
            log.exception("%s: the source stopped unexpectedly", self.source)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stopping = stopping = asyncio.Event()
        ready.set()
        delay = self.options.reconnect_min
        while not stopping.is_set():
            lost = asyncio.Event()
            client = self._client(lost)
            reason = ""
            try:
                await client.connect(auto_reconnect=False)
                await self._subscribe(client)
                self.connections += 1
                self._connected.set()
                log.info("%s: connected and subscribed to %d nodes", self.source, len(self._nodes))
                delay = self.options.reconnect_min
                reason = await self._tick_until(client, lost, stopping)
            except Exception as exc:  # unreachable, refused, or lost during set-up: retry after the back-off
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                log.warning("%s: %s; retrying in %.1f s", self.source, reason, delay)
            finally:
                self._connected.clear()
                self._lose_values(reason or "the source stopped")
                self.last_error = reason
                await _quietly(client.disconnect(), self.options.timeout)
            if stopping.is_set():
                break
            try:
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, self.options.reconnect_max)

    def _client(self, lost: asyncio.Event) -> Any:
        options = self.options
        # The watchdog probes the session at least once per tick, so a silent loss stops the records soon.
        watchdog = max(0.1, min(1.0, options.sampling_interval))
        client = Client(options.endpoint, timeout=options.timeout, watchdog_intervall=watchdog)
        if options.username is not None:
            client.set_user(options.username)
        if options.password is not None:
            client.set_password(options.password)

        async def on_lost(exc: Exception) -> None:
            lost.set()

        client.connection_lost_callback = on_lost
        return client

    async def _subscribe(self, client: Any) -> None:
        options = self.options
        if options.security:
            await client.set_security_string(options.security)
        publishing = options.publishing_interval or options.sampling_interval
        subscription = await client.create_subscription(publishing * 1000.0, _Handler(self))
        nodes = [client.get_node(node) for node in self._nodes]
        results = await subscription.subscribe_data_change(
            nodes, sampling_interval=options.sampling_interval * 1000.0, queuesize=1
        )
        now = time.monotonic()
        with self._lock:
            self._subscribed_at = now
            for node, result in zip(self._nodes, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    asset, sensor = self._nodes[node]
                    reason = f"{result.name} (node {node} of {asset}.{sensor} could not be monitored)"
                    log.error("%s: %s", self.source, reason)
                    self._assets[asset].held[sensor] = _Held(None, reason, now)

    async def _tick_until(self, client: Any, lost: asyncio.Event, stopping: asyncio.Event) -> str:
        """Send one record per asset per tick until the connection is lost or the source stops; say why it ended."""
        period = self.options.sampling_interval
        # Ticks are counted, not summed, so their times stay exact multiples of the period.
        k = math.floor(time.time() / period) + 1
        while True:
            try:
                await asyncio.wait_for(_first(lost, stopping), timeout=max(0.0, k * period - time.time()))
            except TimeoutError:
                pass
            if stopping.is_set():
                return "the source stopped"
            if lost.is_set() or client.state.name != "CONNECTED":
                return "the connection to the server was lost"
            records = self._assemble(k * period)
            if records:
                await asyncio.to_thread(self._submit, records)
            k += 1
            behind = math.floor(time.time() / period) + 1 - k
            if behind > 0:  # a slow runtime, a suspended process: skip, never catch up with old ticks
                self._late_ticks += behind
                k += behind

    # -- values --------------------------------------------------------------------------------------

    def _on_value(self, node: str, data_value: Any) -> None:
        where = self._nodes.get(node)
        if where is None:
            return
        asset, sensor = where
        status = data_value.StatusCode
        value = data_value.Value.Value if data_value.Value is not None else None
        if status is not None and status.is_bad():
            held = _Held(None, f"{status.name} (node {node})", time.monotonic())
        elif isinstance(value, bool) or not isinstance(value, int | float):
            kind = type(value).__name__ if value is not None else "no value"
            held = _Held(None, f"node {node} holds {kind} {value!r}, not a number", time.monotonic())
        else:
            held = _Held(float(value), None, time.monotonic())
        with self._lock:
            self._assets[asset].held[sensor] = held

    def _assemble(self, tick: float) -> list[dict[str, Any]]:
        options = self.options
        grace = options.first_value_grace if options.first_value_grace is not None else 2 * options.sampling_interval
        now = time.monotonic()
        waited = now - self._subscribed_at >= grace
        records = []
        with self._lock:
            for name, state in self._assets.items():
                nodes = state.asset.nodes
                if len(state.held) < len(nodes) and not waited:
                    continue  # the subscription's first values are still coming
                readings: dict[str, float | None] = {}
                quality: dict[str, str] = {}
                for sensor, node in nodes.items():
                    held = state.held.get(sensor)
                    if held is None:
                        readings[sensor] = None
                        quality[sensor] = f"no value from node {node} since subscribing"
                    elif held.value is None:
                        readings[sensor] = None
                        quality[sensor] = held.reason or "no value"
                    elif options.max_age is not None and now - held.at > options.max_age:
                        readings[sensor] = None
                        quality[sensor] = f"node {node} has not reported for {now - held.at:.0f} s"
                    else:
                        readings[sensor] = held.value
                record: dict[str, Any] = {"device": name, "time": tick, "readings": readings}
                if state.asset.asset_type is not None:
                    record["asset_type"] = state.asset.asset_type
                if quality:
                    record["quality"] = quality
                records.append(record)
                if state.gap_start is not None:
                    self._close_gap(state, tick)
                state.records += 1
                state.last_time = tick
        return records

    def _close_gap(self, state: _AssetState, tick: float) -> None:
        period = self.options.sampling_interval
        start = state.gap_start if state.gap_start is not None else tick
        missed = max(0, round((tick - start) / period) - 1)
        gap = {"from": _iso(start), "to": _iso(tick), "seconds": round(tick - start, 3), "missed_ticks": missed}
        gap["reason"] = state.gap_reason
        state.gaps.append(gap)
        state.gaps_total += 1
        state.gap_start = None
        log.warning(
            "%s: asset %s had no data from %s to %s (%d ticks missed): %s",
            self.source, state.asset.name, gap["from"], gap["to"], missed, state.gap_reason,
        )  # fmt: skip

    def _lose_values(self, reason: str) -> None:
        """Forget every held value and open a gap per asset (from its last record) until records come back."""
        now = time.time()
        with self._lock:
            for state in self._assets.values():
                state.held.clear()
                if state.gap_start is None:
                    state.gap_start = state.last_time if state.last_time is not None else now
                    state.gap_reason = reason

    def _submit(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            payload = json.dumps(record).encode()
            sent = record["time"]
            self.runtime.enqueue(
                payload, self.source, device_hint=record["device"], on_done=self._done_callback(sent), timeout=None
            )

    def _done_callback(self, sent: float) -> Any:
        def done(outcomes: Sequence[Any]) -> None:
            lag = time.time() - sent
            letters = sum(isinstance(o, DeadLetter) for o in outcomes)
            with self._lock:
                self._lags.append(lag)
                self._outcomes["records"] += len(outcomes)
                self._outcomes["dead_letters"] += letters
                self._outcomes["scored"] += len(outcomes) - letters

        return done


class _Handler:
    """asyncua's data-change callback, handing each value to the source."""

    def __init__(self, source: OpcUaSource) -> None:
        self.source = source

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        try:
            self.source._on_value(node.nodeid.to_string(), data.monitored_item.Value)
        except Exception:  # a malformed notification costs only itself
            log.exception("%s: could not read a notification of %s", self.source.source, node)

    def status_change_notification(self, status: Any) -> None:
        log.info("%s: subscription status %s", self.source.source, status)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _quietly(awaitable: Any, timeout: float) -> None:
    try:
        await asyncio.wait_for(awaitable, timeout=timeout)
    except Exception:  # the session is already gone: nothing to close
        log.debug("closing the OPC UA session failed", exc_info=True)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(ts, tz=UTC))
