"""The plant file: one TOML file that describes a plant to Vigil, read with :mod:`tomllib` and checked whole.

Its tables (``vigil config init`` writes a commented example, :data:`vigil.plant.example.EXAMPLE`):

``[service]``
    ``http``, ``store``, ``registry``, ``token_file``, ``device_gap`` (seconds without anomaly that close an
    alert), ``target_far``, and ``silent_after``: seconds without a record after which a declared asset is
    reported silent (default three of its sampling periods, at least 10 s).
``[asset_types.NAME]``
    ``model``: a directory written by ``vigil fit`` (added to the registry under NAME), or absent when the
    registry already serves a model NAME; ``sampling_period`` (seconds, default 1); ``[.alarm]``: the
    annunciation rules of :class:`~vigil.alarms.AlarmPolicy` (``on_delay``, ``window``, ``off_delay``,
    ``deadband``, ``holdoff``, ``bypass``) applied to this type's model; ``[.sensors.SENSOR]``: ``unit``, ``range =
    [low, high]``, and the partial-record policy of :class:`~vigil.streaming.sensor_policy.SensorPolicy`
    (``on_missing``, ``on_out_of_range``, ``numeric_strings``).
``[sources.NAME]``
    ``kind`` and that kind's settings: ``opcua`` (``endpoint``, ``username``, ``password_file``, ``security``,
    ``timeout``, ``reconnect_min``, ``reconnect_max``, ``max_age``) or ``mqtt`` (Vigil's JSON records:
    ``url``, ``topic``, ``client_id``, ``username``, ``password_file``).  ``modbus`` (``host``, ``port``,
    ``unit``, ``timeout``, ``reconnect_min``, ``reconnect_max``; each asset is polled every sampling period) or
    ``sparkplug`` (``url`` of the broker, ``group``, ``client_id``, ``username``, ``password_file``; each asset
    names its ``edge_node`` and optionally ``device``).
``[assets.NAME]``
    ``type`` (an asset type), ``source`` (a source name), ``sampling_period`` (overrides the type's), and
    ``[.map]``: sensor -> where the source finds it. For ``opcua`` a node id (``"ns=2;s=Pump1.Temp"``);
    for ``sparkplug`` a metric name (``"Pump/Temperature"``); for ``modbus`` a table such as ``{ register =
    100, table = "holding", type = "float32", scale = 0.1, word_order = "big" }``. An ``mqtt`` asset needs
    no map: its records name their sensors. Every sensor of the type is mapped exactly once.
``[sinks]``
    ``webhooks`` (URLs that receive alert events), ``alert_topic`` and ``dead_letter_topic`` (published on
    the broker of the ``mqtt`` source); ``[sinks.kafka]``: ``bootstrap`` (``host:port,...``, required),
    ``alert_topic`` and ``dead_letter_topic`` (Kafka topics, default ``vigil.alerts`` and
    ``vigil.dead-letters``) and ``options`` (further librdkafka producer properties).

Checking reports *every* problem at once, each with its line (:class:`Problem`): a syntax error, an
unknown key, a value of the wrong type, an asset of an unknown type or source, a sensor mapped twice (in
one asset, or one node feeding two sensors), a sensor left unmapped or mapped but not declared.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.alarms import AlarmPolicy
from vigil.errors import InvalidInputError
from vigil.plant.lines import key_lines, line_of
from vigil.streaming.messages import DEVICE_ID_PATTERN
from vigil.streaming.sensor_policy import MISSING_POLICIES, OUT_OF_RANGE_POLICIES, SensorPolicy

__all__ = [
    "SOURCE_KINDS",
    "Asset",
    "AssetType",
    "Plant",
    "PlantSource",
    "Problem",
    "check_plant",
    "load_plant",
    "parse_plant",
]

#: Source kinds a plant file may name.
SOURCE_KINDS: tuple[str, ...] = ("opcua", "mqtt", "modbus", "sparkplug")
#: Kinds whose assets map each sensor to an address (node id, metric, register).
MAPPED_KINDS: tuple[str, ...] = ("opcua", "modbus", "sparkplug")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a plant file: its line (None when the file as a whole is wrong) and what."""

    line: int | None
    message: str

    def format(self, path: str | Path) -> str:
        return f"{path}:{self.line}: {self.message}" if self.line is not None else f"{path}: {self.message}"


@dataclass(frozen=True)
class AssetType:
    """A kind of asset: its model, sampling period, alarm rules and sensors (name -> policy, unit, range)."""

    name: str
    model: Path | None
    sampling_period: float
    sensors: dict[str, SensorPolicy]
    alarm: AlarmPolicy | None = None


