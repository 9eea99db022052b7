"""Turn a checked plant file into what ``vigil serve`` runs: models, routes, policies, declared assets, sources.

:func:`apply_plant` fills a :class:`~vigil.service.server.ServiceConfig` from a :class:`~vigil.plant.Plant`;
the fields named in ``overrides`` (the command-line options the user gave) keep their value. Each asset
type's model serves its assets (one route per asset), its sensors' policies and its alarm rules go to the
runtime, every asset is declared to the runtime before anything arrives, and each source becomes a
transport started with the service: one OPC UA subscription per server and sampling period, and the MQTT
connection for ``mqtt`` sources and the MQTT sinks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any

from vigil.errors import InvalidInputError
from vigil.plant.schema import Asset, Plant, PlantSource

__all__ = ["apply_plant", "check_models"]

# ServiceConfig field -> the [service] key that sets it.
_SERVICE_FIELDS = {"http": "http", "store": "store", "registry": "registry", "token_file": "token_file"}


def _secret(plant: Plant, source: PlantSource) -> str | None:
    name = source.settings.get("password_file")
    if name is None:
        return None
    path = plant.resolve(name)
    try:
        return path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError, UnicodeDecodeError) as exc:
        msg = f"{plant.path}:{source.line}: source {source.name!r}: cannot read a password from {path}"
        raise InvalidInputError(msg) from exc


def apply_plant(plant: Plant, config: Any, overrides: Collection[str] = ()) -> Any:
    """A copy of ``config`` (a ServiceConfig) completed from ``plant``; fields in ``overrides`` are kept.

    Raises
    ------
    InvalidInputError
        An asset whose source kind this version does not serve yet, or an unreadable password file.
    """
    changes: dict[str, Any] = {}
    for field, key in _SERVICE_FIELDS.items():
        value = plant.service.get(key)
        if value is not None and field not in overrides:
            changes[field] = plant.resolve(value) if field in ("registry", "token_file") else value
    runtime = config.runtime
    tuning = {}
    if "device_gap" in plant.service and "device_gap" not in overrides:
        tuning["device_gap_seconds"] = float(plant.service["device_gap"])
    if "target_far" in plant.service and "target_far" not in overrides:
        tuning["target_far"] = float(plant.service["target_far"])
    if tuning:
        changes["runtime"] = dataclasses.replace(runtime, **tuning)
    if "webhooks" not in overrides and plant.sinks.get("webhooks"):
        changes["webhooks"] = list(plant.sinks["webhooks"])
    kafka = plant.sinks.get("kafka")
    if kafka is not None:
        changes["kafka_sink"] = {
            "bootstrap": kafka["bootstrap"],
            **{key: kafka[key] for key in ("alert_topic", "dead_letter_topic") if key in kafka},
            "kafka_options": {key: str(value) for key, value in kafka.get("options", {}).items()},
        }
    if "models" not in overrides:
        changes["models"] = [
            (name, plant.resolve(str(kind.model)) if kind.model is not None else None)
            for name, kind in plant.asset_types.items()
            if any(asset.type == name for asset in plant.assets.values())
        ]
    # Routes given on the command line come first: the first match wins.
    changes["routes"] = [*config.routes, *((asset.name, asset.type) for asset in plant.assets.values())]
    changes["sensor_policies"] = {name: dict(kind.sensors) for name, kind in plant.asset_types.items()}
    changes["alarm_policies"] = {name: kind.alarm for name, kind in plant.asset_types.items() if kind.alarm}
    changes["prepare"] = [*config.prepare, _declare(plant), check_models(plant)]
    sources = list(config.sources)
    for source in plant.sources.values():
        assets = [a for a in plant.assets.values() if a.source == source.name]
        if source.kind == "opcua":
            sources.extend(_opcua(plant, source, assets))
        elif source.kind == "mqtt":
            if "mqtt" not in overrides:
                changes["mqtt"] = _mqtt(plant, source)
        elif source.kind == "modbus" and assets:
            sources.append((source.name, _modbus(plant, source, assets)))
        elif source.kind == "sparkplug" and assets:
            sources.append((source.name, _sparkplug(plant, source, assets)))
    changes["sources"] = sources
    return dataclasses.replace(config, **changes)


def _declare(plant: Plant) -> Callable[[Any], None]:
    def declare(runtime: Any) -> None:
        for asset in plant.assets.values():
            runtime.declare(asset.name, asset.type, silent_after=plant.silent_after(asset))

    return declare


def check_models(plant: Plant) -> Callable[[Any], None]:
    """A check, run on the runtime, that each asset type's model has exactly the type's sensors."""

    def check(runtime: Any) -> None:
        served = {model["name"]: model["features"] for model in runtime.models()}
        problems = []
        for name, kind in plant.asset_types.items():
            features = served.get(name)
            if features is None or set(features) == set(kind.sensors):
                continue
            missing = sorted(set(features) - set(kind.sensors))
            extra = sorted(set(kind.sensors) - set(features))
            parts = ([f"the model needs {missing}, which it does not declare"] if missing else []) + (
                [f"it declares {extra}, which the model does not take"] if extra else []
            )
            problems.append(f"asset type {name!r}: {'; '.join(parts)}")
        if problems:
            msg = f"{plant.path}: the sensors of the plant file do not match the models: " + " | ".join(problems)
            raise InvalidInputError(msg)

    return check


def _opcua(plant: Plant, source: PlantSource, assets: list[Asset]) -> list[tuple[str, Callable[[Any], Any]]]:
    if not assets:
        return []
    settings = source.settings
    password = _secret(plant, source)
    security = settings.get("security")
    if security:
        # The certificate and key paths of the security string are relative to the plant file too.
        parts = security.split(",")
        parts[2:] = [str(plant.resolve(p)) if p and "::" not in p else p for p in parts[2:]]
        security = ",".join(parts)
    by_period: dict[float, list[Asset]] = {}
    for asset in assets:
        by_period.setdefault(asset.sampling_period, []).append(asset)
    out: list[tuple[str, Callable[[Any], Any]]] = []
    for period, group in sorted(by_period.items()):
        name = source.name if len(by_period) == 1 else f"{source.name}@{period:g}s"

        def make(runtime: Any, period: float = period, group: list[Asset] = group) -> Any:
            from vigil.streaming.sources.opcua import OpcUaAsset, OpcUaOptions, OpcUaSource

            options = OpcUaOptions(
                endpoint=settings["endpoint"],
                assets=[OpcUaAsset(a.name, dict(a.mapping), asset_type=a.type) for a in group],
                sampling_interval=period,
                username=settings.get("username"),
                password=password,
                security=security,
                timeout=float(settings.get("timeout", OpcUaOptions.timeout)),
                reconnect_min=float(settings.get("reconnect_min", OpcUaOptions.reconnect_min)),
                reconnect_max=float(settings.get("reconnect_max", OpcUaOptions.reconnect_max)),
                max_age=settings.get("max_age"),
            )
            return OpcUaSource(runtime, options)

        out.append((name, make))
    return out


def _mqtt(plant: Plant, source: PlantSource) -> Any:
    from vigil.streaming.sources.mqtt import MqttOptions

    settings = source.settings
    fields: dict[str, Any] = {
        "url": settings["url"],
        "alert_topic": plant.sinks.get("alert_topic"),
        "dead_letter_topic": plant.sinks.get("dead_letter_topic"),
    }
    for key in ("topic", "client_id", "username"):
        if key in settings:
            fields[key] = settings[key]
    password = _secret(plant, source)
    if password is not None:
        fields["password"] = password
    return MqttOptions(**fields)


def _modbus(plant: Plant, source: PlantSource, assets: list[Asset]) -> Callable[[Any], Any]:
    settings = source.settings

    def make(runtime: Any) -> Any:
        from vigil.streaming.sources.modbus import ModbusDevice, ModbusOptions, ModbusRegister, ModbusSource

        devices = []
        for asset in assets:
            registers = {}
            for sensor, spec in asset.mapping.items():
                try:
                    registers[sensor] = ModbusRegister(**spec)
                except TypeError as exc:
                    msg = f"{plant.path}:{asset.line}: asset {asset.name!r}, sensor {sensor!r}: {exc}"
                    raise InvalidInputError(msg) from exc
            devices.append(
                ModbusDevice(
                    asset=asset.name,
                    host=settings["host"],
                    sensors=registers,
                    port=int(settings.get("port", 502)),
                    unit=int(settings.get("unit", 1)),
                    poll_period=asset.sampling_period,
                    timeout=float(settings.get("timeout", ModbusDevice.timeout)),
                    asset_type=asset.type,
                    reconnect_min=float(settings.get("reconnect_min", ModbusDevice.reconnect_min)),
                    reconnect_max=float(settings.get("reconnect_max", ModbusDevice.reconnect_max)),
                )
            )
        return ModbusSource(runtime, ModbusOptions(devices=tuple(devices)))

    return make


def _sparkplug(plant: Plant, source: PlantSource, assets: list[Asset]) -> Callable[[Any], Any]:
    settings = source.settings
    password = _secret(plant, source)

    def make(runtime: Any) -> Any:
        from vigil.streaming.sources.mqtt import MqttOptions
        from vigil.streaming.sources.sparkplug import SparkplugAsset, SparkplugIngest, SparkplugOptions

        broker: dict[str, Any] = {"url": settings["url"], "client_id": settings.get("client_id", "vigil-sparkplug")}
        if "username" in settings:
            broker["username"] = settings["username"]
        if password is not None:
            broker["password"] = password
        options = SparkplugOptions(
            group=settings["group"],
            broker=MqttOptions(**broker),
            assets=tuple(SparkplugAsset(a.edge_node or "", a.device, a.name, dict(a.mapping), a.type) for a in assets),
            unlisted=False,
        )
        return SparkplugIngest(runtime, options)

    return make
