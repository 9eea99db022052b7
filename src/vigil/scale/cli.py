"""The scale-out commands of the ``vigil`` CLI: ``worker`` (Kafka consumer group) and ``bridge`` (MQTT → Kafka).

``vigil.cli`` calls :func:`add_commands` with its sub-parsers. Each handler returns an exit code and raises
:class:`~vigil.errors.VigilError` for bad input (exit code 2). confluent-kafka and paho-mqtt are imported
only when a command runs, so ``vigil --help`` works without them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from vigil.errors import InvalidInputError

__all__ = ["add_commands", "main"]


def _kafka_option(text: str) -> tuple[str, str]:
    from vigil.scale.kafka_clients import parse_kafka_option

    try:
        return parse_kafka_option(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so the command stores, commits and leaves the group cleanly."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return stop


def _open_registry(args: argparse.Namespace) -> tuple[Any, list[str]]:
    from vigil.streaming.model_registry import ModelRegistry

    registry = Path(args.registry)
    if not args.model and not registry.is_dir():
        msg = "give --model MODEL_DIR (a directory written by `vigil fit`) or an existing --registry"
        raise InvalidInputError(msg)
    reg = ModelRegistry(registry)
    return reg, reg.deploy(args.model)


def _cmd_worker(args: argparse.Namespace) -> int:
    from vigil.alerts import open_store
    from vigil.scale.decision_log import DecisionLog
    from vigil.scale.kafka_clients import ensure_topic
    from vigil.scale.kafka_sink import KafkaSink
    from vigil.scale.worker import KafkaWorker, WorkerConfig
    from vigil.streaming.runtime import Runtime, RuntimeConfig

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = dict(args.kafka_option)
    if args.create_topic:
        ensure_topic(args.kafka, args.topic, partitions=args.create_topic, overrides=options)
    registry, names = _open_registry(args)
    config = RuntimeConfig(
        max_batch=args.max_batch,
        max_delay=args.max_delay_ms / 1000.0,
        device_gap_seconds=args.device_gap,
        target_far=args.target_far,
    )
    closers: list[Any] = []
    try:
        store = open_store(args.store)
        closers.append(store.close)
        sinks = []
        if args.alert_topic or args.dead_letter_topic:
            sink = KafkaSink(
                args.kafka,
                alert_topic=args.alert_topic or None,
                dead_letter_topic=args.dead_letter_topic or None,
                kafka_options=options,
            )
            closers.append(sink.close)
            sinks.append(sink)
        runtime = Runtime(store, registry, models=names or None, routes=list(args.route), config=config, sinks=sinks)
        closers.append(runtime.stop)
        hook = None
        if args.decision_log:
            decisions = DecisionLog(args.decision_log)
            closers.insert(0, decisions.close)  # closed last, after the runtime has stored everything
            hook = decisions.write
        worker = KafkaWorker(
            runtime,
            WorkerConfig(
                bootstrap=args.kafka,
                topic=args.topic,
                group=args.group,
                client_id=args.client_id or f"vigil-worker-{os.getpid()}",
                commit_interval=args.commit_interval,
                kafka_options=options,
            ),
            on_outcomes=hook,
        )
        stop = _stop_on_signals()
        print(
            f"vigil worker: consuming {args.topic} in group {args.group} from {args.kafka}", file=sys.stderr, flush=True
        )
        stats = worker.run(stop)
        print(
            f"vigil worker: stopped after {stats.consumed} messages, {stats.rebalances} rebalances, "
            f"{stats.warmed} devices warmed from the store",
            file=sys.stderr,
            flush=True,
        )
    finally:
        while closers:
            closers.pop()()
    return 0


def _cmd_bridge(args: argparse.Namespace) -> int:
    from vigil.scale.bridge import MqttKafkaBridge
    from vigil.scale.kafka_clients import ensure_topic
    from vigil.service.cli import mqtt_options_from_args

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kafka_options = dict(args.kafka_option)
    if args.create_topic:
        ensure_topic(args.kafka, args.kafka_topic, partitions=args.create_topic, overrides=kafka_options)
    options = mqtt_options_from_args(
        args,
        topic=args.topic,
        client_id=args.client_id,
        session_expiry=args.session_expiry,
        alert_topic=None,
        dead_letter_topic=None,
    )
    stop = _stop_on_signals()
    bridge = MqttKafkaBridge(options, args.kafka, args.kafka_topic, kafka_options=kafka_options).start()
    print(
        f"vigil bridge: {args.topic} on {args.mqtt} -> {args.kafka_topic} on {args.kafka}", file=sys.stderr, flush=True
    )
    try:
        stop.wait()
    finally:
        remaining = bridge.stop()
    stats = bridge.stats
    print(
        f"vigil bridge: forwarded {stats.delivered} of {stats.received} messages "
        f"({stats.unkeyed} without a device, {stats.failed + remaining} left to the MQTT broker)",
        file=sys.stderr,
        flush=True,
    )
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``worker`` and ``bridge`` to the ``vigil`` command's sub-parsers."""
    from vigil.service.cli import add_mqtt_options, parse_model_spec, parse_route_spec

    p = subparsers.add_parser("worker", help="score a keyed Kafka telemetry topic as one worker of a consumer group")
    p.add_argument("--kafka", required=True, metavar="BOOTSTRAP", help="Kafka bootstrap servers, HOST:PORT[,...]")
    p.add_argument("--topic", required=True, help="telemetry topic, messages keyed by device id")
    p.add_argument("--group", required=True, help="consumer group shared by the workers")
    p.add_argument(
        "--model",
        action="append",
        type=parse_model_spec,
        default=[],
        metavar="[NAME=]DIR",
        help="model directory from `vigil fit`, optionally named by asset type; repeatable",
    )
    p.add_argument("--registry", default="vigil-registry", help="model registry folder, shared by the workers")
    p.add_argument(
        "--route",
        action="append",
        type=parse_route_spec,
        default=[],
        metavar="PATTERN=MODEL",
        help="devices matching the glob PATTERN use MODEL; repeatable, first match wins",
    )
    p.add_argument("--store", default="sqlite:///alerts.db", help="alert store shared by the workers (PostgreSQL)")
    p.add_argument("--alert-topic", default="vigil.alerts", help="Kafka topic for alert events ('' for none)")
    p.add_argument(
        "--dead-letter-topic", default="vigil.dead-letters", help="Kafka topic for dead letters ('' for none)"
    )
    p.add_argument(
        "--kafka-option",
        action="append",
        type=_kafka_option,
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka property (security, timeouts); repeatable",
    )
    p.add_argument("--client-id", help="this worker's name in the group (default vigil-worker-PID)")
    p.add_argument("--create-topic", type=int, metavar="PARTITIONS", help="create the topic if missing")
    p.add_argument("--commit-interval", type=float, default=0.5, help="seconds between offset commits (0.5)")
    p.add_argument("--max-batch", type=int, default=1024, help="records per micro-batch at most (1024)")
    p.add_argument("--max-delay-ms", type=float, default=2.0, help="wait for a batch to fill, ms (2)")
    p.add_argument("--device-gap", type=float, default=30.0, help="seconds without anomaly that close an alert")
    p.add_argument("--target-far", type=float, default=0.01, help="per-device false-alarm rate after feedback")
    p.add_argument("--decision-log", help="append one JSON line per decision and dead letter to this file")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_worker)

    p = subparsers.add_parser("bridge", help="forward device telemetry from MQTT into Kafka, keyed by device")
    p.add_argument("--kafka", required=True, metavar="BOOTSTRAP", help="Kafka bootstrap servers, HOST:PORT[,...]")
    p.add_argument("--kafka-topic", default="telemetry", help="Kafka topic the telemetry goes to (telemetry)")
    p.add_argument(
        "--kafka-option",
        action="append",
        type=_kafka_option,
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka producer property; repeatable",
    )
    p.add_argument("--create-topic", type=int, metavar="PARTITIONS", help="create the Kafka topic if missing")
    p.add_argument("--topic", default="plant/+/telemetry", help="MQTT subscription; the first + names the device")
    p.add_argument("--client-id", default="vigil-bridge", help="fixed MQTT client id of the persistent session")
    p.add_argument("--session-expiry", type=int, default=86_400, help="seconds the broker keeps the session (MQTT 5)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_mqtt_options(p, serve=False)
    p.set_defaults(func=_cmd_bridge)


def main(argv: list[str] | None = None) -> int:
    """``python -m vigil.scale COMMAND``: the scale-out commands without the rest of the ``vigil`` CLI."""
    from vigil.cli import dispatch

    parser = argparse.ArgumentParser(prog="vigil", description="Vigil scale-out commands")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return dispatch(parser, argv)
