"""Modbus register maps: where a sensor's value is, how many 16-bit words it takes, and how to read them.

A Modbus register is one 16-bit word, sent most significant byte first. A 32-bit value takes two registers;
devices disagree on which comes first, so the word order is configured: ``"big"`` (the first register holds
the high word, the Modbus convention) or ``"little"`` (the low word first, as many PLCs and meters do). The
value read is ``raw * scale + offset``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from vigil.errors import InvalidInputError

__all__ = ["DATA_TYPES", "TABLES", "WORD_ORDERS", "ModbusRegister", "decode_words"]

#: Data type -> (struct format of the big-endian bytes, registers it takes).
DATA_TYPES: dict[str, tuple[str, int]] = {
    "int16": (">h", 1),
    "uint16": (">H", 1),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "float32": (">f", 2),
}
#: Register tables a sensor can be read from (function codes 3 and 4).
TABLES = ("holding", "input")
WORD_ORDERS = ("big", "little")
#: Highest protocol address of a register (addresses are 0-based on the wire).
MAX_ADDRESS = 65_535


@dataclass(frozen=True)
class ModbusRegister:
    """Where one sensor's value is, and how to turn its registers into a reading.

    Parameters
    ----------
    register : int
        The protocol address, 0-based (holding register 40001 in the old 1-based notation is 0).
    table : {"holding", "input"}
    type : {"int16", "uint16", "int32", "uint32", "float32"}
    scale, offset : float
        The reading is ``raw * scale + offset`` (for example ``scale=0.1`` for a value sent in tenths).
    word_order : {"big", "little"}
        For 32-bit types: which register holds the high word.
    unit : int, optional
        The unit (slave) id, when it differs from the device's.

    Examples
    --------
    >>> ModbusRegister(100, type="float32").count
    2
    >>> ModbusRegister(100, type="int64")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: Modbus register 100: type must be one of int16, uint16, int32, uint32, float32, got 'int64'
    """  # noqa: E501

    register: int
    table: str = "holding"
    type: str = "uint16"
    scale: float = 1.0
    offset: float = 0.0
    word_order: str = "big"
    unit: int | None = None

    def __post_init__(self) -> None:
        where = f"Modbus register {self.register}"
        if not isinstance(self.register, int) or isinstance(self.register, bool):
            msg = f"{where}: the address must be an integer, got {self.register!r}"
            raise InvalidInputError(msg)
        if self.type not in DATA_TYPES:
            msg = f"{where}: type must be one of {', '.join(DATA_TYPES)}, got {self.type!r}"
            raise InvalidInputError(msg)
        if not 0 <= self.register <= MAX_ADDRESS - self.count + 1:
            msg = f"{where}: a {self.type} needs addresses 0 to {MAX_ADDRESS - self.count + 1}"
            raise InvalidInputError(msg)
        if self.table not in TABLES:
            msg = f"{where}: table must be 'holding' or 'input', got {self.table!r}"
            raise InvalidInputError(msg)
        if self.word_order not in WORD_ORDERS:
            msg = f"{where}: word_order must be 'big' or 'little', got {self.word_order!r}"
            raise InvalidInputError(msg)
        if self.unit is not None and not 0 <= self.unit <= 255:
            msg = f"{where}: unit must be 0 to 255, got {self.unit!r}"
            raise InvalidInputError(msg)

    @property
    def count(self) -> int:
        """How many registers the value takes."""
        return DATA_TYPES[self.type][1]

    def label(self) -> str:
        """How reasons name the register: ``"holding register 100 (float32)"``."""
        return f"{self.table} register {self.register} ({self.type})"

    def value(self, words: Sequence[int]) -> float:
        """The reading from the registers read: decoded, then scaled."""
        return decode_words(words, self.type, self.word_order) * self.scale + self.offset


def decode_words(words: Sequence[int], data_type: str, word_order: str = "big") -> float:
    """Decode 16-bit registers into a number.

    Examples
    --------
    >>> decode_words([0xFFFE], "int16"), decode_words([0x0001, 0x0000], "uint32", "little")
    (-2.0, 1.0)
    >>> decode_words([0x3FC0, 0x0000], "float32")
    1.5
    """
    fmt, count = DATA_TYPES[data_type]
    if len(words) != count:
        msg = f"a {data_type} takes {count} register(s), got {len(words)}"
        raise InvalidInputError(msg)
    ordered = list(words) if word_order == "big" else list(reversed(words))
    return float(struct.unpack(fmt, struct.pack(f">{count}H", *ordered))[0])
