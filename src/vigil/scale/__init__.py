"""Scale-out on distributed engines: Kafka consumer-group workers and an MQTT bridge; Ray for archives.

Every module imports its heavy dependency (confluent-kafka, paho-mqtt, Ray, pyarrow) only when used, with
an ``ImportError`` that names ``pip install 'vigil[scale]'``.
"""

from __future__ import annotations

from vigil.scale.offsets import OffsetLedger
from vigil.scale.partitioner import murmur2, partition_for

__all__ = ["OffsetLedger", "murmur2", "partition_for"]
