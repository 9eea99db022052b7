"""Telemetry messages: the JSON payload schema and its decoding, with refusals instead of repairs.

One record is a JSON object::

    {
      "device": "pump-7",                        # see DEVICE_ID_PATTERN; on MQTT the topic may name it
      "time": "2024-05-01T12:00:00.250+00:00",   # ISO 8601 with a UTC offset, or POSIX seconds
      "readings": {"temp_c": 41.2, "flow_m3h": 12.5},   # sensor name -> finite number
      "asset_type": "pump",                      # optional: the model to score with (else by device route)
      "seq": 1042,                               # optional: the device's message counter, echoed in messages
      "quality": {"flow_m3h": "BadSensorFailure"}  # optional: why a reading is null (see below)
    }

A reading is a number, or ``null`` for a sensor that has no value at that time (a failed sensor, a ``Bad``
OPC UA status, a register that could not be read). ``quality`` says why, per null reading; it may name only
sensors whose reading is null. What happens to a record with a null reading is the sensor's missing-value
policy, applied by the runtime (by default the record becomes a ``missing_value`` dead letter with the
reason): decoding never puts a number in its place.

A payload is one record, a JSON array of records, or ``{"records": [...]}``.

Limits, each refused with a located reason instead of reaching a parser or a model:

- a payload of at most ``max_bytes`` bytes and ``max_records`` records (the runtime's configuration);
- JSON nested at most :data:`MAX_NESTING_DEPTH` levels deep;
- a number literal of at most :data:`MAX_NUMBER_CHARS` characters (a longer one would cost quadratic time
  to convert, or overflow a float: it is refused as ``wrong_type`` in a reading, and its record only);
- a time between :data:`MIN_TIME` (inclusive) and :data:`MAX_TIME` (exclusive), after applying its offset;
- a device id matching :data:`DEVICE_ID_PATTERN`: it is a URL path segment (``/devices/{id}/timeline``) and an
  MQTT topic level, so ``/``, ``+``, ``#``, spaces and control characters are refused.

Decoding checks the shape only; whether the readings match a model's sensors is checked by the runtime once it
knows the model.
Anything wrong becomes a :class:`Rejection` with a dead-letter ``kind`` (see
:data:`vigil.streaming.dead_letters.DEAD_LETTER_KINDS`) and a located reason — never an exception that could
stop a long-running consumer, and never a silent fix.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from vigil.errors import InvalidInputError

__all__ = [
    "DEVICE_ID_PATTERN",
    "MAX_DEVICE_CHARS",
    "MAX_NESTING_DEPTH",
    "MAX_NUMBER_CHARS",
    "MAX_TIME",
    "MIN_TIME",
    "OPTIONAL_FIELDS",
    "REQUIRED_FIELDS",
    "OversizedNumber",
    "Reading",
    "Rejection",
    "decode_payload",
    "nesting_depth",
    "parse_record",
]

#: Fields every record has (``device`` may come from the MQTT topic instead).
REQUIRED_FIELDS: tuple[str, ...] = ("device", "time", "readings")
#: Fields a record may have.
OPTIONAL_FIELDS: tuple[str, ...] = ("asset_type", "seq", "quality")
#: Longest accepted device id.
MAX_DEVICE_CHARS = 128
#: What a device id may be made of: an ASCII letter or digit first, then letters, digits and ``. _ : @ ~ -``.
#: Ids are URL path segments and MQTT topic levels, so they must survive both unchanged.
DEVICE_ID_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9._:@~-]{{0,{MAX_DEVICE_CHARS - 1}}}"
#: Deepest nesting of arrays and objects in a payload (a batch of records needs 4).
MAX_NESTING_DEPTH = 16
#: Longest number literal, in characters (a float64 needs at most 24 to be written exactly).
MAX_NUMBER_CHARS = 40
#: Earliest accepted time: POSIX zero.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
#: Times from here on are refused (far beyond any plant's lifetime, and within every clock's range).
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
#: Longest ``time`` text accepted (ISO 8601 with nanoseconds and an offset needs 35).
MAX_TIME_CHARS = 64

_EPOCH = MIN_TIME
_MIN_SECONDS = MIN_TIME.timestamp()
_MAX_SECONDS = MAX_TIME.timestamp()
_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)
_REQUIRED_BESIDE_DEVICE = frozenset(REQUIRED_FIELDS) - {"device"}
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


class OversizedNumber:
    """Stands for a number literal longer than :data:`MAX_NUMBER_CHARS`, so only its record is refused.

    Decoding never converts such a literal (Python refuses integers of more than 4,300 digits outright and
    turns long decimals into infinity); the validation of the field that holds it refuses it with its length.
    """

    __slots__ = ("chars",)

    def __init__(self, literal: str) -> None:
        self.chars = len(literal)

    def __repr__(self) -> str:
        return f"a number of {self.chars} characters (at most {MAX_NUMBER_CHARS} are accepted)"


def _parse_int(literal: str) -> int | OversizedNumber:
    return OversizedNumber(literal) if len(literal) > MAX_NUMBER_CHARS else int(literal)


def _parse_float(literal: str) -> float | OversizedNumber:
    return OversizedNumber(literal) if len(literal) > MAX_NUMBER_CHARS else float(literal)


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float)


def nesting_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count).

    Examples
    --------
    >>> nesting_depth(b'[{"a": [1, "]]]"]}]')
    3
    """
    text = _STRINGS.sub(b"", raw)
    steps = _OPEN[np.frombuffer(text, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


class Rejection(NamedTuple):
    """Why a payload or record was refused: a dead-letter ``kind``, a reason, and the device if known."""

    kind: str
    reason: str
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded record, not yet matched to a model.

    Attributes
    ----------
    device : str
    time : datetime
        Timezone-aware, UTC.
    values : dict
        The ``readings`` object as received: numbers are checked against the model's sensors later.
    asset_type : str or None
        The model to score with, when the record names one.
    seq : int or None
    quality : dict or None
        Sensor -> why its reading is null, as the source said.
    """

    device: str
    time: datetime
    values: dict[str, Any]
    asset_type: str | None = None
    seq: int | None = None
    quality: dict[str, str] | None = None

    @property
    def timestamp(self) -> float:
        """POSIX seconds of :attr:`time`."""
        return (self.time - _EPOCH).total_seconds()


def decode_payload(raw: bytes | str, *, max_bytes: int, max_records: int) -> list[Any] | Rejection:
    """Decode a payload into a list of record objects, or say why it cannot be.

    Parameters
    ----------
    raw : bytes or str
        The message body.
    max_bytes : int
        Larger payloads are refused unread (``oversized``).
    max_records : int
        Batches with more records are refused whole (``oversized``).

    Examples
    --------
    >>> decode_payload(b'[{"device": "p1"}, {"device": "p2"}]', max_bytes=1000, max_records=10)
    [{'device': 'p1'}, {'device': 'p2'}]
    >>> decode_payload(b'{"device": ', max_bytes=1000, max_records=10).kind
    'invalid_json'
    """
    size = len(raw)
    if size > max_bytes:
        return Rejection("oversized", f"payload of {size} bytes is larger than the limit of {max_bytes} bytes")
    data = bytes(raw) if isinstance(raw, bytes | bytearray) else raw.encode("utf-8", "surrogatepass")
    # Most payloads hold too few brackets to nest deeply; only the others are measured.
    if data.count(b"[") + data.count(b"{") > MAX_NESTING_DEPTH:
        depth = nesting_depth(data)
        if depth > MAX_NESTING_DEPTH:
            return Rejection("invalid_json", f"payload nests {depth} levels deep, at most {MAX_NESTING_DEPTH} allowed")
    try:
        # Decoding first skips json's encoding detection, which costs more than the parse of a small record.
        document = _DECODER.decode(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Rejection("invalid_json", f"payload is not UTF-8 text: {exc}")
    except (json.JSONDecodeError, RecursionError) as exc:
        return Rejection("invalid_json", f"payload is not valid JSON: {exc}")
    if isinstance(document, dict) and "records" in document:
        if set(document) != {"records"}:
            extra = sorted(set(document) - {"records"})
            return Rejection("invalid_record", f"a batch object holds only 'records', got also {extra}")
        document = document["records"]
        if not isinstance(document, list):
            return Rejection("invalid_record", f"'records' must be an array, got {type(document).__name__}")
    records = document if isinstance(document, list) else [document]
    if not records:
        return Rejection("invalid_record", "the batch holds no record")
    if len(records) > max_records:
        return Rejection("oversized", f"batch of {len(records)} records is larger than the limit of {max_records}")
    return records


def _check_device(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"'device' must be a non-empty string, got {value!r}"
    if len(value) > MAX_DEVICE_CHARS:
        return f"'device' is {len(value)} characters long, at most {MAX_DEVICE_CHARS} allowed"
    if _DEVICE_ID.fullmatch(value) is None:
        return (
            f"'device' {value!r} is not a device id: an ASCII letter or digit, then letters, digits "
            "and . _ : @ ~ - only"
        )
    return None


def parse_record(record: Any, *, device_hint: str | None = None, where: str = "record") -> Reading | Rejection:
    """Check one record's shape and return a :class:`Reading`, or a :class:`Rejection`.

    Parameters
    ----------
    record : object
        One element of :func:`decode_payload`'s list.
    device_hint : str, optional
        The device named by the transport (an MQTT topic level). A record without ``device`` takes it; a
        record whose ``device`` differs is refused, since one of the two is wrong.
    where : str
        Names the record in reasons, for example ``"record 3"``.

    Examples
    --------
    >>> parse_record({"device": "p1", "time": 0, "readings": {"t": 1.5}})
    Reading(device='p1', time=datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), values={'t': 1.5}, asset_type=None, seq=None, quality=None)
    >>> parse_record({"time": 0, "readings": {}}).reason
    "record is missing 'device'"
    >>> parse_record({"device": "p1", "time": "2024-05-01T12:00:00", "readings": {"t": 1}}).kind
    'invalid_record'
    """  # noqa: E501
    if not isinstance(record, dict):
        return Rejection("invalid_record", f"{where} must be a JSON object, got {type(record).__name__}")
    device = record.get("device", device_hint)
    if device is None:
        return Rejection("invalid_record", f"{where} is missing 'device'")
    problem = _check_device(device)
    if problem is not None:
        return Rejection("invalid_record", f"{where}: {problem}")
    if device_hint is not None and device != device_hint:
        reason = f"{where}: 'device' is {device!r} but the topic names {device_hint!r}"
        return Rejection("invalid_record", reason, device)
    keys = record.keys()
    if not (_REQUIRED_BESIDE_DEVICE <= keys and keys <= _FIELDS):
        missing = [name for name in REQUIRED_FIELDS if name != "device" and name not in record]
        extra = sorted(str(k) for k in record if k not in REQUIRED_FIELDS and k not in OPTIONAL_FIELDS)
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected fields {extra}"] if extra else [])
        return Rejection("invalid_record", f"{where} ({device}): {', '.join(parts)}", device)
    readings = record["readings"]
    if not isinstance(readings, dict) or not readings:
        reason = f"{where} ({device}): 'readings' must be a non-empty object of sensor -> number"
        return Rejection("invalid_record", reason, device)
    try:
        moment = _parse_time(record["time"])
    except InvalidInputError as exc:
        return Rejection("invalid_record", f"{where} ({device}): {exc}", device)
    asset_type = record.get("asset_type")
    if asset_type is not None and (not isinstance(asset_type, str) or not asset_type):
        return Rejection("invalid_record", f"{where} ({device}): 'asset_type' must be a non-empty string", device)
    seq = record.get("seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        return Rejection("invalid_record", f"{where} ({device}): 'seq' must be an integer, got {seq!r}", device)
    quality = record.get("quality")
    if quality is not None:
        problem = _check_quality(quality, readings)
        if problem is not None:
            return Rejection("invalid_record", f"{where} ({device}): {problem}", device)
    return Reading(device=device, time=moment, values=readings, asset_type=asset_type, seq=seq, quality=quality)


def _check_quality(quality: Any, readings: dict[str, Any]) -> str | None:
    if not isinstance(quality, dict):
        return f"'quality' must be an object of sensor -> reason, got {type(quality).__name__}"
    for sensor, reason in quality.items():
        if not isinstance(reason, str) or not reason:
            return f"'quality'[{sensor!r}] must be a non-empty string, got {reason!r}"
        if sensor not in readings or readings[sensor] is not None:
            return f"'quality' names {sensor!r}, whose reading is not null (quality explains null readings only)"
    return None


def _parse_time(value: Any) -> datetime:
    kind = type(value)
    if (kind is float or kind is int) and _MIN_SECONDS <= value < _MAX_SECONDS:  # the common case, in one test
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, OversizedNumber):
        msg = f"'time' is {value!r}"
        raise InvalidInputError(msg)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        # JSON integers are exact and unbounded: compare before any float conversion can overflow.
        if not (isinstance(value, int) or math.isfinite(value)):
            msg = f"'time' is not a finite number: {value!r}"
            raise InvalidInputError(msg)
        # numbers.Real only declares < and <=, so the bounds are written with those.
        if value < MIN_TIME.timestamp() or not value < MAX_TIME.timestamp():
            msg = f"'time' {value!r} is out of range: POSIX seconds from 0 up to {MAX_TIME.timestamp():.0f}"
            raise InvalidInputError(msg)
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        if len(value) > MAX_TIME_CHARS:
            msg = f"'time' text is {len(value)} characters long, at most {MAX_TIME_CHARS} allowed"
            raise InvalidInputError(msg)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            msg = f"'time' is not ISO 8601: {value!r}"
            raise InvalidInputError(msg) from exc
        if moment.tzinfo is None or moment.utcoffset() is None:
            msg = f"'time' has no UTC offset: {value!r} (write for example {value}+00:00)"
            raise InvalidInputError(msg)
        try:
            moment = moment.astimezone(UTC)
        except OverflowError as exc:  # 9999-12-31T23:59:59-23:59 is past datetime.max once in UTC
            msg = f"'time' {value!r} is out of range once converted to UTC"
            raise InvalidInputError(msg) from exc
        if not MIN_TIME <= moment < MAX_TIME:
            msg = f"'time' {value!r} is out of range: from {MIN_TIME.isoformat()} to before {MAX_TIME.isoformat()}"
            raise InvalidInputError(msg)
        return moment
    msg = f"'time' must be ISO 8601 text or POSIX seconds, got {type(value).__name__}"
    raise InvalidInputError(msg)
