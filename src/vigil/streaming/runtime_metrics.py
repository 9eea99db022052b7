"""Counters and a latency histogram of the streaming runtime, kept without any metrics library.

The runtime updates them from its one worker thread; readers (``/metrics``, tests) take a consistent
:meth:`RuntimeMetrics.snapshot`. The service turns a snapshot into Prometheus text, so the streaming
package stays free of optional dependencies.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LATENCY_BUCKETS", "LatencyHistogram", "RuntimeMetrics"]

#: Upper bounds (seconds) of the ingest-to-decision latency buckets.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


@dataclass
class LatencyHistogram:
    """Cumulative-bucket histogram in Prometheus' sense, plus a quantile estimate from the buckets.

    Examples
    --------
    >>> h = LatencyHistogram()
    >>> for value in (0.0002, 0.003, 0.004, 0.2):
    ...     h.observe(value)
    >>> h.count, round(h.total, 4), h.quantile(0.5)
    (4, 0.2072, 0.005)
    """

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    count: int = 0
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)  # the last bucket is +Inf

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the ``q`` quantile (``inf`` if beyond the last bound)."""
        if self.count == 0:
            return 0.0
        rank = q * self.count
        seen = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return float("inf")

    def copy(self) -> LatencyHistogram:
        return LatencyHistogram(self.bounds, list(self.counts), self.count, self.total)


class RuntimeMetrics:
    """What the runtime has done so far, by kind.

    Attributes
    ----------
    received : Counter
        Records received, by source (``http``, ``mqtt``).
    scored : Counter
        Records scored, by model name.
    dead_letters : Counter
        Refused messages and records, by dead-letter kind.
    alerts : Counter
        Alert events, by kind (``opened``, ``updated``, ``closed``).
    partial_readings : Counter
        Readings handled by a sensor's partial-record policy, by what they were (``missing``,
        ``out_of_range``, ``numeric_string``), whether the record was then refused or scored.
    redeliveries : int
        Records identical to one already processed, acknowledged without scoring them again.
    latency : LatencyHistogram
        Seconds from receipt to decision (scored and stored), per record.

    The counts of earlier runs on the same alert store (:meth:`restore`) are added to those of
    :meth:`snapshot`, so that ``/metrics`` counts across restarts; :meth:`counts` is this run's alone.
    """

    #: The counters kept across restarts, by the prefix of their stored names (``scored:pump``).
    CARRIED = ("received", "scored", "dead_letters", "alerts", "partial_readings")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.received_total = 0  # the sum of ``received``, kept so that each message does not add it up again
        self.scored: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.alerts: Counter[str] = Counter()
        self.partial_readings: Counter[str] = Counter()
        self.redeliveries = 0
        self.latency = LatencyHistogram()
        self.store_errors = 0
        self.batches = 0
        # For /health: records processed (scored, dead-lettered or redelivered), when that last moved, when the
        # store last failed and last took a batch, and (time, processed, dead-lettered) of recent batches.
        self.processed = 0
        self.last_progress = time.monotonic()
        self.last_store_error: float | None = None
        self.last_commit: float | None = None
        self.recent: deque[tuple[float, int, int]] = deque(maxlen=10_000)
        self.carried: dict[str, Counter[str]] = {kind: Counter() for kind in self.CARRIED}
        self.carried_redeliveries = 0

    def restore(self, stored: dict[str, int]) -> None:
        """Take the counts earlier runs left in the store (names as :meth:`counts` writes them)."""
        with self._lock:
            for name, value in stored.items():
                kind, _, label = name.partition(":")
                if kind == "redeliveries":
                    self.carried_redeliveries = int(value)
                elif kind in self.carried and label:
                    self.carried[kind][label] = int(value)

    def counts(self) -> dict[str, int]:
        """This run's counters as flat names (``scored:pump``, ``redeliveries``), as the store keeps them."""
        with self._lock:
            out = {f"{kind}:{label}": n for kind in self.CARRIED for label, n in getattr(self, kind).items()}
            out["redeliveries"] = self.redeliveries
        return out

    def record_received(self, source: str, n: int) -> None:
        with self._lock:
            if self.received_total == self.processed:
                self.last_progress = time.monotonic()  # idle until now: a stall is counted from this message
            self.received[source] += n
            self.received_total += n

    def record_batch(
        self,
        scored: Counter[str],
        dead: Counter[str],
        alerts: Counter[str],
        latencies: list[float],
        redeliveries: int = 0,
    ) -> None:
        now = time.monotonic()
        n_dead = sum(dead.values())
        n = sum(scored.values()) + n_dead + redeliveries
        with self._lock:
            self.redeliveries += redeliveries
            self.scored.update(scored)
            self.dead_letters.update(dead)
            self.alerts.update(alerts)
            for value in latencies:
                self.latency.observe(value)
            self.batches += 1
            self.last_commit = now
            if n:
                self.processed += n
                self.last_progress = now
                self.recent.append((now, n, n_dead))

    def record_partial(self, counts: dict[str, int]) -> None:
        with self._lock:
            self.partial_readings.update({k: n for k, n in counts.items() if n})

    def record_store_error(self) -> None:
        with self._lock:
            self.store_errors += 1
            self.last_store_error = time.monotonic()

    def health(self, *, window: float, stall_seconds: float, max_dead_share: float, min_records: int) -> list[str]:
        """Why the runtime is degraded (empty when it is not): dead letters, a stall, a failing store."""
        now = time.monotonic()
        reasons = []
        with self._lock:
            pending = self.received_total - self.processed
            if pending > 0 and now - self.last_progress > stall_seconds:
                reasons.append(
                    f"ingestion stalled: {pending} records received but none processed for "
                    f"{now - self.last_progress:.0f} s"
                )
            if self.last_store_error is not None and (
                self.last_commit is None or self.last_commit < self.last_store_error
            ):
                reasons.append(
                    f"the alert store is failing: its last commit failed {now - self.last_store_error:.0f} s ago"
                )
            recent = [(n, dead) for t, n, dead in self.recent if now - t <= window]
        total, dead = sum(n for n, _ in recent), sum(d for _, d in recent)
        if total >= min_records and dead > max_dead_share * total:
            reasons.append(
                f"{dead} of the last {total} records ({dead / total:.0%}) were dead-lettered in {window:.0f} s, "
                f"more than {max_dead_share:.0%}"
            )
        return reasons

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every counter and the histogram."""
        with self._lock:
            totals = {kind: dict(getattr(self, kind) + self.carried[kind]) for kind in self.CARRIED}
            return {
                **totals,
                "redeliveries": self.redeliveries + self.carried_redeliveries,
                "latency": self.latency.copy(),
                "store_errors": self.store_errors,
                "batches": self.batches,
            }