@dataclass(frozen=True)
class PlantSource:
    """A source of records: a name, a kind (:data:`SOURCE_KINDS`) and that kind's settings."""

    name: str
    kind: str
    settings: dict[str, Any]
    line: int | None = None


@dataclass(frozen=True)
class Asset:
    """A declared asset: its type, its source, its sampling period and its sensors' addresses."""

    name: str
    type: str
    source: str | None
    sampling_period: float
    mapping: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    edge_node: str | None = None  # Sparkplug B
    device: str | None = None


@dataclass(frozen=True)
class Plant:
    """A checked plant file (see the module docstring)."""

    path: Path
    service: dict[str, Any]
    asset_types: dict[str, AssetType]
    sources: dict[str, PlantSource]
    assets: dict[str, Asset]
    sinks: dict[str, Any]

    def silent_after(self, asset: Asset) -> float:
        """Seconds without a record after which ``asset`` is reported silent."""
        configured = self.service.get("silent_after")
        return float(configured) if configured is not None else max(10.0, 3 * asset.sampling_period)

    def resolve(self, value: str) -> Path:
        """A path written in the plant file, relative to the file's folder."""
        path = Path(value)
        return path if path.is_absolute() else self.path.parent / path


# -- declarative checks --------------------------------------------------------------------------------

Check = Callable[[Any], str | None]


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _number(low: float | None = None, *, positive: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "must be a finite number"
        if positive and value <= 0:
            return "must be positive"
        if low is not None and value < low:
            return f"must be at least {low}"
        return None

    return check


def _share(value: Any) -> str | None:
    problem = _number()(value)
    if problem is None and not 0 < value < 1:
        return "must be a share between 0 and 1"
    return problem


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(map(repr, choices))}"

    return check


def _texts(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return "must be an array of non-empty strings"
    return None


def _range(value: Any) -> str | None:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in value)
    ):
        return "must be [low, high], two finite numbers"
    if value[0] >= value[1]:
        return "must be [low, high] with low < high"
    return None


_SERVICE: dict[str, Check] = {
    "http": _text,
    "store": _text,
    "registry": _text,
    "token_file": _text,
    "device_gap": _number(positive=True),
    "target_far": _share,
    "silent_after": _number(positive=True),
}
_ASSET_TYPE: dict[str, Check] = {"model": _text, "sampling_period": _number(positive=True)}
_ALARM: dict[str, Check] = {
    "on_delay": _number(1),
    "window": _number(1),
    "off_delay": _number(1),
    "deadband": _number(0),
    "holdoff": _number(0),
    "bypass": _number(1),
}
_SENSOR: dict[str, Check] = {
    "unit": _text,
    "range": _range,
    "on_missing": _one_of(*MISSING_POLICIES),
    "on_out_of_range": _one_of(*OUT_OF_RANGE_POLICIES),
    "numeric_strings": _flag,
}
_SOURCES: dict[str, dict[str, Check]] = {
    "opcua": {
        "endpoint": _text,
        "username": _text,
        "password_file": _text,
        "security": _text,
        "timeout": _number(positive=True),
        "reconnect_min": _number(positive=True),
        "reconnect_max": _number(positive=True),
        "max_age": _number(positive=True),
    },
    "mqtt": {"url": _text, "topic": _text, "client_id": _text, "username": _text, "password_file": _text},
    "modbus": {
        "host": _text,
        "port": _number(1),
        "unit": _number(0),
        "timeout": _number(positive=True),
        "reconnect_min": _number(positive=True),
        "reconnect_max": _number(positive=True),
    },
    "sparkplug": {"url": _text, "group": _text, "client_id": _text, "username": _text, "password_file": _text},
}
_REQUIRED_SETTINGS = {"opcua": ("endpoint",), "mqtt": ("url",), "modbus": ("host",), "sparkplug": ("url", "group")}
_ASSET: dict[str, Check] = {
    "type": _text,
    "source": _text,
    "sampling_period": _number(positive=True),
    # Sparkplug B: the edge node (and device) whose metrics feed the asset
    "edge_node": _text,
    "device": _text,
}
_SINKS: dict[str, Check] = {"webhooks": _texts, "alert_topic": _text, "dead_letter_topic": _text}
_KAFKA_SINK: dict[str, Check] = {"bootstrap": _text, "alert_topic": _text, "dead_letter_topic": _text}


