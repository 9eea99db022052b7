"""The service's commands for the ``vigil`` CLI: ``serve``, ``retrain`` and ``replay``.

``vigil.cli`` calls :func:`add_commands` with its sub-parsers; each command sets ``func`` to a handler that
returns an exit code and raises :class:`~vigil.errors.VigilError` for bad input (exit code 2). The
service's dependencies are imported only when a command runs, so ``vigil --help`` works without them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from vigil.alerts.asset_incidents import DEFAULT_INCIDENT_WINDOW
from vigil.errors import InvalidInputError

__all__ = ["add_commands", "main"]


def parse_model_spec(text: str) -> tuple[str, Path | None]:
    name, sep, path = text.partition("=")
    if sep:
        return name.strip(), Path(path)
    return "default", Path(text)


def parse_route_spec(text: str) -> tuple[str, str]:
    pattern, sep, model = text.partition("=")
    if not sep or not pattern or not model:
        msg = f"--route expects PATTERN=MODEL, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return pattern, model


def add_mqtt_options(parser: argparse.ArgumentParser, *, serve: bool) -> None:
    group = parser.add_argument_group("MQTT")
    group.add_argument(
        "--mqtt", required=not serve, metavar="URL", help="broker, mqtt://HOST:1883 or mqtts://HOST:8883 for TLS"
    )
    group.add_argument("--mqtt-protocol", choices=["5", "3.1.1"], default="5", help="MQTT version (5)")
    group.add_argument("--mqtt-username", help="user name (overrides the URL's)")
    group.add_argument("--mqtt-password-file", help="file whose first line is the password")
    group.add_argument("--mqtt-ca", help="CA bundle to verify the broker (TLS)")
    group.add_argument("--mqtt-cert", help="client certificate (TLS)")
    group.add_argument("--mqtt-key", help="client key (TLS)")
    if serve:
        group.add_argument("--topic", default="plant/+/telemetry", help="subscription ('plant/+/telemetry')")
        group.add_argument("--client-id", default="vigil-service", help="fixed id of the persistent session")
        group.add_argument(
            "--session-expiry", type=int, default=86_400, help="seconds the broker keeps the session (MQTT 5)"
        )
        group.add_argument("--alert-topic", default="vigil/alerts", help="where alert events go ('' for none)")
        group.add_argument(
            "--dead-letter-topic", default="vigil/dead-letters", help="where dead letters go ('' for none)"
        )
        group.add_argument(
            "--incident-topic", default="vigil/incidents", help="where asset incident events go ('' for none)"
        )


def mqtt_options_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    from vigil.streaming.sources.mqtt import MqttOptions, read_password_file

    fields: dict[str, Any] = {
        "url": args.mqtt,
        "protocol": args.mqtt_protocol,
        "username": args.mqtt_username,
        "password": read_password_file(args.mqtt_password_file) if args.mqtt_password_file else None,
        "ca_file": args.mqtt_ca,
        "cert_file": args.mqtt_cert,
        "key_file": args.mqtt_key,
    }
    fields.update(overrides)
    return MqttOptions(**fields)


def _cmd_serve(args: argparse.Namespace) -> int:
    from vigil.service.server import ServiceConfig, run_service
    from vigil.streaming.runtime import RuntimeConfig

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plant = None
    if args.config:
        from vigil.plant import load_plant

        plant = load_plant(args.config)
    models = list(args.model)
    registry = Path(args.registry)
    if plant is None and not models and not registry.is_dir() and not (args.camera_model or args.capture):
        msg = (
            "give --model MODEL_DIR (a directory written by `vigil fit`), an existing --registry, "
            "--capture with --capture-model, or --camera-model"
        )
        raise InvalidInputError(msg)
    mqtt = None
    if args.mqtt:
        mqtt = mqtt_options_from_args(
            args,
            topic=args.topic,
            client_id=args.client_id,
            session_expiry=args.session_expiry,
            alert_topic=args.alert_topic or None,
            dead_letter_topic=args.dead_letter_topic or None,
            incident_topic=args.incident_topic or None,
        )
    runtime = RuntimeConfig(
        max_batch=args.max_batch,
        max_delay=args.max_delay_ms / 1000.0,
        max_payload_bytes=args.max_payload_bytes,
        device_gap_seconds=args.device_gap,
        target_far=args.target_far,
    )
    config = ServiceConfig(
        registry=registry,
        models=models,
        routes=list(args.route),
        store=args.store,
        http=args.http,
        token_file=Path(args.token_file) if args.token_file else None,
        mqtt=mqtt,
        webhooks=list(args.webhook),
        runtime=runtime,
        captures=list(args.capture),
        capture_model=Path(args.capture_model) if args.capture_model else None,
        capture_gap_seconds=args.capture_gap,
        camera_model=Path(args.camera_model) if args.camera_model else None,
        incident_window=args.incident_window,
        assets=Path(args.assets) if args.assets else None,
    )
    if plant is not None:
        from vigil.plant.deploy import apply_plant

        config = apply_plant(plant, config, _given_options(args))
    return run_service(config)


# `vigil serve` options that a plant file can also set -> the ServiceConfig field they override.
_OVERRIDES = {
    "http": "http",
    "store": "store",
    "registry": "registry",
    "token_file": "token_file",
    "device_gap": "device_gap",
    "target_far": "target_far",
    "webhook": "webhooks",
    "mqtt": "mqtt",
    "model": "models",
}


def _given_options(args: argparse.Namespace) -> set[str]:
    """The plant-file settings the command line overrides: the options whose value is not their default."""
    defaults = vars(args._serve_parser.parse_args([]))
    return {field for dest, field in _OVERRIDES.items() if getattr(args, dest) != defaults.get(dest)}


def _cmd_retrain(args: argparse.Namespace) -> int:
    from vigil.alerts import open_store
    from vigil.errors import InvalidInputError
    from vigil.streaming.model_registry import ModelRegistry
    from vigil.streaming.retrain import retrain_many

    registry = ModelRegistry(args.registry)
    names = args.model or ["default"]
    if "all" in names:
        names = registry.names()
        if not names:
            msg = f"--model all: the registry {args.registry} holds no model"
            raise InvalidInputError(msg)
    data = None
    if args.data:
        if len(names) != 1:
            msg = f"--data is one model's table; it was given with {len(names)} models ({', '.join(names)})"
            raise InvalidInputError(msg)
        import pandas as pd

        data = {names[0]: pd.read_csv(args.data)}
    runs = 0
    while True:
        store = open_store(args.store) if args.store else None
        try:
            outcomes = retrain_many(
                registry,
                names,
                store=store,
                data=data,
                holdback=args.holdback,
                tolerance=args.tolerance,
                min_rows=args.min_rows,
                activate=not args.no_activate,
            )
        finally:
            if store is not None:
                store.close()
        failed = {name: out for name, out in outcomes.items() if isinstance(out, Exception)}
        for result in outcomes.values():
            if isinstance(result, Exception):
                continue
            verdict = "activated" if result.activated else "kept the champion"
            print(
                f"retrained {result.model}: challenger {result.challenger} vs champion {result.champion}: {verdict} "
                f"({result.reason}); FAR {result.challenger_far:.4f} vs {result.champion_far:.4f} on "
                f"{result.n_holdback} held-back rows; trained on {result.n_train} rows, "
                f"{result.n_excluded} rows of confirmed anomalies left out"
            )
        if len(names) == 1 and failed:
            raise failed[names[0]]
        for error in failed.values():
            print(f"vigil retrain: error: {error}", file=sys.stderr)
        if args.json:
            documents = {
                name: {"error": str(out)} if isinstance(out, Exception) else out.to_dict()
                for name, out in outcomes.items()
            }
            document = documents[names[0]] if len(names) == 1 else documents
            Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        runs += 1
        if args.every is None or (args.max_runs is not None and runs >= args.max_runs):
            return 1 if failed else 0
        time.sleep(args.every)  # the schedule itself, not synchronisation


def _cmd_replay(args: argparse.Namespace) -> int:
    from vigil.service.replay import iter_messages, read_replay_table, replay

    frame = read_replay_table(
        args.data, time_column=args.time, device_column=args.device_column, drop=[c for c in args.drop if c]
    )
    options = mqtt_options_from_args(args, client_id=f"vigil-replay-{os.getpid()}")
    messages = iter_messages(
        frame,
        topic_template=args.topic_template,
        time_column=args.time,
        device_column=args.device_column,
        n_devices=args.devices,
        device_prefix=args.device_prefix,
        period=args.period,
    )
    report = replay(messages, options, rate=args.rate, limit=args.limit)
    print(f"published {report.messages} messages in {report.seconds:.1f} s ({report.rate:.0f}/s)")
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``serve``, ``retrain`` and ``replay`` to the ``vigil`` command's sub-parsers."""
    for add in (_add_serve_command, _add_retrain_command, _add_replay_command):
        add(subparsers)


