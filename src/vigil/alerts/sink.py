"""The one way an alert leaves Vigil: store it (retrying while the store is down), publish it, then acknowledge.

Telemetry (the streaming runtime), packet captures and camera frames all hand their alert events, and the
dead letters that came with them, to :meth:`AlertSink.deliver`, which keeps the same durability rules for
every modality:

1. **commit**: the last state of each alert in the batch, the dead letters and the asset incidents the
   alerts opened or changed (when the sink has an :class:`~vigil.alerts.asset_incidents.IncidentCorrelator`)
   go to the store in one transaction; while the store refuses, the batch is retried with doubling delays
   (0.05 s up to 5 s), so an outage delays alerts and holds back the source, it loses nothing;
2. **publish**: only then the events go to the publishers (MQTT alert topic, Kafka, webhooks), and the
   incident events to those that also have ``publish_incidents``; a failing publisher is logged and
   skipped, it never undoes a commit;
3. **acknowledge**: only then the source is told the batch is done (an MQTT message acknowledged, a Kafka
   offset allowed to commit, an HTTP request answered, a capture read further).

Retries stop when the caller's ``stop`` event is set or its ``timeout`` passes: :meth:`deliver` then returns
False and acknowledges nothing, so the source keeps the evidence (the broker redelivers, the camera client
resends after its HTTP 503). Alert ids are deterministic and the store merges by id, so evidence delivered
again after an uncertain failure updates its alert instead of adding one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from vigil.alerts.asset_incidents import IncidentCorrelator, IncidentEvent
from vigil.alerts.model import Alert, AlertEvent
from vigil.alerts.store import AlertStore
from vigil.streaming.dead_letters import DeadLetter

__all__ = ["AlertSink", "IncidentPublisher", "Publisher"]

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where stored alert events and dead letters go besides the store (MQTT topic, Kafka, webhook)."""

    def publish(self, events: Sequence[AlertEvent], dead_letters: Sequence[DeadLetter]) -> None: ...


@runtime_checkable
class IncidentPublisher(Protocol):
    """A publisher that also sends asset incident events (opened, grown, closed, merged)."""

    def publish_incidents(self, events: Sequence[IncidentEvent]) -> None: ...


class AlertSink:
    """Commit, publish, acknowledge: the alert path shared by telemetry, captures and cameras.

    Parameters
    ----------
    store : AlertStore
    publishers : sequence of Publisher
        Called after every commit, in order; kept as the list :attr:`publishers` (append to add one).
    on_store_error : callable, optional
        Called once per refused commit attempt (for a metrics counter).
    correlator : IncidentCorrelator, optional
        Groups the stored alerts into asset incidents; the sinks of every source share one (the attribute
        :attr:`correlator` may be set after construction).
    first_delay, max_delay : float
        Seconds before the first retry, and the most between two retries.

    Examples
    --------
    >>> from vigil.alerts.store import SqlAlertStore
    >>> from vigil.alerts.tracker import AlertTracker
    >>> events = AlertTracker(model_version="m1").update("pump2", 0.0, 4.2, 1.0, True, {"flow": 1.0})
    >>> acked = []
    >>> with SqlAlertStore(":memory:") as store:
    ...     AlertSink(store).deliver(events, ack=lambda: acked.append(store.count()))
    True
    >>> acked
    [1]
    """

    def __init__(
        self,
        store: AlertStore,
        publishers: Sequence[Publisher] = (),
        *,
        on_store_error: Callable[[], None] | None = None,
        correlator: IncidentCorrelator | None = None,
        first_delay: float = 0.05,
        max_delay: float = 5.0,
    ) -> None:
        self.store = store
        self.publishers = list(publishers)
        self.on_store_error = on_store_error
        self.correlator = correlator
        self.first_delay = first_delay
        self.max_delay = max_delay

    def deliver(
        self,
        events: Sequence[AlertEvent],
        dead_letters: Sequence[DeadLetter] = (),
        *,
        ack: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Store the batch, publish it, then call ``ack``; return False (nothing acknowledged) if it was not stored.

        Parameters
        ----------
        events : sequence of AlertEvent
            In the order they happened; an alert that changed several times is stored in its last state.
        dead_letters : sequence of DeadLetter
            Stored in the same transaction as the alerts.
        ack : callable, optional
            Acknowledges the source; called once the batch is stored and published.
        stop : threading.Event, optional
            Give up retrying once it is set (the caller is shutting down).
        timeout : float, optional
            Give up retrying after this many seconds (an HTTP request cannot wait for ever).
        """
        if events or dead_letters:
            incident_events = self._commit(events, dead_letters, stop, timeout)
            if incident_events is None:
                return False
            self._publish(events, dead_letters, incident_events)
        if ack is not None:
            ack()
        return True

    def _commit(
        self,
        events: Sequence[AlertEvent],
        dead_letters: Sequence[DeadLetter],
        stop: threading.Event | None,
        timeout: float | None,
    ) -> list[IncidentEvent] | None:
        """Store the batch; return the incident events it caused, or None if it was not stored."""
        latest: dict[str, Alert] = {}
        for event in events:
            latest[event.alert.id] = event.alert  # a batch may grow an alert many times: store the last state
        correlator = self.correlator
        incident_events = correlator.observe(latest.values()) if correlator is not None else []
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = self.first_delay
        while True:
            # Every incident state not yet stored goes with this batch (also those of a batch given up).
            incidents = correlator.unsaved() if correlator is not None else []
            try:
                if incidents:
                    self.store.upsert_many(list(latest.values()), list(dead_letters), incidents)
                    correlator.saved(incidents)  # type: ignore[union-attr]
                else:
                    self.store.upsert_many(list(latest.values()), list(dead_letters))
                return incident_events
            except Exception:
                if self.on_store_error is not None:
                    self.on_store_error()
                log.exception("the alert store refused a batch; retrying in %.2f s", delay)
            wait = delay if deadline is None else min(delay, deadline - time.monotonic())
            if wait <= 0:
                return None
            if stop is None:
                time.sleep(wait)
            elif stop.wait(wait):
                return None
            delay = min(delay * 2, self.max_delay)

    def _publish(
        self,
        events: Sequence[AlertEvent],
        dead_letters: Sequence[DeadLetter],
        incident_events: Sequence[IncidentEvent],
    ) -> None:
        # Every opened and closed event goes out; of an alert's updates in one batch, only the last.
        last_update = {e.alert.id: i for i, e in enumerate(events) if e.kind == "updated"}
        published = [e for i, e in enumerate(events) if e.kind != "updated" or last_update[e.alert.id] == i]
        last_growth = {e.incident.id: i for i, e in enumerate(incident_events) if e.kind == "grown"}
        incidents = [e for i, e in enumerate(incident_events) if e.kind != "grown" or last_growth[e.incident.id] == i]
        for publisher in self.publishers:
            try:
                publisher.publish(published, dead_letters)
                if incidents and isinstance(publisher, IncidentPublisher):
                    publisher.publish_incidents(incidents)
            except Exception:
                log.exception("publisher %r failed", publisher)
