"""Which Kafka offsets may be committed: those whose decisions, alerts and dead letters are stored.

The worker hands each message to the runtime and notes its offset here; the runtime reports a message
done only after the batch holding it was committed to the alert store. The committable position of a
partition is the first offset that is not done yet (Kafka commits "the next offset to read"), so a
crash can only make the broker redeliver messages whose effects may already be stored — which the
deterministic alert ids turn into updates, not duplicates — and never skip one whose effects are not.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["OffsetLedger"]


class OffsetLedger:
    """Offsets handed out and finished, per partition; thread-safe.

    Examples
    --------
    >>> ledger = OffsetLedger()
    >>> for offset in (10, 11, 12):
    ...     ledger.submitted(0, offset)
    >>> ledger.done(0, 11)  # out of order: 10 is not stored yet, so nothing can be committed
    >>> ledger.committable()
    {}
    >>> ledger.done(0, 10)
    >>> ledger.committable()
    {0: 12}
    >>> ledger.mark_committed({0: 12})
    >>> ledger.committable(), ledger.in_flight()
    ({}, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, deque[int]] = {}
        self._done: dict[int, set[int]] = {}
        self._position: dict[int, int] = {}
        self._committed: dict[int, int] = {}

    def submitted(self, partition: int, offset: int) -> None:
        """Note that the message at ``offset`` was handed to the runtime (offsets rise per partition)."""
        with self._lock:
            self._pending.setdefault(partition, deque()).append(offset)

    def done(self, partition: int, offset: int) -> None:
        """Note that the message's effects are stored; advance the partition's position past done offsets."""
        with self._lock:
            pending = self._pending.get(partition)
            if pending is None:
                return  # the partition was forgotten (revoked or lost) meanwhile
            finished = self._done.setdefault(partition, set())
            finished.add(offset)
            while pending and pending[0] in finished:
                first = pending.popleft()
                finished.discard(first)
                self._position[partition] = first + 1

    def committable(self) -> dict[int, int]:
        """Partition -> offset to commit, for partitions that advanced since the last commit."""
        with self._lock:
            return {p: o for p, o in self._position.items() if self._committed.get(p, -1) < o}

    def mark_committed(self, offsets: dict[int, int]) -> None:
        """Record that the broker accepted these positions."""
        with self._lock:
            for partition, offset in offsets.items():
                if self._committed.get(partition, -1) < offset:
                    self._committed[partition] = offset

    def in_flight(self) -> int:
        """Messages handed to the runtime and not yet stored."""
        with self._lock:
            return sum(len(p) for p in self._pending.values())

    def forget(self, partitions: set[int] | frozenset[int]) -> None:
        """Drop what is known of these partitions (they were revoked or lost)."""
        with self._lock:
            for partition in partitions:
                self._pending.pop(partition, None)
                self._done.pop(partition, None)
                self._position.pop(partition, None)
                self._committed.pop(partition, None)
