"""Forward device telemetry from MQTT into Kafka, keyed by device, for plants whose devices speak MQTT.

The bridge subscribes like the service does (QoS 1, persistent session, manual acknowledgement) and
produces every message unchanged to one Kafka topic, keyed by device id with Kafka's default partitioner
for keys (murmur2, as the Java client; see :mod:`vigil.scale.partitioner`), so each device's readings land
on one partition, in order, whichever producer sent them. An MQTT message is acknowledged only once Kafka
has it (``acks=all``, idempotent producer): a bridge that dies before that gets it again from the MQTT
broker, and the worker refuses the repeated reading as a duplicate of the device's last time.

The device is the topic level matched by the first ``+`` of the subscription (``plant/+/telemetry``);
without one, the payload's ``device`` (every record of a batch must name the same one). A message whose
device cannot be told is forwarded without a key, and the worker stores it as a dead letter that says so.
The bridge validates nothing else: that is the worker's job, with the model in hand.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.scale._optional import require
from vigil.scale.kafka_clients import producer_config

__all__ = ["BridgeStats", "MqttKafkaBridge", "device_key"]

log = logging.getLogger(__name__)


def device_key(topic: str, payload: bytes, level: int | None) -> str | None:
    """The device a message belongs to: the topic level ``level``, else the payload's ``device``.

    Examples
    --------
    >>> device_key("plant/pump-7/telemetry", b"{}", 1)
    'pump-7'
    >>> device_key("plant/all", b'[{"device": "p1"}, {"device": "p1"}]', None)
    'p1'
    >>> device_key("plant/all", b'[{"device": "p1"}, {"device": "p2"}]', None) is None
    True
    """
    if level is not None:
        levels = topic.split("/")
        if level < len(levels) and levels[level]:
            return levels[level]
        return None
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if isinstance(document, dict) and isinstance(document.get("records"), list):
        document = document["records"]
    records = document if isinstance(document, list) else [document]
    devices = {r.get("device") for r in records if isinstance(r, dict)}
    if len(devices) == 1 and len(records) == sum(isinstance(r, dict) for r in records):
        device = devices.pop()
        return device if isinstance(device, str) and device else None
    return None


@dataclass
class BridgeStats:
    """Counters of a bridge (only ever incremented)."""

    received: int = 0
    delivered: int = 0
    failed: int = 0
    unkeyed: int = 0


class MqttKafkaBridge:
    """Subscribe to device telemetry over MQTT; produce it to Kafka keyed by device; acknowledge after Kafka.

    Parameters
    ----------
    mqtt_options : vigil.streaming.sources.mqtt.MqttOptions
        Broker, subscription (``topic``), persistent session (``client_id``), credentials and TLS.
    bootstrap : str
        Kafka bootstrap servers.
    kafka_topic : str
        Where the telemetry goes.
    kafka_options : mapping, optional
        Further librdkafka producer properties.
    """

    def __init__(
        self, mqtt_options: Any, bootstrap: str, kafka_topic: str, *, kafka_options: Mapping[str, Any] | None = None
    ) -> None:
        kafka = require("confluent_kafka", purpose="the MQTT to Kafka bridge")
        from vigil.streaming.sources.mqtt import connect_options, device_level, make_client

        self.options = mqtt_options
        self.kafka_topic = kafka_topic
        self.stats = BridgeStats()
        self.host, self.port, _ = connect_options(mqtt_options)
        self._level = device_level(mqtt_options.topic)
        self._producer = kafka.Producer(
            producer_config(bootstrap, client_id=f"vigil-bridge-{mqtt_options.client_id}", overrides=kafka_options),
            logger=logging.getLogger("vigil.scale.kafka"),
        )
        self.client = make_client(mqtt_options, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="vigil-bridge-kafka", daemon=True)

    def start(self) -> MqttKafkaBridge:
        """Start the Kafka delivery thread, then connect to MQTT (retrying in the background)."""
        from vigil.streaming.sources.mqtt import connect_in_background

        self._poller.start()
        connect_in_background(self.client, self.options)
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the broker confirmed the subscription (messages published from then on are forwarded)."""
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """Stop taking messages, let Kafka confirm (and MQTT acknowledge) those in flight, disconnect.

        Returns how many messages Kafka had not confirmed within ``timeout`` seconds (the MQTT broker
        keeps those for the next run).
        """
        self.client.unsubscribe(self.options.topic)
        remaining = int(self._producer.flush(timeout))
        self._stop.set()
        self._poller.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()
        return remaining

    def __enter__(self) -> MqttKafkaBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- MQTT side (paho's network thread) -----------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        client.subscribe(self.options.topic, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error(
                "MQTT broker %s:%d refused the subscription %s: %s",
                self.host,
                self.port,
                self.options.topic,
                reason_codes,
            )
            return
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.stats.received += 1
        key = device_key(message.topic, message.payload, self._level)
        if key is None:
            self.stats.unkeyed += 1
        mid, qos = message.mid, message.qos

        def delivered(error: Any, record: Any) -> None:
            if error is not None:
                # Not acknowledged: the MQTT broker redelivers it after a reconnection.
                self.stats.failed += 1
                log.warning("Kafka refused a message from %s: %s", message.topic, error)
                return
            self.stats.delivered += 1
            if qos > 0:
                client.ack(mid, qos)

        while True:
            try:
                self._producer.produce(self.kafka_topic, value=message.payload, key=key, on_delivery=delivered)
                return
            except BufferError:  # Kafka is slower than MQTT: hold the MQTT thread until the queue drains
                self._producer.poll(0.1)

    # -- Kafka side ----------------------------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)
