"""Publish committed alert events and dead letters to Kafka topics, keyed by device."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from vigil.alerts import AlertEvent
from vigil.scale._optional import require
from vigil.scale.kafka_clients import producer_config
from vigil.streaming.dead_letters import DeadLetter

__all__ = ["KafkaSink"]

log = logging.getLogger(__name__)


class KafkaSink:
    """A runtime sink (see :class:`~vigil.streaming.runtime.Sink`) writing JSON to Kafka topics.

    Alert events go to ``alert_topic`` as ``{"event": kind, "alert": {...}}`` and dead letters to
    ``dead_letter_topic``, each keyed by device so that one device's events stay in order. A topic of
    None publishes nothing there. Sends are asynchronous; :meth:`close` waits for them.

    Parameters
    ----------
    bootstrap : str
    alert_topic, dead_letter_topic : str or None
    kafka_options : mapping, optional
        Further librdkafka producer properties.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        alert_topic: str | None = "vigil.alerts",
        dead_letter_topic: str | None = "vigil.dead-letters",
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        kafka = require("confluent_kafka", purpose="Kafka sinks")
        self.alert_topic = alert_topic
        self.dead_letter_topic = dead_letter_topic
        self._producer = kafka.Producer(
            producer_config(bootstrap, client_id="vigil-sink", overrides=kafka_options),
            logger=logging.getLogger("vigil.scale.kafka"),
        )
        self.failed = 0

    def _report(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failed += 1
            log.warning("could not publish to %s: %s", message.topic(), error)

    def _send(self, topic: str, key: str | None, value: dict[str, Any]) -> None:
        payload = json.dumps(value).encode()
        while True:
            try:
                self._producer.produce(topic, value=payload, key=key, on_delivery=self._report)
                break
            except BufferError:  # the local queue is full: let deliveries finish, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def publish(self, events: Sequence[AlertEvent], dead_letters: Sequence[DeadLetter]) -> None:
        """Send a batch's committed alert events and dead letters."""
        if self.alert_topic:
            for event in events:
                self._send(self.alert_topic, event.alert.device, {"event": event.kind, "alert": event.alert.to_dict()})
        if self.dead_letter_topic:
            for letter in dead_letters:
                self._send(self.dead_letter_topic, letter.device, letter.to_dict())

    def close(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for sends in flight; return how many are still undelivered."""
        return int(self._producer.flush(timeout))
