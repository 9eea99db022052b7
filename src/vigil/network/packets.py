"""A batch of decoded packets as columns of numpy arrays: what the readers produce and the features consume.

Addresses are stored as two unsigned 64-bit halves of their IPv6 form (IPv4 as ``::ffff:a.b.c.d``), so IPv4
and IPv6 traffic share one integer representation that numpy can sort and compare without Python objects.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["TCP_FLAGS", "PacketTable", "format_address", "ipv4_halves"]

TCP_FLAGS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20}
_V4_PREFIX = np.uint64(0xFFFF << 32)


def ipv4_halves(addresses: NDArray[np.uint32] | list[int]) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """IPv4 addresses (as 32-bit integers) in the two-half IPv6-mapped form.

    Examples
    --------
    >>> hi, lo = ipv4_halves([int(ipaddress.IPv4Address("10.0.0.1"))])
    >>> format_address(int(hi[0]), int(lo[0]))
    '10.0.0.1'
    """
    lo = np.asarray(addresses, dtype=np.uint64) | _V4_PREFIX
    return np.zeros(len(lo), dtype=np.uint64), lo


def format_address(hi: int, lo: int) -> str:
    """The text form of an address stored as two halves (IPv4-mapped ones print as IPv4)."""
    value = ipaddress.IPv6Address((int(hi) << 64) | int(lo))
    return str(value.ipv4_mapped) if value.ipv4_mapped is not None else str(value)


@dataclass(frozen=True, eq=False)
class PacketTable:
    """Decoded IP packets, one entry per packet in every array.

    Attributes
    ----------
    index : int64
        Position of the packet in its capture (0-based, counting skipped frames too), so labels given per
        frame (frame number = index + 1) line up.
    time : float64
        Capture time in seconds since the epoch.
    length : int64
        Frame length on the wire, in bytes.
    src_hi, src_lo, dst_hi, dst_lo : uint64
        Source and destination addresses (see :func:`format_address`).
    sport, dport : int64
        Transport ports (0 for ICMP, non-first fragments and other protocols).
    proto : int64
        IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    flags : int64
        TCP flags (0 if not TCP).
    payload : int64
        Transport payload bytes.

    Examples
    --------
    >>> t = PacketTable.from_records([
    ...     {"time": 0.0, "length": 60, "src": "10.0.0.2", "dst": "10.0.0.1", "sport": 5000, "dport": 22,
    ...      "proto": 6, "flags": TCP_FLAGS["SYN"]},
    ... ])
    >>> len(t), t.source_address(0), t.destination_address(0)
    (1, '10.0.0.2', '10.0.0.1')
    """

    index: NDArray[np.int64]
    time: NDArray[np.float64]
    length: NDArray[np.int64]
    src_hi: NDArray[np.uint64]
    src_lo: NDArray[np.uint64]
    dst_hi: NDArray[np.uint64]
    dst_lo: NDArray[np.uint64]
    sport: NDArray[np.int64]
    dport: NDArray[np.int64]
    proto: NDArray[np.int64]
    flags: NDArray[np.int64]
    payload: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def empty(cls) -> PacketTable:
        """A table with no packets."""
        return cls.from_columns({})

    @classmethod
    def from_columns(cls, columns: dict[str, Any]) -> PacketTable:
        """Build a table from column arrays (missing ones are zeros; ``index`` defaults to 0, 1, 2, …)."""
        n = len(next(iter(columns.values()))) if columns else 0
        out: dict[str, Any] = {}
        for f in fields(cls):
            dtype = np.uint64 if f.name.endswith(("_hi", "_lo")) else (np.float64 if f.name == "time" else np.int64)
            if f.name in columns:
                out[f.name] = np.asarray(columns[f.name], dtype=dtype)
            elif f.name == "index":
                out[f.name] = np.arange(n, dtype=np.int64)
            else:
                out[f.name] = np.zeros(n, dtype=dtype)
        return cls(**out)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> PacketTable:
        """Build a table from dicts with ``src``/``dst`` as address text and the other fields by name."""
        columns: dict[str, list[Any]] = {f.name: [] for f in fields(cls)}
        for i, r in enumerate(records):
            for side in ("src", "dst"):
                value = int(ipaddress.ip_address(r[side]))
                if ipaddress.ip_address(r[side]).version == 4:
                    value |= 0xFFFF << 32
                columns[f"{side}_hi"].append(value >> 64)
                columns[f"{side}_lo"].append(value & 0xFFFFFFFFFFFFFFFF)
            for name in ("time", "length", "sport", "dport", "proto", "flags", "payload"):
                columns[name].append(r.get(name, 0))
            columns["index"].append(r.get("index", i))
        return cls.from_columns(columns)

    def take(self, rows: Any) -> PacketTable:
        """The packets selected by an index array, boolean mask or slice."""
        return PacketTable(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @classmethod
    def concat(cls, tables: list[PacketTable]) -> PacketTable:
        """Concatenate tables (their ``index`` values are kept as they are)."""
        if not tables:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables]) for f in fields(cls)})

    def source_address(self, i: int) -> str:
        return format_address(int(self.src_hi[i]), int(self.src_lo[i]))

    def destination_address(self, i: int) -> str:
        return format_address(int(self.dst_hi[i]), int(self.dst_lo[i]))

    def metadata(self) -> pd.DataFrame:
        """One row per packet: index, time, src, dst, sport, dport, proto, flags, length, payload (addresses
        as text)."""
        cache: dict[tuple[int, int], str] = {}

        def text(hi: NDArray[np.uint64], lo: NDArray[np.uint64]) -> list[str]:
            out = []
            for h, l_ in zip(hi.tolist(), lo.tolist(), strict=True):
                key = (h, l_)
                if key not in cache:
                    cache[key] = format_address(h, l_)
                out.append(cache[key])
            return out

        return pd.DataFrame(
            {
                "packet": self.index,
                "time": self.time,
                "src": text(self.src_hi, self.src_lo),
                "dst": text(self.dst_hi, self.dst_lo),
                "sport": self.sport,
                "dport": self.dport,
                "proto": self.proto,
                "flags": self.flags,
                "length": self.length,
                "payload": self.payload,
            }
        )
