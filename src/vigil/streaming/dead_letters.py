"""Dead letters: telemetry that was refused, kept with the reason instead of being repaired or dropped.

A message that cannot be decoded, does not match the model's sensors, holds NaN or infinity, names an
unknown device, is too large, or arrives out of time order never reaches a detector. It becomes a
:class:`DeadLetter` — the reason in words, a short machine-readable ``kind`` for counters and filters, and
an excerpt of the raw payload — which the runtime stores beside the alerts and publishes to a topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigil.errors import InvalidInputError
from vigil.times import format_time, parse_time

__all__ = ["DEAD_LETTER_KINDS", "PAYLOAD_EXCERPT_CHARS", "DeadLetter"]

#: Every ``kind`` a dead letter can have, so that counters have a bounded set of labels.
DEAD_LETTER_KINDS: tuple[str, ...] = (
    "invalid_json",  # not JSON, or not UTF-8
    "invalid_payload",  # a plant protocol's message that cannot be decoded (a Sparkplug B payload)
    "invalid_record",  # JSON, but not the documented record shape (missing device, time or readings)
    "wrong_type",  # a reading that is not a number
    "missing_value",  # a null reading (a failed sensor, a Bad quality) whose sensor's policy is to refuse it
    "out_of_range",  # a reading outside its sensor's valid range, whose sensor's policy is to refuse it
    "non_finite",  # NaN or infinity
    "sensors_mismatch",  # missing or unexpected sensors for the device's model
    "unknown_device",  # no model is routed to this device
    "oversized",  # payload or batch larger than the configured limit
    "out_of_order",  # a timestamp earlier than the device's previous one
    "duplicate",  # the same timestamp as the device's previous one
    "non_finite_score",  # valid finite readings the model turns into no finite score (1e308, say): that record only
    "internal",  # the model raised while scoring a valid record (the record is kept, nothing crashes)
)

#: At most this many characters of the raw payload are kept in a dead letter.
PAYLOAD_EXCERPT_CHARS = 2048


@dataclass(frozen=True)
class DeadLetter:
    """One refused message or record.

    Parameters
    ----------
    kind : str
        One of :data:`DEAD_LETTER_KINDS`.
    reason : str
        What was wrong and where, for a person.
    source : str
        Where the message came from, for example ``"http"`` or ``"mqtt:plant/p1/telemetry"``.
    payload : str
        The raw payload (or the offending record as JSON), cut to :data:`PAYLOAD_EXCERPT_CHARS`.
    device : str or None
        The device, when it could be read.
    received : datetime
        When the service received the message (UTC).
    id : int or None
        The store's id, once stored.

    Examples
    --------
    >>> letter = DeadLetter(kind="non_finite", reason="readings['temp_c'] is NaN", source="http",
    ...                     payload='{"device": "p1"}', device="p1")
    >>> DeadLetter.from_dict(letter.to_dict()) == letter
    True
    """

    kind: str
    reason: str
    source: str
    payload: str = ""
    device: str | None = None
    received: datetime = None  # type: ignore[assignment]  # filled in __post_init__
    id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in DEAD_LETTER_KINDS:
            msg = f"dead letter kind must be one of {', '.join(DEAD_LETTER_KINDS)}, got {self.kind!r}"
            raise InvalidInputError(msg)
        moment = datetime.now(UTC) if self.received is None else parse_time(self.received, "received")
        object.__setattr__(self, "received", moment)
        object.__setattr__(self, "payload", str(self.payload)[:PAYLOAD_EXCERPT_CHARS])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (``received`` as ISO 8601 text)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "reason": self.reason,
            "source": self.source,
            "payload": self.payload,
            "device": self.device,
            "received": format_time(self.received),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetter:
        """Rebuild a dead letter from :meth:`to_dict` output."""
        return cls(
            kind=str(data["kind"]),
            reason=str(data["reason"]),
            source=str(data["source"]),
            payload=str(data.get("payload", "")),
            device=None if data.get("device") is None else str(data["device"]),
            received=parse_time(data["received"], "received"),
            id=None if data.get("id") is None else int(data["id"]),
        )
