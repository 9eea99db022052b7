"""Configuration of Vigil's Kafka clients (confluent-kafka / librdkafka), and topic creation.

Producers key every message by device id and use Kafka's default partitioner for keys (murmur2, see
:mod:`vigil.scale.partitioner`), with ``acks=all`` and idempotence so a retried send is neither lost nor
duplicated nor reordered. Consumers commit offsets themselves, only once the alerts of what they consumed
are stored (see :mod:`vigil.scale.offsets`), and start from the oldest retained message of a partition
that their group has never committed. Anything else (security, timeouts) is passed through as
librdkafka properties, for example ``security.protocol=SASL_SSL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vigil.errors import InvalidInputError
from vigil.scale._optional import require

__all__ = ["consumer_config", "ensure_topic", "parse_kafka_option", "producer_config"]


def parse_kafka_option(text: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` (a librdkafka property).

    Examples
    --------
    >>> parse_kafka_option("session.timeout.ms=6000")
    ('session.timeout.ms', '6000')
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        msg = f"a Kafka option is KEY=VALUE (a librdkafka property), got {text!r}"
        raise InvalidInputError(msg)
    return key.strip(), value.strip()


def _check_bootstrap(bootstrap: str) -> str:
    if not isinstance(bootstrap, str) or not bootstrap.strip():
        msg = f"the Kafka bootstrap servers must be HOST:PORT[,HOST:PORT...], got {bootstrap!r}"
        raise InvalidInputError(msg)
    return bootstrap.strip()


def consumer_config(
    bootstrap: str, group: str, *, client_id: str | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka properties of a worker's consumer.

    Examples
    --------
    >>> config = consumer_config("127.0.0.1:9092", "vigil", overrides={"session.timeout.ms": "6000"})
    >>> config["enable.auto.commit"], config["auto.offset.reset"], config["session.timeout.ms"]
    (False, 'earliest', '6000')
    """
    if not isinstance(group, str) or not group:
        msg = f"the consumer group must be a non-empty string, got {group!r}"
        raise InvalidInputError(msg)
    config: dict[str, Any] = {
        "bootstrap.servers": _check_bootstrap(bootstrap),
        "group.id": group,
        "enable.auto.commit": False,  # offsets are committed after the alerts are stored, never before
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",  # a new group reads what the topic retains rather than skip it
        "enable.partition.eof": False,
    }
    if client_id:
        config["client.id"] = client_id
    config.update(overrides or {})
    return config


def producer_config(
    bootstrap: str, *, client_id: str | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka properties of a producer that keys by device.

    Examples
    --------
    >>> producer_config("127.0.0.1:9092")["partitioner"]
    'murmur2_random'
    """
    config: dict[str, Any] = {
        "bootstrap.servers": _check_bootstrap(bootstrap),
        "partitioner": "murmur2_random",  # what the Java client does with keys, so all producers agree
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
    }
    if client_id:
        config["client.id"] = client_id
    config.update(overrides or {})
    return config


def ensure_topic(
    bootstrap: str,
    topic: str,
    *,
    partitions: int,
    replication: int = 1,
    overrides: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
) -> int:
    """Create ``topic`` unless it exists; return its number of partitions.

    Raises
    ------
    InvalidInputError
        The broker refused to create it, or did not answer within ``timeout`` seconds.
    """
    admin_module = require("confluent_kafka.admin", purpose="Kafka topics")
    kafka = require("confluent_kafka", purpose="Kafka topics")
    admin = admin_module.AdminClient({"bootstrap.servers": _check_bootstrap(bootstrap), **(overrides or {})})
    metadata = admin.list_topics(timeout=timeout)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        future = admin.create_topics(
            [admin_module.NewTopic(topic, num_partitions=partitions, replication_factor=replication)],
            operation_timeout=timeout,
        )[topic]
        try:
            future.result(timeout)
        except kafka.KafkaException as exc:
            if exc.args[0].code() != kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                msg = f"could not create the Kafka topic {topic!r} on {bootstrap}: {exc}"
                raise InvalidInputError(msg) from exc
        metadata = admin.list_topics(topic=topic, timeout=timeout)
    return len(metadata.topics[topic].partitions)