def _add_serve_command(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the monitoring service (HTTP/MQTT ingestion, REST API, dashboard)")
    p.add_argument(
        "--model",
        action="append",
        type=parse_model_spec,
        default=[],
        metavar="[NAME=]DIR",
        help="model directory from `vigil fit`, optionally named by asset type; repeatable",
    )
    p.add_argument("--registry", default="vigil-registry", help="model registry folder (vigil-registry)")
    p.add_argument(
        "--route",
        action="append",
        type=parse_route_spec,
        default=[],
        metavar="PATTERN=MODEL",
        help="devices matching the glob PATTERN use MODEL; repeatable, first match wins",
    )
    p.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT", help="listen address (127.0.0.1:8080)")
    p.add_argument("--store", default="sqlite:///alerts.db", help="sqlite:///FILE or postgresql://USER@HOST/DB")
    p.add_argument("--token-file", help="API tokens, lines of 'read TOKEN' or 'write TOKEN'")
    p.add_argument("--webhook", action="append", default=[], metavar="URL", help="POST alert events here")
    p.add_argument("--max-batch", type=int, default=1024, help="records per micro-batch at most (1024)")
    p.add_argument("--max-delay-ms", type=float, default=2.0, help="wait for a batch to fill, ms (2)")
    p.add_argument("--max-payload-bytes", type=int, default=1_048_576, help="largest message accepted (1 MiB)")
    p.add_argument("--device-gap", type=float, default=30.0, help="seconds without anomaly that close an alert")
    p.add_argument("--target-far", type=float, default=0.01, help="per-device false-alarm rate after feedback")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _add_source_options(p)
    p.add_argument(
        "--config",
        metavar="PLANT.toml",
        help="plant file (`vigil config init` writes an example); the options given here override it",
    )
    add_mqtt_options(p, serve=True)
    p.set_defaults(func=_cmd_serve, _serve_parser=p)


def _add_source_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("packet captures")
    group.add_argument(
        "--capture",
        action="append",
        default=[],
        metavar="SOURCE",
        help="pcap file to follow as it is written, or - for a pcap stream on stdin "
        "(tcpdump -U -w - -i eth0 | vigil serve ... --capture -); repeatable",
    )
    group.add_argument("--capture-model", metavar="MODEL_DIR", help="model fitted with `vigil fit BENIGN.pcap`")
    group.add_argument(
        "--capture-gap", type=float, default=30.0, help="capture seconds that separate two network alerts (30)"
    )
    group = p.add_argument_group("asset incidents")
    group.add_argument(
        "--incident-window",
        type=float,
        default=DEFAULT_INCIDENT_WINDOW,
        metavar="SECONDS",
        help="alerts of one asset from several modalities at most this far apart form one incident "
        f"({DEFAULT_INCIDENT_WINDOW:g})",
    )
    group.add_argument(
        "--assets",
        metavar="FILE",
        help='JSON asset map: {"devices": {"10.0.0.12": "pump2", ...}, "line_devices": ["line-1"]} '
        "(default: a device id's part before '/' is its asset)",
    )
    group = p.add_argument_group("cameras")
    group.add_argument(
        "--camera-model",
        metavar="MODEL_DIR",
        help="image model fitted with `vigil fit FOLDER_OF_GOOD_IMAGES`; cameras POST frames to /ingest/image/CAMERA",
    )


def _add_retrain_command(subparsers: Any) -> None:
    p = subparsers.add_parser("retrain", help="fit a challenger on recent data; activate it if not worse")
    p.add_argument("--registry", default="vigil-registry", help="model registry folder (vigil-registry)")
    p.add_argument(
        "--model",
        action="append",
        help="model (asset type) to retrain; repeat it for several, whose challengers of one configuration "
        "train as one fleet; 'all' for every model in the registry (default: default)",
    )
    p.add_argument("--store", help="alert store whose confirmed alerts are left out of training")
    p.add_argument("--data", help="CSV with device, time (ISO 8601 or POSIX s) and the features (default: saved rows)")
    p.add_argument("--holdback", type=float, default=0.25, help="newest share used only to compare (0.25)")
    p.add_argument("--tolerance", type=float, default=0.005, help="slack on FAR and recall (0.005)")
    p.add_argument("--min-rows", type=int, default=200, help="fewest training rows (200)")
    p.add_argument("--no-activate", action="store_true", help="store the challenger without activating it")
    p.add_argument("--every", type=float, help="repeat every N seconds")
    p.add_argument("--max-runs", type=int, help="with --every, stop after N runs")
    p.add_argument("--json", help="write the result as JSON")
    p.set_defaults(func=_cmd_retrain)


def _add_replay_command(subparsers: Any) -> None:
    p = subparsers.add_parser("replay", help="publish a data set as device messages over MQTT")
    p.add_argument("data", help="CSV or Parquet of telemetry")
    p.add_argument("--rate", type=float, default=100.0, help="messages per second, 0 for as fast as possible")
    p.add_argument("--topic-template", default="plant/{device}/telemetry", help="topic per device")
    p.add_argument("--time", help="time column (ISO 8601 or POSIX s); default now + row × --period")
    p.add_argument("--period", type=float, default=1.0, help="seconds between rows without --time (1)")
    p.add_argument("--device-column", help="column naming each row's device")
    p.add_argument("--devices", type=int, default=1, help="without --device-column: fan out to N devices (1)")
    p.add_argument("--device-prefix", default="device", help="name prefix of fanned-out devices")
    p.add_argument("--drop", action="append", default=[], help="column that is not a sensor (label…); repeatable")
    p.add_argument("--limit", type=int, help="stop after N messages")
    add_mqtt_options(p, serve=False)
    p.set_defaults(func=_cmd_replay)


def main(argv: list[str] | None = None) -> int:
    """``python -m vigil.service COMMAND``: the same commands without the rest of the ``vigil`` CLI."""
    from vigil.cli import dispatch

    parser = argparse.ArgumentParser(prog="vigil", description="Vigil monitoring service")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return dispatch(parser, argv)
