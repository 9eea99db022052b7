"""murmur2 agrees with Kafka's Java client and with librdkafka's murmur2_random partitioner."""

from __future__ import annotations

import pytest
from scale_helpers import make_stream, produce

from vigil.errors import InvalidInputError
from vigil.scale.partitioner import murmur2, partition_for

# Kafka's own test vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize("data", list(JAVA_VECTORS), ids=lambda b: b.decode())
def test_murmur2_matches_the_java_client(data: bytes) -> None:
    assert murmur2(data) == JAVA_VECTORS[data]


def test_partition_for_is_positive_and_bounded() -> None:
    keys = [f"device-{i}" for i in range(500)] + ["", "pompe-7é"]
    for n in (1, 3, 12, 100):
        found = {partition_for(key, n) for key in keys}
        assert found <= set(range(n))
        assert len(found) >= min(n, 12)  # 502 keys fill small partition counts and spread over large ones
    with pytest.raises(InvalidInputError, match="positive integer"):
        partition_for("a", -1)


@pytest.mark.kafka
def test_librdkafka_producers_place_devices_where_partition_for_says(kafka_bootstrap: str, topic_name: str) -> None:
    from vigil.scale.kafka_clients import ensure_topic

    n = ensure_topic(kafka_bootstrap, topic_name, partitions=7)
    stream = make_stream(40, 1, bursts={})
    placed = produce(kafka_bootstrap, topic_name, stream)
    assert {(m.device, p) for (p, _), m in placed.items()} == {(m.device, partition_for(m.device, n)) for m in stream}
