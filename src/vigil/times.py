"""Time stamps as Vigil stores and exchanges them: timezone-aware UTC, ISO 8601 with microseconds."""

from __future__ import annotations

import math
import numbers
from datetime import UTC, datetime
from typing import Any

from vigil.errors import InvalidInputError

__all__ = ["format_time", "parse_time"]


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds: exact, and sorts as text in time order.

    Examples
    --------
    >>> format_time(parse_time(0, "t"))
    '1970-01-01T00:00:00.000000+00:00'
    """
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(value: Any, where: str) -> datetime:
    """Read a timezone-aware datetime, POSIX seconds or ISO 8601 text with an offset; return it in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            msg = f"{where} is not a finite time: {value!r}"
            raise InvalidInputError(msg)
        return datetime.fromtimestamp(float(value), tz=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            msg = f"{where} is not an ISO 8601 time: {value!r}"
            raise InvalidInputError(msg) from exc
    else:
        msg = f"{where} must be a timezone-aware datetime or POSIX seconds, got {type(value).__name__}"
        raise InvalidInputError(msg)
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"{where} has no time zone ({moment.isoformat()}): pass an aware datetime, for example in UTC"
        raise InvalidInputError(msg)
    return moment.astimezone(UTC)
