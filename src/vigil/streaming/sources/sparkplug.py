"""MQTT Sparkplug B source: a host application that turns edge nodes' births and data into Vigil records.

It subscribes to ``spBv1.0/<group>/#`` and keeps, per edge node, what the Sparkplug B 3.0 host rules need:

- **Births** (NBIRTH, DBIRTH) declare every metric with its name, data type, value and optional alias; later
  NDATA/DDATA messages may name a metric by its alias only, and send only the metrics that changed. The
  source keeps each device's last values since its birth, so every data message gives one complete record of
  the asset's mapped metrics at the payload's time stamp.
- **Sequence numbers** (0-255, shared by a node and its devices): a message whose ``seq`` is not the next one
  means a message was lost, so the values held may be stale. The node's values are dropped, its assets are
  reported with a gap, and an NCMD ``Node Control/Rebirth`` asks it for new births; nothing is scored for it
  until they come (no record is assembled from values that may be stale). Data from a node whose birth was
  not seen (the service started after it) asks for a rebirth the same way. Requests are rate limited.
- **Deaths**: an NDEATH whose ``bdSeq`` matches the node's birth (an older session's will is ignored), or a
  DDEATH, reports the node's or device's assets offline and drops their values.
- A payload that is not Sparkplug B protobuf becomes an ``invalid_payload`` dead letter with the reason; a
  metric that is null, of a non-numeric type, or absent from the birth leaves its sensor without a value: a
  null reading with the reason (:mod:`vigil.streaming.sources.submission`), which the runtime's missing-value
  policy handles. The source keeps running in every case.

Each edge node, or device of an edge node, is one asset (:class:`SparkplugAsset`): its Vigil device id, its
metric → sensor mapping and its model. Unlisted nodes and devices are served as ``<node>.<device>`` with every
numeric metric under its own name, unless ``unlisted=False``.

Sparkplug B messages are QoS 0 (data) or QoS 1 (deaths) in a clean session, so this source does not hold
acknowledgements back as :class:`~vigil.streaming.sources.mqtt.MqttIngest` does: after a lost connection the births
it asks for restore the state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from vigil.errors import InvalidInputError
from vigil.streaming.messages import Rejection
from vigil.streaming.sources.mqtt import MqttOptions, connect_in_background, connect_options, disconnect, make_client
from vigil.streaming.sources.sparkplug_codec import (
    BDSEQ_METRIC,
    NAMESPACE,
    NUMERIC_DATATYPES,
    MetricUpdate,
    Payload,
    Topic,
    decode,
    metric_number,
    parse_topic,
    rebirth_command,
)
from vigil.streaming.sources.submission import SourceRecord, submit_record

__all__ = ["SparkplugAsset", "SparkplugIngest", "SparkplugOptions"]

log = logging.getLogger(__name__)

#: Metric name prefixes of an edge node's own controls and properties: not sensors unless mapped explicitly.
CONTROL_PREFIXES = ("Node Control/", "Device Control/", "Node Info/", "Properties/")
#: Gaps remembered per asset for :meth:`SparkplugIngest.status`.
GAPS_KEPT = 20


@dataclass(frozen=True)
class SparkplugAsset:
    """One asset fed by an edge node (``device=None``) or by one device of an edge node.

    Parameters
    ----------
    edge_node : str
        The edge node id, as in the topic.
    device : str, optional
        The device id; None for the edge node's own metrics (NBIRTH/NDATA).
    asset : str, optional
        The Vigil device id; default ``<edge node>.<device>`` (or the edge node id).
    sensors : mapping of str to str
        Vigil sensor name → Sparkplug metric name (as a plant file's ``[assets.NAME.map]``). Empty: every
        numeric metric of the birth, under its own name.
    asset_type : str, optional
        The model that scores the asset (else the runtime's routes decide).
    """

    edge_node: str
    device: str | None = None
    asset: str | None = None
    sensors: Mapping[str, str] = field(default_factory=dict)
    asset_type: str | None = None

    @property
    def name(self) -> str:
        """The asset's Vigil device id."""
        if self.asset is not None:
            return self.asset
        return self.edge_node if self.device is None else f"{self.edge_node}.{self.device}"


@dataclass(frozen=True)
class SparkplugOptions:
    """What the Sparkplug B source subscribes to and how it maps edge nodes and devices to assets.

    Parameters
    ----------
    group : str
        The Sparkplug group id; the source subscribes to ``spBv1.0/<group>/#``.
    broker : MqttOptions
        How to reach the broker (URL, credentials, TLS, client id, back-off); its topics are not used.
    assets : sequence of SparkplugAsset
    unlisted : bool
        Also serve edge nodes and devices that no asset names (as ``<node>.<device>``, every numeric metric).
    rebirth_interval : float
        At most one rebirth request per edge node in this many seconds.
    """

    group: str
    broker: MqttOptions = field(default_factory=lambda: MqttOptions(client_id="vigil-sparkplug"))
    assets: tuple[SparkplugAsset, ...] = ()
    unlisted: bool = True
    rebirth_interval: float = 5.0

    def __post_init__(self) -> None:
        if not self.group or any(c in self.group for c in "/+#"):
            msg = f"Sparkplug group id {self.group!r} must be non-empty, without '/', '+' or '#'"
            raise InvalidInputError(msg)
        seen: dict[tuple[str, str | None], SparkplugAsset] = {}
        for asset in self.assets:
            key = (asset.edge_node, asset.device)
            if key in seen:
                where = asset.edge_node if asset.device is None else f"{asset.edge_node}/{asset.device}"
                msg = f"Sparkplug {where} is mapped twice (to {seen[key].name!r} and {asset.name!r})"
                raise InvalidInputError(msg)
            seen[key] = asset

    @property
    def topic(self) -> str:
        return f"{NAMESPACE}/{self.group}/#"


@dataclass
class _Entity:
    """An edge node's or device's state since its birth: aliases, data types and last values."""

    aliases: dict[int, str] = field(default_factory=dict)
    datatypes: dict[str, int] = field(default_factory=dict)
    values: dict[str, float | str] = field(default_factory=dict)  # a str is the reason there is no number


@dataclass
class _Node:
    born: bool = False
    bdseq: int | None = None
    next_seq: int = 0
    own: _Entity = field(default_factory=_Entity)
    devices: dict[str, _Entity] = field(default_factory=dict)
    last_rebirth_request: float = float("-inf")


@dataclass
class _AssetState:
    online: bool = False
    since: float | None = None
    reason: str = "no birth certificate seen yet"
    records: int = 0
    last_time: float | None = None
    gaps: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=GAPS_KEPT))
    gap_started: float | None = None


