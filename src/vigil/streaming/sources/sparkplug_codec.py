"""Sparkplug B topics and payloads: parse a topic, decode a payload's metrics, encode a payload.

The payload schema is Eclipse Tahu's published ``sparkplug_b.proto`` (EPL-2.0, shipped unmodified beside
this module), compiled with ``protoc --python_out=. --pyi_out=. sparkplug_b.proto`` into ``sparkplug_b_pb2.py``
for the ``protobuf`` runtime and ``sparkplug_b_pb2.pyi`` for type checkers. The maintained Python Sparkplug
libraries pin old ``protobuf`` or ``paho-mqtt`` 1.x releases, which the service cannot share.

Topics are ``spBv1.0/<group>/<type>/<edge node>[/<device>]``. Metric values follow the Sparkplug B 3.0
encoding: signed integers travel as two's complement in the unsigned ``int_value`` (8, 16 or 32 bits) or
``long_value`` (64 bits), booleans in ``boolean_value``, floats and doubles in their own fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from vigil.errors import InvalidInputError

try:
    from google.protobuf.message import DecodeError

    from vigil.streaming.sources import sparkplug_b_pb2 as pb
except ImportError as exc:  # protobuf missing, or older than the compiled schema needs
    msg = f"the Sparkplug B source needs protobuf 7: pip install 'vigil[plant]' ({exc})"
    raise ImportError(msg) from exc

__all__ = [
    "BDSEQ_METRIC",
    "DATATYPE_NAMES",
    "MESSAGE_TYPES",
    "NAMESPACE",
    "NUMERIC_DATATYPES",
    "REBIRTH_METRIC",
    "MetricUpdate",
    "Payload",
    "Topic",
    "decode",
    "encode",
    "metric_number",
    "parse_topic",
    "rebirth_command",
]

NAMESPACE = "spBv1.0"
#: The message types of an edge node's topics (STATE, a host application's own topic, is not one of them).
MESSAGE_TYPES = ("NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "DCMD")
#: The NCMD metric that asks an edge node to publish its birth certificates again.
REBIRTH_METRIC = "Node Control/Rebirth"
#: The birth/death sequence metric that pairs an NDEATH with the NBIRTH of the same session.
BDSEQ_METRIC = "bdSeq"

DATATYPE_NAMES = {value: name for name, value in pb.DataType.items()}
_SIGNED_BITS: dict[int, int] = {pb.Int8: 8, pb.Int16: 16, pb.Int32: 32, pb.Int64: 64}
_UNSIGNED = {pb.UInt8, pb.UInt16, pb.UInt32, pb.UInt64}
_FLOATS = {pb.Float, pb.Double}
#: Data types that become a reading: integers, floats and booleans (1.0 or 0.0).
NUMERIC_DATATYPES = frozenset({*_SIGNED_BITS, *_UNSIGNED, *_FLOATS, pb.Boolean})
_VALUE_FIELDS: dict[int, str] = {
    pb.Int8: "int_value",
    pb.Int16: "int_value",
    pb.Int32: "int_value",
    pb.UInt8: "int_value",
    pb.UInt16: "int_value",
    pb.UInt32: "int_value",
    pb.Int64: "long_value",
    pb.UInt64: "long_value",
    pb.DateTime: "long_value",
    pb.Float: "float_value",
    pb.Double: "double_value",
    pb.Boolean: "boolean_value",
    pb.String: "string_value",
    pb.Text: "string_value",
    pb.UUID: "string_value",
}


class Topic(NamedTuple):
    """The parts of a Sparkplug B message topic."""

    group: str
    message_type: str
    edge_node: str
    device: str | None


def parse_topic(topic: str) -> Topic:
    """Split a Sparkplug B topic, or raise :class:`~vigil.errors.InvalidInputError` saying what is wrong.

    Examples
    --------
    >>> parse_topic("spBv1.0/plant1/DDATA/line-3/pump-7")
    Topic(group='plant1', message_type='DDATA', edge_node='line-3', device='pump-7')
    >>> parse_topic("spBv1.0/plant1/NBIRTH/line-3").device is None
    True
    """
    levels = topic.split("/")
    if len(levels) not in (4, 5) or levels[0] != NAMESPACE or levels[2] not in MESSAGE_TYPES:
        msg = f"{topic!r} is not a Sparkplug B topic ({NAMESPACE}/<group>/<type>/<edge node>[/<device>])"
        raise InvalidInputError(msg)
    device = levels[4] if len(levels) == 5 else None
    if levels[2].startswith("D") and device is None:
        msg = f"{topic!r}: a {levels[2]} topic names a device after the edge node"
        raise InvalidInputError(msg)
    if levels[2].startswith("N") and device is not None:
        msg = f"{topic!r}: an {levels[2]} topic ends at the edge node"
        raise InvalidInputError(msg)
    return Topic(levels[1], levels[2], levels[3], device)


@dataclass(frozen=True, slots=True)
class MetricUpdate:
    """One metric of a payload, as sent: a name (births) or an alias (data), and its raw value.

    ``value`` is the set field of the protobuf ``value`` oneof (None when no field is set), and ``field`` its
    name; :func:`metric_number` turns it into a reading once the data type is known.
    """

    name: str | None
    alias: int | None
    datatype: int | None
    field: str | None
    value: Any
    is_null: bool = False
    is_historical: bool = False
    timestamp_ms: int | None = None

    def label(self) -> str:
        """How reasons name the metric."""
        if self.name is not None:
            return repr(self.name)
        return f"alias {self.alias}" if self.alias is not None else "an unnamed metric"


@dataclass(frozen=True, slots=True)
class Payload:
    """A decoded Sparkplug B payload."""

    timestamp_ms: int | None
    seq: int | None
    metrics: tuple[MetricUpdate, ...]


def decode(raw: bytes) -> Payload:
    """Decode a Sparkplug B payload, or raise :class:`~vigil.errors.InvalidInputError` with the reason.

    Examples
    --------
    >>> payload = decode(encode(1_700_000_000_000, 3, [("Temperature", 1, "Double", 41.5)]))
    >>> payload.seq, payload.metrics[0].name, payload.metrics[0].value
    (3, 'Temperature', 41.5)
    >>> decode(b"\\xff\\xff")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: not a Sparkplug B payload: ...
    """
    message = pb.Payload()
    try:
        message.ParseFromString(bytes(raw))
    except (DecodeError, ValueError) as exc:
        msg = f"not a Sparkplug B payload: {exc}"
        raise InvalidInputError(msg) from exc
    metrics = []
    for metric in message.metrics:
        which = metric.WhichOneof("value")
        metrics.append(
            MetricUpdate(
                name=metric.name if metric.HasField("name") else None,
                alias=metric.alias if metric.HasField("alias") else None,
                datatype=metric.datatype if metric.HasField("datatype") else None,
                field=which,
                value=None if which is None else getattr(metric, which),
                is_null=metric.is_null,
                is_historical=metric.is_historical,
                timestamp_ms=metric.timestamp if metric.HasField("timestamp") else None,
            )
        )
    return Payload(
        timestamp_ms=message.timestamp if message.HasField("timestamp") else None,
        seq=message.seq if message.HasField("seq") else None,
        metrics=tuple(metrics),
    )


def metric_number(metric: MetricUpdate, datatype: int | None) -> float | str:
    """The metric's value as a reading, or the reason it has none (a string).

    ``datatype`` is the metric's own, or the one its birth certificate declared for its alias.

    Examples
    --------
    >>> metric_number(MetricUpdate("t", None, None, "int_value", 2**16 - 5), 2)  # Int16 -5
    -5.0
    >>> metric_number(MetricUpdate("t", None, 12, "string_value", "on"), 12)
    "metric 't' is a String, not a number"
    """
    if metric.is_null:
        return f"metric {metric.label()} is null"
    if datatype is None:
        return f"metric {metric.label()} has no data type (neither in the message nor in its birth certificate)"
    if datatype not in NUMERIC_DATATYPES:
        return f"metric {metric.label()} is a {DATATYPE_NAMES.get(datatype, datatype)}, not a number"
    expected = _VALUE_FIELDS[datatype]
    if metric.field != expected:
        name = DATATYPE_NAMES[datatype]
        got = "no value" if metric.field is None else metric.field
        return f"metric {metric.label()} is a {name} but carries {got} instead of {expected}"
    value = metric.value
    if datatype in _SIGNED_BITS:
        bits = _SIGNED_BITS[datatype]
        value &= (1 << bits) - 1
        if value >= 1 << (bits - 1):
            value -= 1 << bits
    return float(value)


def encode(
    timestamp_ms: int,
    seq: int | None,
    metrics: Iterable[tuple[str | None, int | None, str, Any]],
) -> bytes:
    """Encode a payload of ``(name, alias, datatype name, value)`` metrics; a None value is sent as null.

    Signed integers are written as two's complement, as :func:`metric_number` reads them.
    """
    message = pb.Payload(timestamp=timestamp_ms)
    if seq is not None:
        message.seq = seq
    for name, alias, type_name, value in metrics:
        datatype = pb.DataType.Value(type_name)
        metric = message.metrics.add(datatype=datatype, timestamp=timestamp_ms)
        if name is not None:
            metric.name = name
        if alias is not None:
            metric.alias = alias
        if value is None:
            metric.is_null = True
            continue
        if datatype in _SIGNED_BITS and value < 0:
            value += 1 << _SIGNED_BITS[datatype]  # as Eclipse Tahu writes them
        setattr(metric, _VALUE_FIELDS[datatype], value)
    return message.SerializeToString()


def rebirth_command(timestamp_ms: int) -> bytes:
    """The NCMD payload that asks an edge node for its birth certificates again.

    Examples
    --------
    >>> decode(rebirth_command(0)).metrics[0].name
    'Node Control/Rebirth'
    """
    return encode(timestamp_ms, None, [(REBIRTH_METRIC, None, "Boolean", True)])
