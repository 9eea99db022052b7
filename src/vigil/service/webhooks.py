"""Post committed alert events to webhooks (JSON over HTTP), from a background thread.

A slow or unreachable receiver never holds up scoring: events wait in a bounded queue, each POST has a
timeout and is retried a few times with back-off, and what still fails is logged and counted.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlsplit

from vigil.alerts import AlertEvent, IncidentEvent
from vigil.errors import InvalidInputError
from vigil.streaming.dead_letters import DeadLetter

__all__ = ["WebhookSink"]

log = logging.getLogger(__name__)


class WebhookSink:
    """A runtime sink that POSTs ``{"event": ..., "alert": {...}}`` for each alert event to every URL.

    Asset incident events are POSTed as ``{"event": "incident_opened", "incident": {...}}`` (likewise
    ``incident_grown``, ``incident_closed``, ``incident_merged``), so a receiver tells them apart by the event.

    Parameters
    ----------
    urls : sequence of str
        ``http://`` or ``https://`` endpoints.
    timeout : float
        Seconds per POST.
    retries : int
        Further attempts after a failure, with doubling delays from 0.2 s.
    queue_size : int
        Events waiting at most; beyond it new events are dropped (and counted in ``dropped``).
    """

    def __init__(
        self, urls: Sequence[str], *, timeout: float = 5.0, retries: int = 3, queue_size: int = 10_000
    ) -> None:
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https"):
                msg = f"webhook URL must be http:// or https://, got {url!r}"
                raise InvalidInputError(msg)
        self.urls = list(urls)
        self.timeout = timeout
        self.retries = retries
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="vigil-webhooks", daemon=True)
        self._thread.start()

    def publish(self, events: Sequence[AlertEvent], dead_letters: Sequence[DeadLetter]) -> None:
        for event in events:
            self._enqueue({"event": event.kind, "alert": event.alert.to_dict()})

    def publish_incidents(self, events: Sequence[IncidentEvent]) -> None:
        for event in events:
            self._enqueue({"event": f"incident_{event.kind}", "incident": event.incident.to_dict()})

    def _enqueue(self, document: dict) -> None:
        try:
            self._queue.put_nowait(json.dumps(document).encode())
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (within ``timeout``) and stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            for url in self.urls:
                self._post(url, body)

    def _post(self, url: str, body: bytes) -> None:
        delay = 0.2
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.delivered += 1
                return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                if attempt == self.retries:
                    self.failed += 1
                    log.warning("webhook %s failed after %d attempts: %s", url, attempt + 1, exc)
                    return
                time.sleep(delay)
                delay *= 2

    def __repr__(self) -> str:
        return f"WebhookSink({len(self.urls)} URLs)"
