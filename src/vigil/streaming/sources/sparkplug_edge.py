"""A minimal Sparkplug B edge node: to try a plant setup without hardware, and to test and measure the source.

It does what Sparkplug B 3.0 asks of an edge node, and no more: an NDEATH will registered on connect, an
NBIRTH (``seq`` 0, ``bdSeq``, ``Node Control/Rebirth``) and one DBIRTH per device with every metric's name,
alias, data type and value; DDATA by alias with the metrics that changed; a sequence number shared by the
node and its devices; new births when an NCMD asks for a rebirth; DDEATH and NDEATH.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from vigil.streaming.sources.mqtt import MqttOptions, connect_options, make_client
from vigil.streaming.sources.sparkplug_codec import (
    BDSEQ_METRIC,
    NAMESPACE,
    REBIRTH_METRIC,
    decode,
    encode,
)

__all__ = ["EdgeNode"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class EdgeNode:
    """A Sparkplug B edge node publishing its devices' metrics.

    Parameters
    ----------
    broker : MqttOptions
        How to reach the broker; its client id is the node's.
    group, node : str
        The group and edge node ids.
    devices : mapping
        Device id → metric name → ``(data type name, initial value)``, for example
        ``{"pump-1": {"Temperature": ("Double", 41.5)}}``.
    """

    def __init__(
        self,
        broker: MqttOptions,
        group: str,
        node: str,
        devices: Mapping[str, Mapping[str, tuple[str, Any]]],
    ) -> None:
        self.group, self.node = group, node
        self.host, self.port, _ = connect_options(broker)
        self.broker = broker
        self.types = {device: {name: spec[0] for name, spec in metrics.items()} for device, metrics in devices.items()}
        self.values = {device: {name: spec[1] for name, spec in metrics.items()} for device, metrics in devices.items()}
        self.aliases: dict[tuple[str, str], int] = {}
        for device, metrics in self.types.items():
            for name in metrics:
                self.aliases[(device, name)] = len(self.aliases) + 1
        self.bdseq = 0
        self.seq = 0
        self.rebirths = 0
        self.sessions = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client: Any = None

    def _topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return base if device is None else f"{base}/{device}"

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    # -- session ---------------------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> EdgeNode:
        """Connect with the NDEATH will, subscribe to the node's commands, and publish the births.

        The client reconnects by itself (with the broker options' back-off); each new session subscribes
        again and publishes new births, as the host needs them to trust the node's data again.
        """
        self.client = make_client(self.broker)
        death = encode(_now_ms(), None, [(BDSEQ_METRIC, None, "Int64", self.bdseq)])
        self.client.will_set(self._topic("NDEATH"), death, qos=1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_command
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self._subscribed.clear()
        self.sessions = 0
        self.client.connect(self.host, self.port, keepalive=self.broker.keepalive)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            msg = f"edge node {self.node}: no subscription acknowledgement from {self.host}:{self.port}"
            raise TimeoutError(msg)
        self.births()
        return self

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            return
        self.sessions += 1
        client.subscribe(self._topic("NCMD"), qos=1)
        if self.sessions > 1:  # a reconnection: a new session starts with births
            self.births(wait=False)  # (paho's network thread cannot wait for itself)

    def births(self, *, wait: bool = True) -> None:
        """Publish the NBIRTH (sequence restarts at 0) and one DBIRTH per device; with ``wait``, once sent."""
        with self._lock:
            self.seq = 0
            stamp = _now_ms()
            node_metrics = [(BDSEQ_METRIC, None, "Int64", self.bdseq), (REBIRTH_METRIC, None, "Boolean", False)]
            self._publish(self._topic("NBIRTH"), encode(stamp, self._next_seq(), node_metrics))
            for device, types in self.types.items():
                metrics = [
                    (name, self.aliases[(device, name)], kind, self.values[device][name])
                    for name, kind in types.items()
                ]
                info = self._publish(self._topic("DBIRTH", device), encode(stamp, self._next_seq(), metrics))
        if wait and self.types:
            info.wait_for_publish(10)

    def data(self, device: str, values: Mapping[str, Any], *, timestamp_ms: int | None = None) -> None:
        """Publish a DDATA of the changed metrics, by alias only (a None value is sent as null)."""
        with self._lock:
            metrics = []
            for name, value in values.items():
                self.values[device][name] = value
                metrics.append((None, self.aliases[(device, name)], self.types[device][name], value))
            stamp = _now_ms() if timestamp_ms is None else timestamp_ms
            self._publish(self._topic("DDATA", device), encode(stamp, self._next_seq(), metrics))

    def skip_sequence(self) -> None:
        """Use up a sequence number without publishing (a message lost on the way)."""
        with self._lock:
            self._next_seq()

    def raw(self, kind: str, device: str | None, payload: bytes) -> None:
        """Publish any bytes on one of the node's topics (a corrupt payload, say)."""
        self._publish(self._topic(kind, device), payload)

    def device_death(self, device: str) -> None:
        with self._lock:
            self._publish(self._topic("DDEATH", device), encode(_now_ms(), self._next_seq(), []))

    def close(self) -> None:
        """Publish the NDEATH and disconnect; the next session's bdSeq is one higher."""
        death = encode(_now_ms(), None, [(BDSEQ_METRIC, None, "Int64", self.bdseq)])
        self.client.publish(self._topic("NDEATH"), death, qos=1).wait_for_publish(10)
        self.client.disconnect()
        self.client.loop_stop()
        self.bdseq = (self.bdseq + 1) % 256

    def stop(self) -> None:
        """Disconnect without an NDEATH (a clean MQTT disconnect suppresses the will)."""
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _publish(self, topic: str, payload: bytes) -> Any:
        return self.client.publish(topic, payload, qos=0)

    def _on_command(self, client: Any, userdata: Any, message: Any) -> None:
        payload = decode(message.payload)
        if any(m.name == REBIRTH_METRIC and m.value is True for m in payload.metrics):
            self.rebirths += 1
            self.births(wait=False)  # paho's network thread cannot wait for itself
