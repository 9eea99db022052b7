"""Kafka's default partitioner for keyed messages (murmur2), so Python and JVM producers agree.

A record keyed by device id goes to partition ``(murmur2(key) & 0x7fffffff) % n_partitions``: this is
what the Java client's default partitioner does, and what librdkafka does with
``partitioner=murmur2_random``. Vigil's producers (:mod:`vigil.scale.bridge`) set that option, and the
worker (:mod:`vigil.scale.worker`) uses :func:`partition_for` to say which partition a device belongs to.
librdkafka's own default (``consistent_random``, CRC32) would put the same device elsewhere.
"""

from __future__ import annotations

from vigil.errors import InvalidInputError

__all__ = ["murmur2", "partition_for"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def _signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash of ``data``, as a signed int like Java's ``Utils.murmur2``.

    Examples
    --------
    The values of Kafka's own unit tests:

    >>> murmur2(b"21"), murmur2(b"foobar"), murmur2(b"a-little-bit-long-string")
    (-973932308, -790332482, -985981536)
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    tail = 4 * n4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return _signed(h)


def partition_for(key: str | bytes, n_partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record with this key.

    Examples
    --------
    >>> partition_for("pump-7", 12) == partition_for(b"pump-7", 12)
    True
    >>> partition_for("pump-7", 0)
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: n_partitions must be a positive integer, got 0
    """
    if isinstance(n_partitions, bool) or not isinstance(n_partitions, int) or n_partitions < 1:
        msg = f"n_partitions must be a positive integer, got {n_partitions!r}"
        raise InvalidInputError(msg)
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    return (murmur2(raw) & 0x7FFFFFFF) % n_partitions
