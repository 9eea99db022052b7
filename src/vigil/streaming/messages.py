"""Telemetry messages: the JSON payload schema and its decoding, with refusals instead of repairs.

One record is a JSON object::

    {
      "device": "pump-7",                        # 1-128 printable characters; on MQTT the topic may name it
      "time": "2024-05-01T12:00:00.250+00:00",   # ISO 8601 with a UTC offset, or POSIX seconds
      "readings": {"temp_c": 41.2, "flow_m3h": 12.5},   # sensor name -> finite number
      "asset_type": "pump",                      # optional: the model to score with (else by device route)
      "seq": 1042                                # optional: the device's message counter, echoed in messages
    }

A payload is one record, a JSON array of records, or ``{"records": [...]}``. Decoding checks the shape
only; whether the readings match a model's sensors is checked by the runtime once it knows the model.
Anything wrong becomes a :class:`Rejection` with a dead-letter ``kind`` (see
:data:`vigil.streaming.dead_letters.DEAD_LETTER_KINDS`) and a located reason — never an exception that could
stop a long-running consumer, and never a silent fix.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from vigil.errors import InvalidInputError

__all__ = [
    "MAX_DEVICE_CHARS",
    "OPTIONAL_FIELDS",
    "REQUIRED_FIELDS",
    "Reading",
    "Rejection",
    "decode_payload",
    "parse_record",
]

#: Fields every record has (``device`` may come from the MQTT topic instead).
REQUIRED_FIELDS: tuple[str, ...] = ("device", "time", "readings")
#: Fields a record may have.
OPTIONAL_FIELDS: tuple[str, ...] = ("asset_type", "seq")
#: Longest accepted device id.
MAX_DEVICE_CHARS = 128

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    """

    device: str
    time: datetime
    values: dict[str, Any]
    asset_type: str | None = None
    seq: int | None = None

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
    try:
        # Decoding first skips json's encoding detection, which costs more than the parse of a small record.
        document = json.loads(raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw)
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
    if not value.isprintable():
        return f"'device' holds control characters: {value!r}"
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
    Reading(device='p1', time=datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), values={'t': 1.5}, asset_type=None, seq=None)
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
    missing = [name for name in REQUIRED_FIELDS if name != "device" and name not in record]
    extra = sorted(str(k) for k in record if k not in REQUIRED_FIELDS and k not in OPTIONAL_FIELDS)
    if missing or extra:
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
    return Reading(device=device, time=moment, values=readings, asset_type=asset_type, seq=seq)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            msg = f"'time' is not a finite number: {value!r}"
            raise InvalidInputError(msg)
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            msg = f"'time' {value!r} is out of range"
            raise InvalidInputError(msg) from exc
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            msg = f"'time' is not ISO 8601: {value!r}"
            raise InvalidInputError(msg) from exc
        if moment.tzinfo is None or moment.utcoffset() is None:
            msg = f"'time' has no UTC offset: {value!r} (write for example {value}+00:00)"
            raise InvalidInputError(msg)
        return moment.astimezone(UTC)
    msg = f"'time' must be ISO 8601 text or POSIX seconds, got {type(value).__name__}"
    raise InvalidInputError(msg)
