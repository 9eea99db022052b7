"""MQTT → Kafka bridge against the Mosquitto broker at 127.0.0.1:1883 and the Kafka test broker."""

from __future__ import annotations

import json
import uuid

import pytest
from scale_helpers import listening, make_stream, wait_for

from vigil.scale.bridge import device_key
from vigil.scale.partitioner import partition_for


def test_device_key_from_topic_or_payload() -> None:
    assert device_key("plant/p7/telemetry", b"not json", 1) == "p7"
    assert device_key("plant//telemetry", b"{}", 1) is None
    assert device_key("plant/all", b'{"device": "p1", "time": 0}', None) == "p1"
    assert device_key("plant/all", b'{"records": [{"device": "p1"}, {"device": "p1"}]}', None) == "p1"
    assert device_key("plant/all", b'[{"device": "p1"}, 3]', None) is None
    assert device_key("plant/all", b"\xff", None) is None


@pytest.mark.kafka
@pytest.mark.mqtt
def test_bridge_forwards_keyed_in_order_and_acknowledges(
    kafka_bootstrap: str, topic_name: str, service_missing
) -> None:
    paho = pytest.importorskip("paho.mqtt.client", reason="the bridge needs paho-mqtt: pip install 'vigil[service]'")
    if not listening("127.0.0.1", 1883):
        service_missing("no MQTT broker at 127.0.0.1:1883 (start mosquitto)")
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    from paho.mqtt.enums import CallbackAPIVersion

    from vigil.scale.bridge import MqttKafkaBridge
    from vigil.scale.kafka_clients import ensure_topic
    from vigil.streaming.sources.mqtt import MqttOptions

    n = ensure_topic(kafka_bootstrap, topic_name, partitions=5)
    prefix = f"vigil-test-{uuid.uuid4().hex[:8]}"
    stream = make_stream(10, 20, bursts={})
    # With 10 unacknowledged messages at most in flight, the broker stalls unless the bridge acknowledges.
    options = MqttOptions(
        url="mqtt://127.0.0.1:1883", topic=f"{prefix}/+/telemetry", client_id=f"{prefix}-bridge", receive_maximum=10
    )
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub", protocol=paho.MQTTv5)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": prefix, "auto.offset.reset": "earliest"})
    received: list = []
    try:
        with MqttKafkaBridge(options, kafka_bootstrap, topic_name) as bridge:
            assert bridge.wait_connected(10), "the bridge did not connect to Mosquitto"
            publisher.connect("127.0.0.1", 1883)
            publisher.loop_start()
            infos = [publisher.publish(f"{prefix}/{m.device}/telemetry", _without_device(m), qos=1) for m in stream]
            for info in infos:
                info.wait_for_publish(10)
            assert wait_for(lambda: bridge.stats.delivered == len(stream), 30), bridge.stats
        assert bridge.stats.failed == 0 and bridge.stats.unkeyed == 0
        consumer.assign([TopicPartition(topic_name, p, OFFSET_BEGINNING) for p in range(n)])
        assert wait_for(lambda: received.extend(m for m in consumer.consume(500, 0.2) if not m.error()) or
                        len(received) >= len(stream), 30)  # fmt: skip
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        consumer.close()

    assert len(received) == len(stream)
    by_device: dict[str, list[float]] = {}
    for record in received:
        device = record.key().decode()
        assert record.partition() == partition_for(device, n)
        body = json.loads(record.value())
        assert "device" not in body  # forwarded unchanged: the topic named the device
        by_device.setdefault(device, []).append(body["time"])
    assert by_device == {d: sorted(times) for d, times in by_device.items()}  # each device in order
    assert sorted(by_device) == sorted({m.device for m in stream})
    assert all(len(times) == 20 for times in by_device.values())


def _without_device(message) -> bytes:
    body = json.loads(message.body())
    del body["device"]
    return json.dumps(body).encode()