def _producer_option(value: Any) -> str | None:
    if isinstance(value, bool | str) or (isinstance(value, int | float) and math.isfinite(value)):
        return None
    return "must be a string, number or boolean"


_TOP = ("service", "asset_types", "sources", "assets", "sinks")


class _Checker:
    def __init__(self, lines: Mapping[Path_, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(line_of(self.lines, path), message))

    def table(self, value: Any, path: Path_) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.add(path, f"{_name(path)} must be a table, got {_kind(value)}")
        return {}

    def fields(self, document: dict[str, Any], path: Path_, schema: Mapping[str, Check], *, nested: tuple = ()) -> None:
        """Report unknown keys and values of the wrong type in one table."""
        for key, value in document.items():
            if key in nested:
                continue
            where = (*path, key)
            check = schema.get(key)
            if check is None:
                known = ", ".join(sorted([*schema, *nested])) or "none"
                self.add(where, f"unknown key {key!r} in [{_name(path)}] (known: {known})")
                continue
            problem = check(value)
            if problem is not None:
                self.add(where, f"{_name(where)} {problem}, got {_show(value)}")


def _name(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_plant(text: str, path: str | Path = "plant.toml") -> tuple[Plant | None, list[Problem]]:
    """Check a plant file's text; return the plant (None if any problem) and every problem, by line.

    Examples
    --------
    >>> plant, problems = parse_plant('[asset_types.pump]\\nsampling_period = "1s"\\nsensors.t = {}\\n')
    >>> [p.format("plant.toml") for p in problems]
    ["plant.toml:2: asset_types.pump.sampling_period must be a finite number, got '1s'"]
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        return None, [Problem(int(found.group(1)) if found else None, f"not valid TOML: {exc}")]
    checker = _Checker(key_lines(text))
    for key in document:
        if key not in _TOP:
            checker.add((key,), f"unknown table or key {key!r} (known: {', '.join(_TOP)})")
    service = checker.table(document.get("service", {}), ("service",))
    checker.fields(service, ("service",), _SERVICE)
    sinks = checker.table(document.get("sinks", {}), ("sinks",))
    checker.fields(sinks, ("sinks",), _SINKS, nested=("kafka",))
    if "kafka" in sinks:
        _kafka_sink(checker, checker.table(sinks["kafka"], ("sinks", "kafka")))
    types = _asset_types(checker, checker.table(document.get("asset_types", {}), ("asset_types",)))
    sources = _sources(checker, checker.table(document.get("sources", {}), ("sources",)))
    assets = _assets(checker, checker.table(document.get("assets", {}), ("assets",)), types, sources)
    if not assets and not checker.problems:
        checker.add((), "the plant declares no asset: add an [assets.NAME] table")
    if (sinks.get("alert_topic") or sinks.get("dead_letter_topic")) and not any(
        s.kind == "mqtt" for s in sources.values()
    ):
        checker.add(("sinks",), "sinks.alert_topic and sinks.dead_letter_topic need a source of kind 'mqtt'")
    if sum(s.kind == "mqtt" for s in sources.values()) > 1:
        checker.add(("sources",), "at most one source of kind 'mqtt' (one broker connection) is supported")
    problems = sorted(set(checker.problems), key=lambda p: (p.line or 0, p.message))
    if problems:
        return None, problems
    plant = Plant(Path(path), dict(service), types, sources, assets, dict(sinks))
    return plant, []


def _kafka_sink(checker: _Checker, document: dict[str, Any]) -> None:
    path = ("sinks", "kafka")
    checker.fields(document, path, _KAFKA_SINK, nested=("options",))
    if "bootstrap" not in document:
        checker.add(path, "[sinks.kafka] needs bootstrap (the brokers, host:port[,host:port...])")
    if "options" in document:
        options = checker.table(document["options"], (*path, "options"))
        checker.fields(options, (*path, "options"), dict.fromkeys(options, _producer_option))


def _asset_types(checker: _Checker, document: dict[str, Any]) -> dict[str, AssetType]:
    types = {}
    for name, raw in document.items():
        path: Path_ = ("asset_types", name)
        table = checker.table(raw, path)
        checker.fields(table, path, _ASSET_TYPE, nested=("alarm", "sensors"))
        sensors: dict[str, SensorPolicy] = {}
        for sensor, spec in checker.table(table.get("sensors", {}), (*path, "sensors")).items():
            where = (*path, "sensors", sensor)
            spec = checker.table(spec, where)
            checker.fields(spec, where, _SENSOR)
            low, high = spec["range"] if _range(spec.get("range")) is None else (None, None)
            try:
                sensors[sensor] = SensorPolicy(
                    unit=spec.get("unit") if isinstance(spec.get("unit"), str) else None,
                    low=low,
                    high=high,
                    on_missing=spec.get("on_missing", "reject"),
                    on_out_of_range=spec.get("on_out_of_range", "reject"),
                    numeric_strings=spec.get("numeric_strings") is True,
                )
            except InvalidInputError:
                pass  # already reported field by field
        if not sensors:
            checker.add(path, f"asset type {name!r} declares no sensor: add [asset_types.{name}.sensors.NAME]")
        alarm = None
        if "alarm" in table:
            rules = checker.table(table["alarm"], (*path, "alarm"))
            before = len(checker.problems)
            checker.fields(rules, (*path, "alarm"), _ALARM)
            if len(checker.problems) == before:
                try:
                    alarm = AlarmPolicy(**rules)
                except (InvalidInputError, TypeError) as exc:
                    checker.add((*path, "alarm"), f"{_name((*path, 'alarm'))}: {exc}")
        model = table.get("model")
        period = table.get("sampling_period", 1.0)
        types[name] = AssetType(
            name,
            Path(model) if isinstance(model, str) and model else None,
            float(period) if _number(positive=True)(period) is None else 1.0,
            sensors,
            alarm,
        )
    return types


def _sources(checker: _Checker, document: dict[str, Any]) -> dict[str, PlantSource]:
    sources = {}
    for name, raw in document.items():
        path: Path_ = ("sources", name)
        table = checker.table(raw, path)
        kind = table.get("kind")
        if kind not in SOURCE_KINDS:
            what = "has no 'kind'" if kind is None else f"has kind {kind!r}"
            checker.add((*path, "kind") if kind is not None else path, f"source {name!r} {what}: one of {SOURCE_KINDS}")
            continue
        settings = {k: v for k, v in table.items() if k != "kind"}
        checker.fields(settings, path, _SOURCES[kind])
        for required in _REQUIRED_SETTINGS.get(kind, ()):
            if required not in settings:
                checker.add(path, f"source {name!r} of kind {kind!r} needs {required!r}")
        endpoint = settings.get("endpoint")
        if kind == "opcua" and isinstance(endpoint, str) and not endpoint.startswith("opc.tcp://"):
            checker.add((*path, "endpoint"), f"sources.{name}.endpoint must start with opc.tcp://, got {endpoint!r}")
        sources[name] = PlantSource(name, kind, settings, line_of(checker.lines, path))
    return sources


def _assets(
    checker: _Checker, document: dict[str, Any], types: dict[str, AssetType], sources: dict[str, PlantSource]
) -> dict[str, Asset]:
    device_id = re.compile(DEVICE_ID_PATTERN)
    assets = {}
    addresses: dict[tuple[str, str], tuple[str, str, Path_]] = {}  # (source, address) -> (asset, sensor, path)
    for name, raw in document.items():
        path: Path_ = ("assets", name)
        table = checker.table(raw, path)
        checker.fields(table, path, _ASSET, nested=("map",))
        if device_id.fullmatch(name) is None:
            checker.add(path, f"asset name {name!r} is not a device id (letters, digits and . _ : @ ~ - only)")
        type_name = table.get("type")
        asset_type = types.get(type_name) if isinstance(type_name, str) else None
        if type_name is None:
            checker.add(path, f"asset {name!r} has no 'type' (one of: {', '.join(types) or 'none declared'})")
        elif asset_type is None and isinstance(type_name, str):
            checker.add((*path, "type"), f"asset {name!r} has type {type_name!r}, which [asset_types] does not declare")
        source_name = table.get("source")
        source = sources.get(source_name) if isinstance(source_name, str) else None
        if isinstance(source_name, str) and source is None:
            checker.add(
                (*path, "source"), f"asset {name!r} names source {source_name!r}, which [sources] does not declare"
            )
        mapping = checker.table(table.get("map", {}), (*path, "map"))
        if source is not None and source.kind in MAPPED_KINDS and asset_type is not None:
            _check_mapping(checker, name, path, mapping, asset_type, source, addresses)
        elif mapping and source is not None and source.kind not in MAPPED_KINDS:
            checker.add((*path, "map"), f"asset {name!r}: a source of kind {source.kind!r} takes no map")
        is_sparkplug = source is not None and source.kind == "sparkplug"
        if is_sparkplug and "edge_node" not in table:
            checker.add(path, f"asset {name!r} on Sparkplug B source {source_name!r} needs 'edge_node'")
        for key in ("edge_node", "device"):
            if key in table and not is_sparkplug:
                checker.add((*path, key), f"asset {name!r}: {key!r} applies to assets on a 'sparkplug' source only")
        period: Any = table.get("sampling_period")  # a finite positive number once checked
        if _number(positive=True)(period) is not None:
            period = asset_type.sampling_period if asset_type is not None else 1.0
        assets[name] = Asset(
            name,
            type_name if isinstance(type_name, str) else "",
            source_name if isinstance(source_name, str) else None,
            float(period),
            dict(mapping),
            line_of(checker.lines, path),
            table.get("edge_node") if isinstance(table.get("edge_node"), str) else None,
            table.get("device") if isinstance(table.get("device"), str) else None,
        )
    return assets


def _check_mapping(
    checker: _Checker,
    name: str,
    path: Path_,
    mapping: dict[str, Any],
    asset_type: AssetType,
    source: PlantSource,
    addresses: dict[tuple[str, str], tuple[str, str, Path_]],
) -> None:
    for sensor in asset_type.sensors:
        if sensor not in mapping:
            checker.add((*path, "map"), f"asset {name!r}: sensor {sensor!r} of type {asset_type.name!r} is not mapped")
    for sensor, address in mapping.items():
        where = (*path, "map", sensor)
        if sensor not in asset_type.sensors:
            checker.add(where, f"asset {name!r} maps {sensor!r}, which type {asset_type.name!r} does not declare")
            continue
        key = _address_key(checker, where, source.kind, address)
        if key is None:
            continue
        other = addresses.get((source.name, key))
        if other is not None:
            first = line_of(checker.lines, other[2])
            checker.add(
                where,
                f"{source.kind} address {key} of source {source.name!r} is mapped twice: to {other[0]}.{other[1]} "
                f"(line {first}) and to {name}.{sensor}",
            )
            continue
        addresses[(source.name, key)] = (name, sensor, where)


def _address_key(checker: _Checker, where: Path_, kind: str, address: Any) -> str | None:
    """The canonical form of a sensor's address, or None (and a problem) when it is malformed."""
    if kind == "opcua":
        if not isinstance(address, str) or not address:
            checker.add(
                where, f'{_name(where)} must be an OPC UA node id such as "ns=2;s=Pump1.Temp", got {_show(address)}'
            )
            return None
        return _node_id(checker, where, address)
    if kind == "sparkplug":
        if not isinstance(address, str) or not address:
            checker.add(where, f"{_name(where)} must be a Sparkplug metric name, got {_show(address)}")
            return None
        return address
    # modbus: a table naming at least the register; the rest is checked by the Modbus source
    if not isinstance(address, dict) or not isinstance(address.get("register"), int) or address["register"] < 0:
        checker.add(where, f"{_name(where)} must be a table with a 'register' number ≥ 0, got {_show(address)}")
        return None
    try:
        from vigil.streaming.sources.modbus_registers import ModbusRegister
    except ImportError:  # pymodbus is not installed: serving will say what to install
        pass
    else:
        try:
            ModbusRegister(**address)
        except (TypeError, InvalidInputError) as exc:
            checker.add(where, f"{_name(where)}: {exc}")
            return None
    return f"{address.get('unit', 1)}:{address.get('table', 'holding')}:{address['register']}"


def _node_id(checker: _Checker, where: Path_, text: str) -> str | None:
    try:
        from vigil.streaming.sources.opcua import parse_node_id
    except ImportError:  # asyncua is not installed: keep the text as written; serving will say what to install
        return text
    try:
        return parse_node_id(text, where=_name(where))
    except InvalidInputError as exc:
        checker.add(where, str(exc))
        return None


def check_plant(path: str | Path) -> list[Problem]:
    """Every problem of the plant file at ``path``, by line (empty when it is fine)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(None, f"cannot read the plant file: {exc}")]
    return parse_plant(text, path)[1]


def load_plant(path: str | Path) -> Plant:
    """Read and check the plant file at ``path``.

    Raises
    ------
    InvalidInputError
        Naming every problem, each with its line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the plant file {path}: {exc}"
        raise InvalidInputError(msg) from exc
    plant, problems = parse_plant(text, path)
    if plant is None:
        listed = "\n".join(p.format(path) for p in problems)
        msg = f"the plant file {path} has {len(problems)} problem(s):\n{listed}"
        raise InvalidInputError(msg)
    return plant