class SparkplugIngest:
    """Feed a :class:`~vigil.streaming.runtime.Runtime` from Sparkplug B edge nodes.

    Parameters
    ----------
    runtime : Runtime
    options : SparkplugOptions
    on_done : callable, optional
        Called with each record's outcomes once the runtime has committed them (for measurements).
    """

    def __init__(
        self, runtime: Any, options: SparkplugOptions, *, on_done: Callable[[list[Any]], None] | None = None
    ) -> None:
        self.runtime = runtime
        self.options = options
        self.on_done = on_done
        self.host, self.port, _ = connect_options(options.broker)
        self._by_key = {(a.edge_node, a.device): a for a in options.assets}
        self._nodes: dict[str, _Node] = {}
        self._assets: dict[str, _AssetState] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.connections = 0
        self.client = make_client(options.broker)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> SparkplugIngest:
        """Connect in the background (retrying with back-off) and start the network thread."""
        connect_in_background(self.client, self.options.broker, persistent=False)
        return self

    def stop(self) -> None:
        disconnect(self.client)
        self._connected.clear()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged the subscription."""
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def assets(self) -> dict[str, dict[str, Any]]:
        """Each asset seen or configured: online, since when, why (when offline), records sent and its gaps."""
        with self._lock:
            names = {a.name for a in self.options.assets} | set(self._assets)
            out = {}
            for name in sorted(names):
                state = self._assets.get(name) or _AssetState()
                out[name] = {
                    "online": state.online,
                    "since": state.since,
                    "reason": "" if state.online else state.reason,
                    "records": state.records,
                    "last_time": state.last_time,
                    "gaps": list(state.gaps),
                }
            return out

    def status(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._counts)
        return {
            "sparkplug": {
                "connected": self.connected,
                "topic": self.options.topic,
                "connections": self.connections,
                "counts": counts,
                "assets": self.assets(),
            }
        }

    # -- callbacks (paho's network thread) -----------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the Sparkplug connection: %s", self.host, self.port, reason_code)
            return
        self.connections += 1
        client.subscribe(self.options.topic, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("the broker refused the Sparkplug subscription %s: %s", self.options.topic, reason_codes)
            return
        self._connected.set()
        with self._lock:
            # What happened while away is unknown: every node's state is stale until it is born again.
            for node_id, node in self._nodes.items():
                if node.born:
                    self._forget(node_id, node, "the connection to the broker was lost", gap=True)
                self._request_rebirth(node_id, node)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected.clear()
        if reason_code.is_failure:
            log.warning("lost the MQTT broker %s:%d (%s); reconnecting", self.host, self.port, reason_code)
        reason = "the connection to the broker was lost" if reason_code.is_failure else "the source stopped"
        with self._lock:
            # Whatever the nodes send from now on is unseen: their gap starts here, until their next births.
            for node_id, node in self._nodes.items():
                if node.born:
                    self._forget(node_id, node, reason, gap=True)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        source = f"sparkplug:{message.topic}"
        try:
            with self._lock:
                records = self._handle(message.topic, bytes(message.payload), source)
        except Exception as exc:  # a defect here must not stop the subscription
            log.exception("a Sparkplug message on %s could not be handled", message.topic)
            self._dead_letter("internal", f"{message.topic}: the message could not be handled: {exc!r}", source, b"")
            return
        for record in records:
            submit_record(self.runtime, record, source, on_done=self.on_done)

    # -- the host application's state machine (under the lock) ---------------------------------------

    def _handle(self, topic_text: str, raw: bytes, source: str) -> list[SourceRecord]:
        try:
            topic = parse_topic(topic_text)
        except InvalidInputError as exc:
            self._counts["invalid_topic"] += 1
            self._dead_letter("invalid_payload", str(exc), source, raw)
            return []
        if topic.message_type in ("NCMD", "DCMD"):
            return []  # commands to edge nodes (our own rebirth requests among them)
        try:
            payload = decode(raw)
        except InvalidInputError as exc:
            self._counts["undecodable"] += 1
            device = self._asset_of(topic)
            self._dead_letter("invalid_payload", f"{topic_text}: {exc}", source, raw, device=device)
            return []
        self._counts[topic.message_type] += 1
        node = self._nodes.setdefault(topic.edge_node, _Node())
        kind = topic.message_type
        if kind == "NBIRTH":
            return self._node_birth(topic, node, payload)
        if kind == "NDEATH":
            self._node_death(topic, node, payload)
            return []
        if not self._in_sequence(topic, node, payload):
            return []
        if kind == "DBIRTH":
            return self._device_birth(topic, node, payload)
        if kind == "DDEATH":
            entity = node.devices.pop(topic.device or "", None)
            if entity is not None and self._offline(self._asset_for(topic.edge_node, topic.device), "DDEATH", gap=True):
                log.warning("Sparkplug device %s/%s is offline: DDEATH", topic.edge_node, topic.device)
            return []
        entity = node.own if kind == "NDATA" else node.devices.get(topic.device or "")
        if entity is None:  # DDATA of a device whose DBIRTH was not seen
            self._counts["unborn_device"] += 1
            self._forget(topic.edge_node, node, f"DDATA from {topic.device!r} before its DBIRTH", gap=True)
            self._request_rebirth(topic.edge_node, node)
            return []
        unknown = self._apply(entity, payload, birth=False)
        if unknown:
            # The birth this source holds does not describe what the node sends: ask for a new one.
            reason = f"{topic_text}: {', '.join(unknown)} not in the birth certificate"
            self._dead_letter("invalid_payload", reason, source, raw, device=self._asset_of(topic))
            self._forget(topic.edge_node, node, reason, gap=True)
            self._request_rebirth(topic.edge_node, node)
            return []
        record = self._record(topic, entity, payload)
        return [] if record is None else [record]

    def _node_birth(self, topic: Topic, node: _Node, payload: Payload) -> list[SourceRecord]:
        fresh = _Node(born=True, last_rebirth_request=node.last_rebirth_request)
        fresh.next_seq = ((payload.seq if payload.seq is not None else 0) + 1) % 256
        for metric in payload.metrics:
            if metric.name == BDSEQ_METRIC and isinstance(metric.value, int):
                fresh.bdseq = metric.value
        for device in node.devices:  # a node's birth voids its devices' births: DBIRTHs follow
            # Not a gap by itself (a requested rebirth loses nothing): a loss that caused it already opened one.
            self._offline(self._asset_for(topic.edge_node, device), "NBIRTH without a DBIRTH yet", gap=False)
        self._nodes[topic.edge_node] = fresh
        self._apply(fresh.own, payload, birth=True)
        record = self._record(topic, fresh.own, payload, birth=True)
        return [] if record is None else [record]

    def _device_birth(self, topic: Topic, node: _Node, payload: Payload) -> list[SourceRecord]:
        entity = _Entity()
        node.devices[topic.device or ""] = entity
        self._apply(entity, payload, birth=True)
        record = self._record(topic, entity, payload, birth=True)
        return [] if record is None else [record]

    def _node_death(self, topic: Topic, node: _Node, payload: Payload) -> None:
        bdseq = next((m.value for m in payload.metrics if m.name == BDSEQ_METRIC), None)
        if node.born and node.bdseq is not None and bdseq is not None and bdseq != node.bdseq:
            self._counts["stale_death"] += 1  # the will of an earlier session, delivered late
            return
        self._forget(topic.edge_node, node, "NDEATH", gap=True)

    def _in_sequence(self, topic: Topic, node: _Node, payload: Payload) -> bool:
        if not node.born:
            self._counts["before_birth"] += 1
            self._request_rebirth(topic.edge_node, node)
            return False
        if payload.seq != node.next_seq:
            self._counts["sequence_gaps"] += 1
            reason = f"sequence gap: expected seq {node.next_seq}, got {payload.seq} in {topic.message_type}"
            log.warning("Sparkplug edge node %s: %s; requesting a rebirth", topic.edge_node, reason)
            self._forget(topic.edge_node, node, reason, gap=True)
            self._request_rebirth(topic.edge_node, node)
            return False
        node.next_seq = (node.next_seq + 1) % 256
        return True

    def _apply(self, entity: _Entity, payload: Payload, *, birth: bool) -> list[str]:
        """Update the entity's values; the labels of metrics whose alias or name the birth did not declare."""
        unknown = []
        for metric in payload.metrics:
            if metric.is_historical:
                self._counts["historical_skipped"] += 1  # late values for a historian, not the live state
                continue
            name = metric.name
            if name is None and metric.alias is not None:
                name = entity.aliases.get(metric.alias)
                if name is not None:
                    metric = replace(metric, name=name)  # so that reasons name the metric, not its alias
            if name is None:
                unknown.append(metric.label())
                continue
            if birth:
                if metric.alias is not None:
                    entity.aliases[metric.alias] = name
                if metric.datatype is not None:
                    entity.datatypes[name] = metric.datatype
            elif name not in entity.datatypes:
                unknown.append(metric.label())
                continue
            entity.values[name] = self._number(metric, entity.datatypes.get(name))
        return unknown

    @staticmethod
    def _number(metric: MetricUpdate, datatype: int | None) -> float | str:
        return metric_number(metric, metric.datatype if metric.datatype is not None else datatype)

    def _record(self, topic: Topic, entity: _Entity, payload: Payload, *, birth: bool = False) -> SourceRecord | None:
        asset = self._asset_for(topic.edge_node, topic.device)
        if asset is None:
            self._counts["unlisted_ignored"] += 1
            return None
        mapping = dict(asset.sensors) or {
            name: name
            for name, datatype in entity.datatypes.items()
            if datatype in NUMERIC_DATATYPES and name != BDSEQ_METRIC and not name.startswith(CONTROL_PREFIXES)
        }
        if not mapping:
            return None  # an edge node that only carries its controls is not an asset
        stamp = payload.timestamp_ms
        if stamp is None:
            stamp = max((m.timestamp_ms for m in payload.metrics if m.timestamp_ms is not None), default=None)
        state = self._state(asset.name)
        if not state.online and birth:  # the gap ends at the birth's own time, the first record's time
            self._online(state, time.time() if stamp is None else stamp / 1000.0)
        if stamp is None:
            reason = f"{topic.message_type} of {asset.name} has no time stamp (payload or metric)"
            self._dead_letter("invalid_record", reason, _source(topic), b"", device=asset.name)
            return None
        where = topic.message_type.replace("DATA", "BIRTH")
        readings: dict[str, float] = {}
        missing: dict[str, str] = {}
        for sensor, metric_name in mapping.items():
            value = entity.values.get(metric_name)
            if value is None:
                missing[sensor] = f"metric {metric_name!r} is not in the {where}"
            elif isinstance(value, str):
                missing[sensor] = value
            else:
                readings[sensor] = value
        state.records += 1
        state.last_time = stamp / 1000.0
        return SourceRecord(asset.name, stamp / 1000.0, readings, missing, asset.asset_type)

    # -- assets ---------------------------------------------------------------------------------------

    def _asset_for(self, edge_node: str, device: str | None) -> SparkplugAsset | None:
        asset = self._by_key.get((edge_node, device))
        if asset is None and self.options.unlisted:
            asset = SparkplugAsset(edge_node, device)
        return asset

    def _asset_of(self, topic: Topic) -> str | None:
        asset = self._asset_for(topic.edge_node, topic.device)
        return None if asset is None else asset.name

    def _state(self, name: str) -> _AssetState:
        return self._assets.setdefault(name, _AssetState())

    def _online(self, state: _AssetState, now: float) -> None:
        if state.gap_started is not None:
            state.gaps.append({"from": state.gap_started, "to": now, "reason": state.reason})
            state.gap_started = None
        state.online, state.since, state.reason = True, now, ""

    def _offline(self, asset: SparkplugAsset | None, reason: str, *, gap: bool) -> bool:
        """Report the asset offline; True if it was online."""
        state = None if asset is None else self._assets.get(asset.name)
        if asset is None or state is None or not state.online:
            return False
        state.online, state.since, state.reason = False, time.time(), reason
        if gap:
            state.gap_started = state.since
        return True

    def _forget(self, edge_node: str, node: _Node, reason: str, *, gap: bool) -> None:
        """Drop a node's values (they may be stale) and report its assets offline until its next birth."""
        went = int(self._offline(self._asset_for(edge_node, None), reason, gap=gap))
        for device in node.devices:
            went += self._offline(self._asset_for(edge_node, device), reason, gap=gap)
        if went:  # one line per node, not one per device
            log.warning("Sparkplug edge node %s: %d asset(s) offline: %s", edge_node, went, reason)
        node.born = False
        node.own = _Entity()
        node.devices = {}

    def _request_rebirth(self, edge_node: str, node: _Node) -> None:
        now = time.monotonic()
        if now - node.last_rebirth_request < self.options.rebirth_interval or not self.connected:
            return
        node.last_rebirth_request = now
        self._counts["rebirth_requests"] += 1
        topic = f"{NAMESPACE}/{self.options.group}/NCMD/{edge_node}"
        self.client.publish(topic, rebirth_command(int(time.time() * 1000)), qos=0)

    def _dead_letter(self, kind: str, reason: str, source: str, raw: bytes, *, device: str | None = None) -> None:
        # Protobuf is binary: the excerpt is hexadecimal, so the dead letter shows the bytes that arrived.
        try:
            self.runtime.reject(Rejection(kind, reason, device), source, raw[:1024].hex())
        except Exception:
            log.exception("could not queue a dead letter from %s: %s", source, reason)


def _source(topic: Topic) -> str:
    levels = [NAMESPACE, topic.group, topic.message_type, topic.edge_node]
    return "sparkplug:" + "/".join(levels if topic.device is None else [*levels, topic.device])
