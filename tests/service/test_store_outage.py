"""The alert store goes down during a burst: nothing is acknowledged before it is stored, nothing is lost,
nothing is duplicated after recovery, for telemetry, captures and cameras, on SQLite and on PostgreSQL.

The outage is real: another connection holds the SQLite file's write lock, or the TCP path to the
PostgreSQL server is cut (open connections dropped, new ones refused). An observer reading the store
over its own connection checks, at every acknowledgement and publication, that what was acknowledged is
already there; at the end the store must hold exactly what a run without an outage stores.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from service_helpers import anomalous_readings, normal_readings, payload, record

from vigil.alerts import AlertEvent, SqlAlertStore
from vigil.errors import VigilError
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Decision, Runtime, RuntimeConfig


class _TcpPath:
    """A TCP forwarder to PostgreSQL that can be cut: open connections dropped, new ones closed at once."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.up = True
        self._pairs: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.listen_port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.port))
            with self._lock:
                self._pairs += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.up = False
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for sock in pairs:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self._server.close()


@dataclass
class Backend:
    """The store under test, an observer on its own connection, and the switch that takes the store away."""

    store: SqlAlertStore
    observer: SqlAlertStore
    begin: Any
    end: Any


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "alerts.db"
        store = SqlAlertStore(path, busy_timeout=0.1)
        observer = SqlAlertStore(path)
        holder: list[sqlite3.Connection] = []

        def begin() -> None:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN EXCLUSIVE")  # every write of the store now fails with "database is locked"
            holder.append(conn)

        def end() -> None:
            conn = holder.pop()
            conn.execute("ROLLBACK")
            conn.close()

        yield Backend(store, observer, begin, end)
        store.close()
        observer.close()
        return
    url = request.getfixturevalue("postgres_url")
    path_to_server = _TcpPath(5432)
    store = SqlAlertStore(url.replace(":5432/", f":{path_to_server.listen_port}/"), connect_timeout=1)
    observer = SqlAlertStore(url)
    yield Backend(store, observer, path_to_server.cut, path_to_server.restore)
    store.close()
    observer.close()
    path_to_server.close()


class _CheckedPublisher:
    """Records published events, and every one that the observer could not yet read from the store."""

    def __init__(self, observer: SqlAlertStore) -> None:
        self.observer = observer
        self.events: list[AlertEvent] = []
        self.unstored: list[str] = []

    def publish(self, events: Any, dead_letters: Any) -> None:
        for event in events:
            if self.observer.get(event.alert.id) is None:
                self.unstored.append(event.alert.id)
        self.events.extend(events)


def _snapshot(store: SqlAlertStore) -> dict[str, tuple[Any, ...]]:
    return {a.id: (a.device, a.start, a.end, a.n_points, a.status) for a in store.list(limit=None)}


def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _telemetry_burst() -> list[bytes]:
    """Six devices, 60 s each, anomalous from 20 s to 40 s, with a few refused records among them."""
    rng = np.random.default_rng(3)
    out = []
    for t in range(60):
        records = [
            record(f"p{d}", float(t), anomalous_readings(rng) if 20 <= t < 40 else normal_readings(rng))
            for d in range(6)
        ]
        out.append(payload(*records))
        if t % 15 == 7:
            out.append(b"{not json")
    return out


def _run_telemetry(store: SqlAlertStore, registry: ModelRegistry, burst: list[bytes], on_done: Any) -> None:
    config = RuntimeConfig(device_gap_seconds=5.0, max_delay=0.001)
    with Runtime(store, registry, config=config) as runtime:
        for raw in burst:
            runtime.enqueue(raw, "mqtt:plant/telemetry", on_done=on_done, timeout=None)
        runtime.drain(timeout=60)


def test_telemetry_burst(backend: Backend, registry: ModelRegistry, tmp_path: Path) -> None:
    burst = _telemetry_burst()
    acked: list[list[Any]] = []
    unstored: list[str] = []

    def on_done(outcomes: list[Any]) -> None:  # the acknowledgement, as MQTT and Kafka receive it
        for outcome in outcomes:
            if isinstance(outcome, Decision) and outcome.alert_id and backend.observer.get(outcome.alert_id) is None:
                unstored.append(outcome.alert_id)
        acked.append(outcomes)

    config = RuntimeConfig(device_gap_seconds=5.0, max_delay=0.001)
    with Runtime(backend.store, registry, config=config) as runtime:
        half = len(burst) // 2
        for raw in burst[:half]:
            runtime.enqueue(raw, "mqtt:plant/telemetry", on_done=on_done, timeout=None)
        runtime.drain(timeout=60)
        before = (len(acked), _snapshot(backend.observer), backend.observer.count_dead_letters())
        backend.begin()
        for raw in burst[half:]:
            runtime.enqueue(raw, "mqtt:plant/telemetry", on_done=on_done, timeout=None)
        _wait_for(lambda: runtime.metrics.store_errors >= 2)
        time.sleep(0.5)
        # Down: nothing more is acknowledged, and nothing of the second half is stored.
        assert (len(acked), _snapshot(backend.observer), backend.observer.count_dead_letters()) == before
        backend.end()
        runtime.drain(timeout=60)
    assert unstored == []
    assert len(acked) == len(burst)  # every message acknowledged once it was stored

    with SqlAlertStore(tmp_path / "reference.db") as reference:
        _run_telemetry(reference, registry, burst, None)
        assert _snapshot(backend.observer) == _snapshot(reference)  # nothing lost, nothing duplicated
        assert backend.observer.count_dead_letters() == reference.count_dead_letters() == 4
        assert {device for device, *_ in _snapshot(reference).values()} == {f"p{d}" for d in range(6)}


