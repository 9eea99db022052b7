"""Score live packet captures inside the service: typed network incidents become alerts like any other.

:class:`CaptureMonitor` follows one capture source (a pcap file being written, or ``-`` for a pcap stream
on standard input such as ``tcpdump -U -w - -i eth0``) on a background thread with a
:class:`~vigil.network.capture.CaptureScorer`. Each typed incident becomes an
:class:`~vigil.alerts.model.Alert` and goes through the :class:`~vigil.alerts.sink.AlertSink` as telemetry
alerts do: stored first (retried while the store is down, which holds the capture back), then published
(webhooks, the MQTT alert topic), so the REST API, the dashboard and operators' verdicts work on it.

The alert's ``device`` is the plant address to act on: the target of a flood, a port scan or a brute-force
attempt; the source of a host scan, an exfiltration, a new peer or unusual traffic. An incident of the same
kind on the same device that starts within ``gap_seconds`` of the last one's end extends it (one alert,
updated), so an attack that spans several read batches is one alert. An alert closes once the capture's
clock has moved ``gap_seconds`` past its end, and every open alert closes when the monitor stops. Incidents
with fewer than ``min_packets`` flagged packets (a handful of odd packets, typically while the damped
statistics warm up at the start of a capture) raise no alert; they are counted in the status instead, as
are the episodes the capture's alarm rule held back (:mod:`vigil.network.incident_alarms`).

A malformed packet is counted and skipped by the reader; an unreadable capture (missing file, not a pcap,
a corrupt record header) stops this monitor with its error in :meth:`CaptureMonitor.status`, never the
service.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.alerts import Alert, AlertEvent, AlertSink, AlertStore, Publisher, alert_id
from vigil.network.capture import CaptureScorer, ScoredCapture
from vigil.network.incident_alarms import incident_device
from vigil.network.incidents import NetworkIncident
from vigil.pipeline import Pipeline

__all__ = ["CaptureMonitor", "incident_device"]

log = logging.getLogger(__name__)


@dataclass
class _Open:
    alert: Alert
    end: float  # capture time (epoch s) of the last flagged packet


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class CaptureMonitor:
    """Follow a capture and turn its typed incidents into stored, published alerts.

    Parameters
    ----------
    pipe : Pipeline
        Fitted on packet features (``vigil fit BENIGN.pcap ...``).
    source : str or path
        A pcap file to follow as it grows, or ``"-"`` for standard input.
    store : AlertStore
        The service's alert store.
    sinks : list of Publisher
        Webhooks, MQTT, Kafka: called by the :class:`~vigil.alerts.sink.AlertSink` after the store commits.
    gap_seconds : float
        Capture seconds after which an incident of the same kind on the same device is a new alert.
    batch_size : int
        Packets scored per step at most; a step also ends whenever the writer is idle.
    poll_seconds : float
        How often an idle capture is checked for new packets.
    min_packets : int
        Fewest flagged packets for an incident to raise (or extend) an alert.

    Examples
    --------
    >>> import tempfile
    >>> from vigil.network.capture import _features
    >>> from vigil.network.kitnet import KitNETDetector
    >>> from vigil.network.synthetic import make_capture, write_pcap
    >>> from vigil.alerts import SqlAlertStore
    >>> cap = make_capture(["port_scan"], train_seconds=120, gap_seconds=20, n_devices=3)
    >>> train, _, _ = cap.split()
    >>> pipe = Pipeline(KitNETDetector(epochs=3, random_state=0)).fit(_features(train)[0])
    >>> folder = Path(tempfile.mkdtemp())
    >>> path = write_pcap(cap.packets, folder / "live.pcap")
    >>> with SqlAlertStore(folder / "alerts.db") as store:
    ...     monitor = CaptureMonitor(pipe, path, store, follow=False).start()
    ...     monitor.join(timeout=60)
    ...     alerts = store.list()
    >>> [(a.device, a.status, a.n_points > 100) for a in alerts if a.incident_type == "port_scan"]
    [('10.0.0.12', 'closed', True)]
    """

    def __init__(
        self,
        pipe: Pipeline,
        source: str | Path,
        store: AlertStore,
        *,
        sinks: list[Publisher] | None = None,
        gap_seconds: float = 30.0,
        batch_size: int = 2048,
        poll_seconds: float = 0.5,
        min_packets: int = 10,
        follow: bool = True,
    ) -> None:
        self.pipe = pipe
        self.source = source
        self.store = store
        self.sinks = sinks if sinks is not None else []  # shared with the sink: publishers added later are used
        self.gap_seconds = gap_seconds
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.min_packets = min_packets
        self.follow = follow
        self.packets = 0
        self.incidents = 0
        self.small_incidents = 0
        self.held_back = 0
        self.error: str | None = None
        self.read_stats: dict[str, Any] = {}
        self._open: dict[tuple[str, str], _Open] = {}
        self.sink = AlertSink(store, self.sinks)
        self._waiting = 0  # events of the batch the sink is storing (retrying while the store is down)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vigil-capture-{source}", daemon=True)

    def start(self) -> CaptureMonitor:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop at the capture's next idle moment and close the open alerts."""
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        """Counters for the service's status endpoint."""
        return {
            "source": str(self.source),
            "model_version": self.pipe.version_,
            "running": self.running,
            "packets": self.packets,
            "incidents": self.incidents,
            "small_incidents": self.small_incidents,
            "held_back": self.held_back,
            "open_alerts": len(self._open),
            "unsaved_events": self._waiting,
            "read": dict(self.read_stats),
            "error": self.error,
        }

    def _run(self) -> None:
        scorer = CaptureScorer(self.pipe)
        try:
            for scored in scorer.follow(
                self.source,
                batch_size=self.batch_size,
                follow=self.follow,
                poll_seconds=self.poll_seconds,
                stop=self._stop,
            ):
                self._deliver(self._events(scored))
        except Exception as exc:  # a broken capture stops this monitor, never the service
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("capture monitor for %s stopped: %s", self.source, self.error)
        finally:
            self._deliver([self._close(key) for key in list(self._open)])

    def _events(self, scored: ScoredCapture) -> list[AlertEvent]:
        self.packets += len(scored.rows)
        self.read_stats = dict(scored.read_stats)
        if not len(scored.rows):
            return []
        scores = scored.rows["score"].to_numpy(dtype=np.float64)
        times = pd.to_datetime(scored.rows["time"], utc=True)
        large = [incident for incident in scored.incidents if len(incident.packets) >= self.min_packets]
        self.small_incidents += len(scored.incidents) - len(large)
        self.held_back += len(scored.held_back)
        events = [event for incident in large for event in self._track(incident, scores, times)]
        now = times.iloc[-1].timestamp()
        events += [self._close(key) for key, entry in list(self._open.items()) if now - entry.end > self.gap_seconds]
        return events

    def _track(self, incident: NetworkIncident, scores: np.ndarray, times: pd.Series) -> list[AlertEvent]:
        device = incident_device(incident)
        key = (incident.kind, device)
        rows = incident.packets
        peak = int(rows[np.argmax(scores[rows])])
        peak_score, peak_time = float(scores[peak]), times.iloc[peak].to_pydatetime()
        entry = self._open.get(key)
        if entry is not None and incident.start - entry.end <= self.gap_seconds:
            alert = entry.alert
            if peak_score > alert.score:
                alert.score, alert.peak_time = peak_score, peak_time
            alert.end = _moment(incident.end)
            alert.n_points += len(rows)
            seconds = (alert.end - alert.start).total_seconds()
            alert.explanation = f"{incident.summary()} In all: {alert.n_points} flagged packets over {seconds:.0f} s."
            alert.top_features = incident.top_features or alert.top_features
            entry.end = incident.end
            return [AlertEvent("updated", Alert.from_dict(alert.to_dict()))]
        events = [self._close(key)] if entry is not None else []
        self.incidents += 1
        start = _moment(incident.start)
        alert = Alert(
            id=alert_id(device, self.pipe.version_, start),
            device=device,
            start=start,
            end=_moment(incident.end),
            peak_time=peak_time,
            score=peak_score,
            threshold=float(self.pipe.threshold_),
            model_version=self.pipe.version_,
            top_features=incident.top_features,
            incident_type=incident.kind,
            n_points=len(rows),
            explanation=incident.summary(),
            modality="network",
        )
        self._open[key] = _Open(alert, incident.end)
        log.warning("network incident on %s: %s", device, incident.summary())
        return [*events, AlertEvent("opened", Alert.from_dict(alert.to_dict()))]

    def _close(self, key: tuple[str, str]) -> AlertEvent:
        alert = self._open.pop(key).alert
        alert.status = "closed"
        return AlertEvent("closed", Alert.from_dict(alert.to_dict()))

    def _deliver(self, events: list[AlertEvent]) -> None:
        # The sink retries while the store is down, so an outage holds back the capture (it is read
        # further only once its alerts are stored) instead of losing them; only a stop gives up.
        self._waiting = len(events)
        if not self.sink.deliver(events, stop=self._stop):
            log.error(
                "capture %s stopped while the alert store was down: %d alert events not stored",
                self.source,
                len(events),
            )
        self._waiting = 0
