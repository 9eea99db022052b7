"""Synthetic IoT captures with labelled attacks, made in code so that tests and benchmarks need no download.

Benign background: IoT sensors publishing to an MQTT broker about once a second (TCP 1883, broker ACKs and
periodic replies), DNS lookups to the gateway and NTP. Attacks are added on top of it:

- ``syn_flood``: spoofed random sources flood one port of the broker with bare SYNs (Mirai-style DDoS);
- ``port_scan``: one host probes a device's ports 1-1024 in turn, closed ports answer RST (vertical scan);
- ``host_scan``: one host probes telnet (23) on every address of the subnet (horizontal scan, Mirai's spread);
- ``brute_force``: one host opens short SSH sessions to the gateway in a burst, one login try each;
- ``exfiltration``: a sensor uploads large packets to an outside address;
- ``c2_beacon``: an infected sensor checks in with a command-and-control address every 10 s (± 3 %
  jitter): a TCP SYN to port 4444 that is refused (RST) or goes unanswered and is retransmitted once.

Everything is vectorised numpy and deterministic given ``seed``. :func:`write_pcap` writes the result as a
classic pcap (Ethernet/IPv4/TCP|UDP) with the standard library only.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError
from vigil.network.packets import TCP_FLAGS, PacketTable, format_address, ipv4_halves

__all__ = ["ATTACK_KINDS", "SyntheticCapture", "make_capture", "write_pcap"]

ATTACK_KINDS = ("syn_flood", "port_scan", "host_scan", "brute_force", "exfiltration", "c2_beacon")
_SYN, _ACK, _RST, _PSH, _FIN = (TCP_FLAGS[f] for f in ("SYN", "ACK", "RST", "PSH", "FIN"))
_NET = 0x0A000000  # 10.0.0.0/24
GATEWAY = _NET | 1
BROKER = _NET | 2
ATTACKER = _NET | 66
OUTSIDE = (203 << 24) | (0 << 16) | (113 << 8) | 9  # 203.0.113.9 (documentation range)
CONTROLLER = (198 << 24) | (51 << 16) | (100 << 8) | 23  # 198.51.100.23 (documentation range)


@dataclass(frozen=True, eq=False)
class SyntheticCapture:
    """Packets in time order with their ground truth.

    Attributes
    ----------
    packets : PacketTable
    kind : numpy.ndarray of str
        ``"benign"`` or the attack kind of each packet.
    events : list of dict
        One per attack: ``kind``, ``start``, ``end`` (seconds), ``attacker`` and ``target`` addresses.
    train_end : float
        Time before which the capture is benign (the training part).
    """

    packets: PacketTable
    kind: NDArray[np.object_]
    events: list[dict[str, Any]] = field(default_factory=list)
    train_end: float = 0.0

    @property
    def y(self) -> NDArray[np.bool_]:
        """True for attack packets."""
        return self.kind != "benign"

    def split(self) -> tuple[PacketTable, PacketTable, NDArray[np.object_]]:
        """(benign training packets, test packets, test packet kinds), split at ``train_end``."""
        train = self.packets.time < self.train_end
        return self.packets.take(train), self.packets.take(~train), self.kind[~train]


def _table(t, length, src, dst, sport, dport, proto, flags, payload) -> PacketTable:
    n = len(t)

    def full(v: Any, dtype: Any) -> NDArray:
        return np.broadcast_to(np.asarray(v, dtype=dtype), (n,)).copy()

    src_hi, src_lo = ipv4_halves(full(src, np.uint32))
    dst_hi, dst_lo = ipv4_halves(full(dst, np.uint32))
    return PacketTable.from_columns(
        {
            "time": full(t, np.float64),
            "length": full(length, np.int64),
            "src_hi": src_hi,
            "src_lo": src_lo,
            "dst_hi": dst_hi,
            "dst_lo": dst_lo,
            "sport": full(sport, np.int64),
            "dport": full(dport, np.int64),
            "proto": full(proto, np.int64),
            "flags": full(flags, np.int64),
            "payload": full(payload, np.int64),
        }
    )


def _benign(rng: np.random.Generator, start: float, end: float, n_devices: int) -> list[PacketTable]:
    parts = []
    for d in range(n_devices):
        device = _NET | (10 + d)
        period = rng.uniform(0.8, 1.5)
        t = np.arange(start + rng.uniform(0, period), end, period)
        t = t + rng.normal(0, 0.02, len(t))
        size = rng.integers(90, 130, len(t))
        port = 40000 + d
        parts.append(_table(t, size, device, BROKER, port, 1883, 6, _PSH | _ACK, size - 54))
        parts.append(_table(t + rng.uniform(0.001, 0.004, len(t)), 54, BROKER, device, 1883, port, 6, _ACK, 0))
        every = max(1, int(30 / period))  # a command from the broker now and then
        tc = t[::every] + 0.2
        parts.append(_table(tc, 80, BROKER, device, 1883, port, 6, _PSH | _ACK, 26))
        parts.append(_table(tc + 0.003, 54, device, BROKER, port, 1883, 6, _ACK, 0))
        tq = np.arange(start + rng.uniform(0, 60), end, 60.0)  # DNS then NTP once a minute
        q = rng.integers(1024, 65535, len(tq))
        parts.append(_table(tq, 74, device, GATEWAY, q, 53, 17, 0, 32))
        parts.append(_table(tq + 0.002, 90, GATEWAY, device, 53, q, 17, 0, 48))
        parts.append(_table(tq + 0.5, 90, device, GATEWAY, 123, 123, 17, 0, 48))
        parts.append(_table(tq + 0.503, 90, GATEWAY, device, 123, 123, 17, 0, 48))
    return parts


def _syn_flood(rng: np.random.Generator, start: float, seconds: float, rate: float) -> tuple[PacketTable, dict]:
    n = int(seconds * rate)
    t = start + np.sort(rng.uniform(0, seconds, n))
    sources = rng.integers(0x0B000000, 0xDF000000, n)  # random public-looking spoofed addresses
    table = _table(t, 60, sources, BROKER, rng.integers(1024, 65535, n), 1883, 6, _SYN, 0)
    return table, {"attacker": "spoofed", "target": format_address(0, int(ipv4_halves([BROKER])[1][0]))}


def _port_scan(rng: np.random.Generator, start: float, seconds: float, rate: float) -> tuple[PacketTable, dict]:
    target = _NET | 12
    ports = np.arange(1, 1 + min(1024, int(seconds * rate)))
    t = start + np.arange(len(ports)) / rate
    probe = _table(t, 60, ATTACKER, target, 50123, ports, 6, _SYN, 0)
    reply = _table(t + 0.0005, 54, target, ATTACKER, ports, 50123, 6, _RST | _ACK, 0)
    return PacketTable.concat([probe, reply]), {"attacker": "10.0.0.66", "target": "10.0.0.12"}


def _host_scan(rng: np.random.Generator, start: float, seconds: float, rate: float) -> tuple[PacketTable, dict]:
    hosts = _NET | np.arange(20, 255)
    n = min(len(hosts), int(seconds * rate))
    t = start + np.arange(n) / rate
    return _table(t, 60, ATTACKER, hosts[:n], rng.integers(30000, 60000, n), 23, 6, _SYN, 0), {
        "attacker": "10.0.0.66",
        "target": "10.0.0.0/24",
    }


def _brute_force(rng: np.random.Generator, start: float, seconds: float, rate: float) -> tuple[PacketTable, dict]:
    n = int(seconds * rate)
    t0 = start + np.arange(n) / rate
    port = 40000 + np.arange(n) % 20000
    steps = [  # (offset, from attacker?, flags, length): handshake, one login attempt, failure, close
        (0.0, True, _SYN, 60), (0.001, False, _SYN | _ACK, 60), (0.002, True, _ACK, 54),
        (0.010, True, _PSH | _ACK, 150), (0.030, False, _PSH | _ACK, 110), (0.031, True, _FIN | _ACK, 54),
        (0.032, False, _FIN | _ACK, 54),
    ]  # fmt: skip
    parts = []
    for offset, outbound, flags, length in steps:
        src, dst = (ATTACKER, GATEWAY) if outbound else (GATEWAY, ATTACKER)
        sport, dport = (port, 22) if outbound else (22, port)
        parts.append(_table(t0 + offset, length, src, dst, sport, dport, 6, flags, max(0, length - 54)))
    return PacketTable.concat(parts), {"attacker": "10.0.0.66", "target": "10.0.0.1"}


def _exfiltration(rng: np.random.Generator, start: float, seconds: float, rate: float) -> tuple[PacketTable, dict]:
    n = int(seconds * rate)
    t = start + np.arange(n) / rate
    device = _NET | 13
    upload = _table(t, 1454, device, OUTSIDE, 45000, 443, 6, _PSH | _ACK, 1400)
    acks = _table(t[::2] + 0.01, 54, OUTSIDE, device, 443, 45000, 6, _ACK, 0)
    return PacketTable.concat([upload, acks]), {"attacker": "10.0.0.13", "target": "203.0.113.9"}


def _c2_beacon(rng: np.random.Generator, start: float, seconds: float, rate: float) -> tuple[PacketTable, dict]:
    period = 1.0 / rate
    t = start + np.arange(int(seconds * rate)) * period + rng.normal(0, 0.03 * period, int(seconds * rate))
    t = np.clip(t, start, start + seconds)
    device = _NET | 14
    port = 41000 + np.arange(len(t))
    refused = rng.random(len(t)) < 0.5
    parts = [_table(t, 60, device, CONTROLLER, port, 4444, 6, _SYN, 0)]
    parts.append(_table(t[refused] + 0.08, 54, CONTROLLER, device, 4444, port[refused], 6, _RST | _ACK, 0))
    # an unanswered SYN is retransmitted once, a second later (from the same port)
    parts.append(_table(t[~refused] + 1.0, 60, device, CONTROLLER, port[~refused], 4444, 6, _SYN, 0))
    return PacketTable.concat(parts), {"attacker": "10.0.0.14", "target": "198.51.100.23"}


_ATTACKS = {
    "syn_flood": (_syn_flood, 3.0, 2000.0),
    "port_scan": (_port_scan, 4.0, 250.0),
    "host_scan": (_host_scan, 4.0, 50.0),
    "brute_force": (_brute_force, 10.0, 10.0),
    "exfiltration": (_exfiltration, 10.0, 400.0),
    "c2_beacon": (_c2_beacon, 120.0, 0.1),
}


def make_capture(
    attacks: Sequence[str] = ("syn_flood", "port_scan", "brute_force"),
    *,
    train_seconds: float = 300.0,
    gap_seconds: float = 60.0,
    n_devices: int = 8,
    seed: int = 0,
    start_time: float = 1_700_000_000.0,
) -> SyntheticCapture:
    """Benign IoT traffic for ``train_seconds``, then each attack in turn, ``gap_seconds`` apart, over benign traffic.

    Examples
    --------
    >>> cap = make_capture(["port_scan"], train_seconds=30, gap_seconds=10, n_devices=2)
    >>> [e["kind"] for e in cap.events], bool(cap.y.any()), bool((cap.packets.time < cap.train_end).any())
    (['port_scan'], True, True)
    """
    unknown = [a for a in attacks if a not in _ATTACKS]
    if unknown:
        msg = f"unknown attack kinds {unknown}; available: {', '.join(ATTACK_KINDS)}"
        raise InvalidInputError(msg)
    rng = np.random.default_rng(seed)
    end = train_seconds + gap_seconds * (len(attacks) + 1) + sum(_ATTACKS[a][1] for a in attacks)
    tables = _benign(rng, 0.0, end, n_devices)
    kinds = [np.full(len(t), "benign", dtype=object) for t in tables]
    events = []
    clock = train_seconds + gap_seconds
    for name in attacks:
        make, seconds, rate = _ATTACKS[name]
        table, info = make(rng, clock, seconds, rate)
        tables.append(table)
        kinds.append(np.full(len(table), name, dtype=object))
        events.append({"kind": name, "start": start_time + clock, "end": start_time + clock + seconds, **info})
        clock += seconds + gap_seconds
    packets = PacketTable.concat(tables)
    keep = (packets.time >= 0) & (packets.time < end)
    order = np.flatnonzero(keep)[np.argsort(packets.time[keep], kind="stable")]
    packets = packets.take(order)
    columns = {name: getattr(packets, name) for name in packets.__dataclass_fields__}
    columns["time"] = packets.time + start_time
    columns["index"] = np.arange(len(order))
    return SyntheticCapture(
        packets=PacketTable.from_columns(columns),
        kind=np.concatenate(kinds)[order],
        events=events,
        train_end=start_time + train_seconds,
    )


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def write_pcap(packets: PacketTable, path: str | PathLike[str]) -> Path:
    """Write IPv4 TCP/UDP/other packets as a classic little-endian pcap with Ethernet framing.

    Frames are padded with zero payload to their ``length``; IPv6 packets are rejected.

    Examples
    --------
    >>> import tempfile
    >>> cap = make_capture(["port_scan"], train_seconds=5, gap_seconds=1, n_devices=1)
    >>> path = write_pcap(cap.packets, Path(tempfile.mkdtemp()) / "scan.pcap")
    >>> path.read_bytes()[:4] == b"\\xd4\\xc3\\xb2\\xa1"
    True
    """
    v4 = (packets.src_hi == 0) & (packets.dst_hi == 0) & ((packets.src_lo >> np.uint64(32)) == 0xFFFF)
    if not v4.all():
        msg = "write_pcap writes IPv4 packets only"
        raise InvalidInputError(msg)
    out = Path(path)
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    mac = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    for i in range(len(packets)):
        proto, sport, dport = int(packets.proto[i]), int(packets.sport[i]), int(packets.dport[i])
        if proto == 6:
            l4 = struct.pack("!HHIIBBHHH", sport, dport, i, 0, 5 << 4, int(packets.flags[i]) & 0xFF, 65535, 0, 0)
        elif proto == 17:
            l4 = struct.pack("!HHHH", sport, dport, 8, 0)
        else:
            l4 = b""
        total = max(int(packets.length[i]), 14 + 20 + len(l4))
        body = l4 + bytes(total - 14 - 20 - len(l4))
        if proto == 17:
            body = struct.pack("!HHHH", sport, dport, len(body), 0) + body[8:]
        src = int(packets.src_lo[i]) & 0xFFFFFFFF
        dst = int(packets.dst_lo[i]) & 0xFFFFFFFF
        ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(body), i & 0xFFFF, 0, 64, proto, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        frame = mac[1] + mac[0] + b"\x08\x00" + ip + body
        seconds = float(packets.time[i])
        whole = int(seconds)
        micros = min(999_999, round((seconds - whole) * 1e6))
        chunks.append(struct.pack("<IIII", whole, micros, len(frame), len(frame)) + frame)
    out.write_bytes(b"".join(chunks))
    return out
