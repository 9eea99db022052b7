"""MQTT ingestion and publication (paho-mqtt 2.x; MQTT 5 or 3.1.1).

The service subscribes to a topic pattern such as ``plant/+/telemetry`` with QoS 1 in a persistent
session (a fixed client id, ``clean_start=False`` and a session expiry under MQTT 5, ``clean_session=False``
under 3.1.1), so the broker keeps messages for it while it is away. Each payload follows
:mod:`vigil.streaming.messages`; the topic level matched by the first ``+`` names the device when the
payload does not.

Delivery is at least once, end to end: messages are acknowledged *manually*, after the runtime has stored
their decisions, alerts and dead letters. A service killed before that gets them again from the broker
when it comes back, and the deterministic alert ids turn the replay into updates, not duplicates. The
client reconnects by itself with exponential back-off.

Committed alert events go to ``alert_topic`` and dead letters to ``dead_letter_topic`` (QoS 1, JSON).
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from vigil.alerts import AlertEvent, IncidentEvent
from vigil.errors import InvalidInputError
from vigil.extras import require
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.messages import Rejection
from vigil.streaming.runtime import Runtime

mqtt = require("paho.mqtt.client", needed_by="the Vigil service needs", extra="service")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

__all__ = ["MqttIngest", "MqttOptions", "connect_options", "device_level", "make_client", "read_password_file"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MqttOptions:
    """How to reach the broker and what to subscribe to.

    Parameters
    ----------
    url : str
        ``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` or ``mqtts://...`` for TLS (port 8883 by default).
    topic : str
        The subscription pattern, for example ``plant/+/telemetry``.
    client_id : str
        Fixed, so that the broker recognises the persistent session after a restart.
    protocol : {"5", "3.1.1"}
    session_expiry : int
        Seconds the broker keeps the session of a disconnected client (MQTT 5).
    receive_maximum : int
        Unacknowledged QoS 1 messages the broker may send at once (MQTT 5).
    alert_topic, dead_letter_topic, incident_topic : str or None
        Where alert events, dead letters and asset incident events are published; None publishes nothing.
    username, password : str, optional
        Override the URL's user and password (prefer ``password_file`` to a password in a URL).
    ca_file, cert_file, key_file : str, optional
        TLS trust anchors and client certificate.
    keepalive : int
    reconnect_min, reconnect_max : int
        The back-off range, in seconds, of automatic reconnection.
    """

    url: str = "mqtt://127.0.0.1:1883"
    topic: str = "plant/+/telemetry"
    client_id: str = "vigil-service"
    protocol: str = "5"
    session_expiry: int = 86_400
    receive_maximum: int = 2000
    alert_topic: str | None = "vigil/alerts"
    dead_letter_topic: str | None = "vigil/dead-letters"
    incident_topic: str | None = "vigil/incidents"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive: int = 30
    reconnect_min: int = 1
    reconnect_max: int = 30

    def __repr__(self) -> str:  # never show the password
        return f"MqttOptions(url={_redact(self.url)!r}, topic={self.topic!r}, client_id={self.client_id!r})"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@")


def device_level(topic_pattern: str) -> int | None:
    """Index of the topic level that names the device: the first ``+``, or None.

    Examples
    --------
    >>> device_level("plant/+/telemetry"), device_level("plant/#")
    (1, None)
    """
    levels = topic_pattern.split("/")
    return levels.index("+") if "+" in levels else None


def connect_options(options: MqttOptions) -> tuple[str, int, bool]:
    """(host, port, tls) from the URL; refuses other schemes."""
    parts = urlsplit(options.url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        msg = f"MQTT URL must start with mqtt:// or mqtts://, got {_redact(options.url)!r}"
        raise InvalidInputError(msg)
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        msg = f"MQTT URL {_redact(options.url)!r} names no host"
        raise InvalidInputError(msg)
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


def connect_in_background(client: Any, options: MqttOptions, *, persistent: bool = True) -> None:
    """Connect ``client`` (retrying with its back-off) and start its network thread.

    ``persistent``: resume the broker's session (MQTT 5 session expiry and receive maximum from ``options``),
    so that QoS 1 messages published while the client was away are delivered; otherwise start clean.
    """
    host, port, _ = connect_options(options)
    kwargs: dict[str, Any] = {}
    if options.protocol == "5":
        kwargs = {"clean_start": not persistent}
        if persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = options.session_expiry
            properties.ReceiveMaximum = options.receive_maximum
            kwargs["properties"] = properties
    client.connect_async(host, port, keepalive=options.keepalive, **kwargs)
    client.loop_start()


def disconnect(client: Any) -> None:
    """Disconnect ``client`` and stop its network thread."""
    client.disconnect()
    client.loop_stop()


def make_client(options: MqttOptions, *, manual_ack: bool = False) -> Any:
    """A configured, unconnected paho client (protocol, persistence, credentials, TLS, back-off)."""
    _, _, tls = connect_options(options)
    if options.protocol == "5":
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=options.client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
        )
    elif options.protocol == "3.1.1":
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=manual_ack,
        )
    else:
        msg = f"MQTT protocol must be '5' or '3.1.1', got {options.protocol!r}"
        raise InvalidInputError(msg)
    parts = urlsplit(options.url)
    username = options.username if options.username is not None else parts.username
    password = options.password if options.password is not None else parts.password
    if username is not None:
        client.username_pw_set(unquote(username), None if password is None else unquote(password))
    if tls:
        client.tls_set(
            ca_certs=options.ca_file,
            certfile=options.cert_file,
            keyfile=options.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    client.reconnect_delay_set(min_delay=options.reconnect_min, max_delay=options.reconnect_max)
    client.max_queued_messages_set(0)  # queue publications while disconnected; none is dropped
    return client


class MqttIngest:
    """Feed a :class:`~vigil.streaming.runtime.Runtime` from an MQTT subscription; publish its outputs.

    Also a runtime sink: pass it to ``Runtime(sinks=[...])`` (or :meth:`attach`) to publish committed
    alert events and dead letters.
    """

    def __init__(self, runtime: Runtime, options: MqttOptions) -> None:
        self.runtime = runtime
        self.options = options
        self.host, self.port, _ = connect_options(options)
        self._level = device_level(options.topic)
        self.client = make_client(options, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._connected = threading.Event()
        self.connections = 0

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> MqttIngest:
        """Connect in the background (retrying with back-off) and start the network thread."""
        connect_in_background(self.client, self.options)
        return self

    def stop(self) -> None:
        """Disconnect and stop the network thread; unacknowledged messages stay with the broker."""
        disconnect(self.client)
        self._connected.clear()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def status(self) -> dict[str, Any]:
        return {"mqtt": {"connected": self.connected, "topic": self.options.topic, "connections": self.connections}}

    # -- callbacks (paho's network thread) -----------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        self.connections += 1
        log.info("connected to MQTT broker %s:%d (session present: %s)", self.host, self.port, flags.session_present)
        client.subscribe(self.options.topic, qos=1)
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected.clear()
        if reason_code.is_failure:
            log.warning("lost the MQTT broker %s:%d (%s); reconnecting", self.host, self.port, reason_code)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        hint = None
        if self._level is not None:
            levels = message.topic.split("/")
            if self._level < len(levels):
                hint = levels[self._level]
        mid, qos = message.mid, message.qos

        def acknowledge(outcomes: Sequence[Any]) -> None:
            if qos > 0:
                client.ack(mid, qos)

        source = f"mqtt:{message.topic}"
        try:
            self.runtime.enqueue(message.payload, source, device_hint=hint, on_done=acknowledge, timeout=None)
        except queue.Full:  # stopping: leave the message unacknowledged for the next run
            log.warning("could not queue an MQTT message from %s; the broker will redeliver it", message.topic)
        except Exception as exc:
            # Anything else would come back with every redelivery: refuse this message alone, and acknowledge it
            # once its dead letter is stored, so it can never fill the broker's window of unacknowledged messages.
            log.exception("an MQTT message from %s could not be queued", message.topic)
            rejection = Rejection("internal", f"the message could not be decoded: {exc!r}", hint)
            self.runtime.reject(rejection, source, message.payload).add_done_callback(lambda _: acknowledge([]))

    # -- sink ----------------------------------------------------------------------------------------

    def publish_incidents(self, events: Sequence[IncidentEvent]) -> None:
        """Publish committed asset incident events, ``{"event": kind, "incident": {...}}`` (QoS 1)."""
        if self.options.incident_topic:
            for event in events:
                payload = json.dumps({"event": event.kind, "incident": event.incident.to_dict()})
                self.client.publish(self.options.incident_topic, payload, qos=1)

    def publish(self, events: Sequence[AlertEvent], dead_letters: Sequence[DeadLetter]) -> None:
        """Publish committed alert events and dead letters (QoS 1)."""
        if self.options.alert_topic:
            for event in events:
                payload = json.dumps({"event": event.kind, "alert": event.alert.to_dict()})
                self.client.publish(self.options.alert_topic, payload, qos=1)
        if self.options.dead_letter_topic:
            for letter in dead_letters:
                self.client.publish(self.options.dead_letter_topic, json.dumps(letter.to_dict()), qos=1)


def read_password_file(path: str) -> str:
    """The first line of ``path``, without its newline (keeps passwords off command lines)."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError) as exc:
        msg = f"cannot read a password from {path}"
        raise InvalidInputError(msg) from exc