def test_capture_burst(backend: Backend, capture_setup: dict[str, Any], tmp_path: Path) -> None:
    from vigil.pipeline import Pipeline
    from vigil.streaming.sources.capture import CaptureMonitor

    capture = tmp_path / "whole.pcap"
    capture.write_bytes(capture_setup["benign"].read_bytes() + capture_setup["attack_records"])
    pipe = Pipeline.load(capture_setup["model"])
    publisher = _CheckedPublisher(backend.observer)
    backend.begin()
    monitor = CaptureMonitor(pipe, capture, backend.store, sinks=[publisher], batch_size=256, follow=False).start()
    _wait_for(lambda: monitor.status()["unsaved_events"] > 0)
    read = monitor.packets
    time.sleep(1.0)
    # Down: the capture is held back (not read further), nothing is stored or published.
    assert monitor.packets == read < capture_setup["n_packets"]
    assert backend.observer.count() == 0 and publisher.events == []
    backend.end()
    monitor.join(timeout=60)
    assert not monitor.running and monitor.status()["unsaved_events"] == 0
    assert publisher.unstored == [] and publisher.events

    with SqlAlertStore(tmp_path / "reference.db") as reference:
        CaptureMonitor(pipe, capture, reference, batch_size=256, follow=False).start().join(timeout=60)
        stored = _snapshot(backend.observer)
        assert stored == _snapshot(reference)
        assert {e.alert.id for e in publisher.events} == set(stored)
        assert any(a.incident_type == "port_scan" for a in backend.observer.list())


def test_camera_frames(backend: Backend, camera_model: Path) -> None:
    import io

    from PIL import Image

    from vigil.streaming.sources.camera import CameraInspector
    from vigil.vision.synthetic import make_synthetic_set

    def png(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        return buffer.getvalue()

    frames = [png(image) for image in make_synthetic_set(0, 3, size=48, kinds=("hole",), seed=7).images]
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    publisher = _CheckedPublisher(backend.observer)
    inspector = CameraInspector(camera_model, backend.store, [publisher], store_timeout=0.5)

    backend.begin()
    for i, frame in enumerate(frames[:2]):
        # Not stored within the timeout: refused (HTTP 503), nothing stored, published or counted.
        with pytest.raises(VigilError, match="did not take the alert"):
            inspector.inspect("cam-1", frame, name=f"part-{i}", when=t0 + timedelta(seconds=i))
    assert backend.observer.count() == 0 and publisher.events == [] and inspector.defects == 0

    # A frame whose request outlives the outage is answered once its alert is stored.
    inspector.store_timeout = 30.0
    answers: list[dict[str, Any]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            inspector.inspect("cam-1", frames[2], name="part-2", when=t0 + timedelta(seconds=2))
        )
    )
    waiting.start()
    time.sleep(0.5)
    assert answers == []
    backend.end()
    waiting.join(timeout=60)
    assert answers and backend.observer.get(answers[0]["alert_id"]) is not None

    # The camera sends the refused frames again (twice, as a client retrying might): each is stored once.
    for _ in range(2):
        for i, frame in enumerate(frames[:2]):
            inspector.inspect("cam-1", frame, name=f"part-{i}", when=t0 + timedelta(seconds=i))
    assert backend.observer.count() == 3 and inspector.defects == 5
    assert publisher.unstored == []
    assert {e.alert.id for e in publisher.events} == set(_snapshot(backend.observer))


def test_dead_letters_wait_for_the_store_too(backend: Backend, registry: ModelRegistry) -> None:
    acked: list[list[Any]] = []
    with Runtime(backend.store, registry, config=RuntimeConfig(max_delay=0.001)) as runtime:
        backend.begin()
        runtime.enqueue(b"nope", "http", on_done=acked.append, timeout=None)
        _wait_for(lambda: runtime.metrics.store_errors >= 1)
        assert acked == [] and backend.observer.count_dead_letters() == 0
        backend.end()
        runtime.drain(timeout=60)
    assert [type(o) for o in acked[0]] == [DeadLetter]
    assert backend.observer.count_dead_letters("invalid_json") == 1
