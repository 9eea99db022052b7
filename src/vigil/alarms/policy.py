"""How a flagged score becomes an alarm an operator sees: the annunciation rules of ISA-18.2 / EEMUA 191."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from vigil.errors import InvalidInputError

__all__ = ["AlarmPolicy"]


@dataclass(frozen=True)
class AlarmPolicy:
    """The annunciation rules between a score crossing its threshold and an alarm, counted in readings.

    Parameters
    ----------
    on_delay : int
        An alarm is raised when at least ``on_delay`` of the last ``window`` readings are above the set
        level ("k of n" on-delay): isolated spikes of a noisy score never reach the operator.
    window : int
        The ``n`` of "k of n"; at least ``on_delay``.
    off_delay : int
        An alarm clears after this many consecutive readings at or below the clear level.
    deadband : float
        Hysteresis, as a share of the set level: the clear level is ``set − deadband × |set|``, so a score
        hovering around the set level does not raise and clear the alarm over and over.
    holdoff : int
        Re-alarm suppression: for this many readings after an alarm clears, the same condition is not
        annunciated again (the readings are still scored and stored; the alarm stays quiet).
    bypass : float or None
        A second, higher level as a multiple of the set level (ISA-18.2's "high-high"): a reading above
        ``set + (bypass − 1) × |set|`` raises the alarm at once, bypassing the on-delay and the re-alarm
        suppression, so a delay that calms a noisy score never hides one reading far out of range.
        ``None``: no bypass.

    The defaults (1 of 1, clear at once, no deadband, no holdoff) annunciate every flagged reading, which
    is what a bare threshold does.

    Examples
    --------
    >>> AlarmPolicy(on_delay=3, window=5, off_delay=10, deadband=0.1)
    AlarmPolicy(on_delay=3, window=5, off_delay=10, deadband=0.1, holdoff=0, bypass=None)
    >>> AlarmPolicy(on_delay=3, window=5, bypass=3.0).bypass_level(2.0)
    6.0
    >>> AlarmPolicy(on_delay=3, window=2)
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: AlarmPolicy(on_delay=3, window=2): window must be at least on_delay
    """

    on_delay: int = 1
    window: int = 1
    off_delay: int = 1
    deadband: float = 0.0
    holdoff: int = 0
    bypass: float | None = None

    def __post_init__(self) -> None:
        def whole(name: str, low: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                msg = f"AlarmPolicy({name}={value!r}) must be a whole number of readings ≥ {low}"
                raise InvalidInputError(msg)

        whole("on_delay", 1)
        whole("window", 1)
        whole("off_delay", 1)
        whole("holdoff", 0)
        if self.window < self.on_delay:
            msg = f"AlarmPolicy(on_delay={self.on_delay}, window={self.window}): window must be at least on_delay"
            raise InvalidInputError(msg)
        if isinstance(self.deadband, bool) or not isinstance(self.deadband, int | float) or not 0 <= self.deadband < 1:
            msg = f"AlarmPolicy(deadband={self.deadband!r}) must be a share in [0, 1)"
            raise InvalidInputError(msg)
        if self.bypass is not None and (
            isinstance(self.bypass, bool) or not isinstance(self.bypass, int | float) or not 1 < self.bypass < math.inf
        ):
            msg = f"AlarmPolicy(bypass={self.bypass!r}) must be a finite factor > 1 of the set level, or None"
            raise InvalidInputError(msg)

    def bypass_level(self, level: float) -> float:
        """The level above which one reading alarms at once (``inf`` without a bypass)."""
        return math.inf if self.bypass is None else level + (self.bypass - 1.0) * abs(level)

    @property
    def is_plain(self) -> bool:
        """True when every flagged reading is an alarm and every other reading clears it."""
        return self == AlarmPolicy()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> AlarmPolicy:
        try:
            return cls(**document)
        except TypeError as exc:
            msg = f"not a valid alarm policy: {document!r} ({exc})"
            raise InvalidInputError(msg) from exc
