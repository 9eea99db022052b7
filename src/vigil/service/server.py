"""Assemble and run the monitoring service: store, registry, runtime, MQTT, webhooks, captures, HTTP server.

:class:`Service` owns every part and closes them in reverse order. :func:`run_service` runs it under
uvicorn until SIGINT or SIGTERM, then stops taking messages, lets the runtime commit what it holds, and
leaves unacknowledged MQTT messages with the broker for the next run.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.alerts import DEFAULT_INCIDENT_WINDOW, AssetMap, IncidentCorrelator, Publisher, open_store
from vigil.errors import InvalidInputError
from vigil.service._optional import require
from vigil.service.app import DEFAULT_MAX_BODY_BYTES, create_app
from vigil.service.auth import TokenAuth
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime, RuntimeConfig
from vigil.streaming.sources import Source

if TYPE_CHECKING:
    from vigil.streaming.sources.capture import CaptureMonitor

__all__ = ["Service", "ServiceConfig", "parse_host_port", "run_service"]

log = logging.getLogger(__name__)


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); port 0 picks a free one.

    Examples
    --------
    >>> parse_host_port("127.0.0.1:8080")
    ('127.0.0.1', 8080)
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        msg = f"--http expects HOST:PORT, got {text!r}"
        raise InvalidInputError(msg)
    return host.strip("[]"), int(port)


@dataclass
class ServiceConfig:
    """Everything ``vigil serve`` configures (see :mod:`vigil.service.cli` for the options)."""

    registry: Path
    models: list[tuple[str, Path | None]] = field(default_factory=list)
    routes: list[tuple[str, str]] = field(default_factory=list)
    store: str = "sqlite:///alerts.db"
    http: str = "127.0.0.1:8080"
    token_file: Path | None = None
    mqtt: Any = None  # MqttOptions or None
    webhooks: list[str] = field(default_factory=list)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    captures: list[str] = field(default_factory=list)  # pcap files to follow, or "-" for standard input
    capture_model: Path | None = None  # a pipeline fitted on packet features
    capture_gap_seconds: float = 30.0
    camera_model: Path | None = None  # an image model (`vigil fit FOLDER`) for /ingest/image/{camera}
    incident_window: float = DEFAULT_INCIDENT_WINDOW  # seconds: alerts of one asset this close are one incident
    assets: Path | None = None  # a JSON asset map (AssetMap.from_file); device ids' asset parts if None
    # From a plant file (vigil.plant.deploy): per-model sensor policies and alarm rules, steps run on the
    # runtime once built (declare assets, check sensors), and (name, factory) of the sources to run.
    sensor_policies: dict[str, Any] = field(default_factory=dict)
    alarm_policies: dict[str, Any] = field(default_factory=dict)
    prepare: list[Any] = field(default_factory=list)
    sources: list[tuple[str, Any]] = field(default_factory=list)
    kafka_sink: dict[str, Any] | None = None  # KafkaSink keywords: alert events and dead letters to Kafka


class Service:
    """The parts of a running service, opened in order and closed in reverse."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.auth = TokenAuth.from_file(config.token_file) if config.token_file is not None else None
        self.registry = ModelRegistry(config.registry)
        names = self.registry.deploy(config.models)
        self._closers: list[Any] = []
        self.sources: dict[str, Source] = {}
        self.store = open_store(config.store)
        self._closers.append(self.store.close)
        try:
            sinks: list[Publisher] = []
            self.webhooks = None
            if config.webhooks:
                from vigil.service.webhooks import WebhookSink

                self.webhooks = WebhookSink(config.webhooks)
                self._closers.append(self.webhooks.close)
                sinks.append(self.webhooks)
            if config.kafka_sink is not None:
                from vigil.scale.kafka_sink import KafkaSink

                kafka = KafkaSink(**config.kafka_sink)
                self._closers.append(kafka.close)
                sinks.append(kafka)
            self.runtime = Runtime(
                self.store,
                self.registry,
                models=names or None,
                routes=config.routes,
                config=config.runtime,
                allow_no_models=bool(config.camera_model or config.captures),
                sensor_policies=config.sensor_policies,
                alarm_policies=config.alarm_policies,
            )
            for step in config.prepare:
                step(self.runtime)
            self.sources = {name: make(self.runtime) for name, make in config.sources}
            self.mqtt = None
            if config.mqtt is not None:
                from vigil.streaming.sources.mqtt import MqttIngest

                self.mqtt = MqttIngest(self.runtime, config.mqtt)
                sinks.append(self.mqtt)
            self.runtime.sinks.extend(sinks)
            self.captures = self._capture_monitors(config, sinks)
            self.camera = None
            if config.camera_model is not None:
                from vigil.streaming.sources.camera import CameraInspector

                self.camera = CameraInspector(config.camera_model, self.store, sinks)
            self.incidents = self._correlator(config)
            # One correlator behind every source's sink: an asset's alerts meet whatever their modality.
            for sink in [
                self.runtime.sink,
                *(monitor.sink for monitor in self.captures),
                *([self.camera.sink] if self.camera else []),
            ]:
                sink.correlator = self.incidents
            self.app = create_app(
                self.runtime,
                auth=self.auth,
                max_body_bytes=config.max_body_bytes,
                status=self.status,
                inspector=self.camera,
            )
        except BaseException:
            self.close()
            raise

    def _capture_monitors(self, config: ServiceConfig, sinks: list[Publisher]) -> list[CaptureMonitor]:
        if not config.captures:
            return []
        if config.capture_model is None:
            msg = "--capture needs --capture-model MODEL_DIR (a model fitted with `vigil fit BENIGN.pcap`)"
            raise InvalidInputError(msg)
        from vigil.pipeline import Pipeline
        from vigil.streaming.sources.capture import CaptureMonitor

        pipe = Pipeline.load(config.capture_model)
        return [
            CaptureMonitor(pipe, source, self.store, sinks=sinks, gap_seconds=config.capture_gap_seconds)
            for source in config.captures
        ]

    def _correlator(self, config: ServiceConfig) -> IncidentCorrelator:
        assets = AssetMap.from_file(config.assets) if config.assets is not None else AssetMap()
        correlator = IncidentCorrelator(assets, window_seconds=config.incident_window)
        for incident in self.store.list_incidents(status="open", limit=None):  # left open by the previous run
            correlator.resume(incident, self.store.get_many(incident.alert_ids))
        return correlator

    def status(self) -> dict[str, Any]:
        out = self.mqtt.status() if self.mqtt is not None else {}
        if self.captures:
            out["captures"] = [monitor.status() for monitor in self.captures]
        if self.camera is not None:
            out["camera"] = self.camera.status()
        if self.sources:
            out["sources"] = {name: source.status() for name, source in self.sources.items()}
        declared = self.runtime.declared_assets()
        if declared:
            out["silent_assets"] = [name for name, silent in declared.items() if silent]
        return out

    def start(self) -> Service:
        """Start the runtime, then the MQTT subscription (so nothing arrives before it can be scored)."""
        self.runtime.start()
        self._closers.append(self.runtime.stop)
        mqtt = [self.mqtt] if self.mqtt is not None else []
        sources: list[Source] = [*mqtt, *self.captures, *self.sources.values()]
        for source in sources:
            source.start()
            self._closers.append(source.stop)
        return self

    def close(self) -> None:
        """Stop MQTT first (no new messages), then the runtime (commit what it holds), then the store."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                log.exception("closing %r failed", closer)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_service(config: ServiceConfig, *, ready: Any = None) -> int:
    """Run the service under uvicorn until interrupted; print the URL once it listens."""
    uvicorn = require("uvicorn")
    host, port = parse_host_port(config.http)
    try:
        with _sigterm_unwinds(), Service(config) as service:
            _serve(uvicorn, service, host, port, ready)
    except _Terminated:
        pass  # the Service has stopped: what it held is committed and its recent rows are saved
    return 0


class _Terminated(Exception):
    """SIGTERM arrived: unwind so that the service stops as it does on Ctrl-C."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    # uvicorn stops on SIGTERM and then raises the signal again with the previous handler in place; with
    # the default one the process would die there, before the runtime commits what it holds and saves the
    # rows retraining needs. This handler turns that second delivery into an exception instead.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(uvicorn: Any, service: Service, host: str, port: int, ready: Any) -> None:
    server = uvicorn.Server(
        uvicorn.Config(service.app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    )

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.05)
        sockets = [s for srv in server.servers for s in srv.sockets]
        actual = sockets[0].getsockname()[1] if sockets else port
        print(f"vigil serve: listening on http://{host}:{actual}", file=sys.stderr, flush=True)
        if ready is not None:
            ready(actual)

    threading.Thread(target=announce, name="vigil-announce", daemon=True).start()
    server.run()
