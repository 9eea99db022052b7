"""Read packet captures (pcap and pcapng) into :class:`~vigil.network.packets.PacketTable` batches with dpkt.

Frames are decoded with dpkt (Ethernet with VLAN tags, Linux cooked SLL and SLL2, raw IP, BSD loopback);
IPv4 and IPv6 packets are kept, everything else is skipped and counted. A frame that dpkt cannot decode is
counted as malformed and skipped: one bad packet never stops a capture. The file format is recognised by its
magic number, not its name (a ``.pcapng`` file in classic pcap format reads fine). Classic pcap records are
framed here (both byte orders, micro- and nanosecond stamps) so that a file still being written can be
followed (``follow=True``) and a record cut short at the end of a file is reported instead of decoded;
pcapng files are framed by dpkt's reader.

Counters (:class:`ReadStats`): ``frames`` read, ``packets`` kept, ``ipv6`` among them, ``fragments``
(IPv4 fragments; non-first fragments have no ports), ``non_ip`` and ``malformed`` frames skipped, and
``truncated_tail`` when the file ends in the middle of a record.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from threading import Event
from typing import Any, BinaryIO

import numpy as np

from vigil.errors import DatasetNotFoundError, InvalidInputError
from vigil.network.packets import PacketTable

try:
    import dpkt
except ImportError as exc:  # pragma: no cover - exercised only without dpkt
    msg = "reading packet captures needs dpkt: pip install 'vigil[network]'"
    raise ImportError(msg) from exc

__all__ = ["CAPTURE_SUFFIXES", "LINK_TYPES", "ReadStats", "is_capture", "iter_capture", "read_capture"]

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp")
LINK_TYPES = {0: "null", 1: "ethernet", 12: "raw", 14: "raw", 101: "raw", 108: "loop", 113: "sll", 276: "sll2"}
"""Link types Vigil decodes (pcap LINKTYPE numbers)."""

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_MAX_RECORD = 1 << 18
_IPV4, _IPV6 = 0x0800, 0x86DD
_IDLE = object()  # yielded by a followed reader when the writer is idle: time to score what was read


@dataclass
class ReadStats:
    """What a reader met, by kind (see the module docstring).

    Examples
    --------
    >>> stats = ReadStats(frames=3, packets=2, non_ip=1)
    >>> stats.as_dict()["non_ip"]
    1
    """

    frames: int = 0
    packets: int = 0
    ipv6: int = 0
    fragments: int = 0
    non_ip: int = 0
    malformed: int = 0
    truncated_tail: bool = False
    link_type: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_capture(path: str | PathLike[str]) -> bool:
    """True if ``path`` names a packet capture by its suffix (``.pcap``, ``.pcapng``, ``.cap``, ``.dmp``).

    Examples
    --------
    >>> is_capture("benign.pcapng"), is_capture("flows.csv")
    (True, False)
    """
    return Path(path).suffix.lower() in CAPTURE_SUFFIXES


def _halves(address: bytes) -> tuple[int, int]:
    if len(address) == 4:
        return 0, 0xFFFF00000000 | int.from_bytes(address, "big")
    value = int.from_bytes(address, "big")
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


def _network_layer(link: str, buf: bytes) -> tuple[Any, int, int]:
    """The network-layer payload of a frame, the link header length and the EtherType it claims."""
    if link == "ethernet":
        frame = dpkt.ethernet.Ethernet(buf)
        return frame.data, 14 + 4 * len(getattr(frame, "vlan_tags", ())), frame.type
    if link == "sll":
        frame = dpkt.sll.SLL(buf)
        return frame.data, 16, frame.ethtype
    if link == "sll2":
        frame = dpkt.sll2.SLL2(buf)
        return frame.data, 20, frame.protocol
    if link in ("null", "loop"):
        frame = dpkt.loopback.Loopback(buf)
        return frame.data, 4, _IPV4 if isinstance(frame.data, dpkt.ip.IP) else 0
    version = buf[0] >> 4 if buf else 0
    if version == 4:
        return dpkt.ip.IP(buf), 0, _IPV4
    if version == 6:
        return dpkt.ip6.IP6(buf), 0, _IPV6
    return buf, 0, 0


def _decode(link: str, buf: bytes, wire: int, index: int, ts: float, stats: ReadStats, rows: list) -> None:
    stats.frames += 1
    try:
        net, offset, ethertype = _network_layer(link, buf)
        if isinstance(net, dpkt.ip.IP):
            proto, length = net.p, offset + net.len
            if net.mf or net.offset:
                stats.fragments += 1
        elif isinstance(net, dpkt.ip6.IP6):
            proto, length = net.nxt, offset + 40 + net.plen
            stats.ipv6 += 1
        elif ethertype in (_IPV4, _IPV6):  # claims to be IP but did not decode: cut or corrupt
            stats.malformed += 1
            return
        else:
            stats.non_ip += 1
            return
        l4 = net.data
        sport = dport = flags = 0
        payload = len(l4) if isinstance(l4, bytes) else len(l4.data) if isinstance(l4.data, bytes) else 0
        if isinstance(l4, dpkt.tcp.TCP):
            sport, dport, flags = l4.sport, l4.dport, l4.flags
        elif isinstance(l4, dpkt.udp.UDP):
            sport, dport = l4.sport, l4.dport
        src, dst = _halves(net.src), _halves(net.dst)
    except (dpkt.UnpackError, struct.error, ValueError, IndexError, AttributeError, TypeError):
        stats.malformed += 1
        return
    stats.packets += 1
    rows.append((index, ts, wire or max(length, len(buf)), *src, *dst, sport, dport, proto, flags, payload))


def _pcap_records(
    handle: BinaryIO, header: bytes, stats: ReadStats, follow: bool, poll: float, stop: Event | None
) -> Iterator[Any]:
    order, unit = _PCAP_MAGIC[header[:4]]
    rest = header[4:] + _read_exact(handle, 20 - len(header[4:]))
    if len(rest) < 20:
        msg = "the capture ends inside its 24-byte file header"
        raise InvalidInputError(msg)
    linktype = struct.unpack(order + "I", rest[16:20])[0] & 0x0FFFFFFF
    yield ("link", linktype)
    record = struct.Struct(order + "IIII")
    pending = b""
    # read1 returns what a pipe holds now instead of blocking until 64 KiB arrive (tcpdump -U | vigil ...).
    read = getattr(handle, "read1", handle.read)
    while True:
        chunk = read(65536)
        if not chunk:
            if follow and not (stop is not None and stop.is_set()):
                yield _IDLE
                time.sleep(poll)
                continue
            stats.truncated_tail = bool(pending)
            return
        pending += chunk
        pos = 0
        while len(pending) - pos >= 16:
            sec, frac, caplen, wire = record.unpack_from(pending, pos)
            if caplen > _MAX_RECORD:
                msg = f"corrupt pcap record header after {stats.frames} frames (caplen {caplen})"
                raise InvalidInputError(msg)
            if len(pending) - pos - 16 < caplen:
                break
            yield (sec + frac * unit, pending[pos + 16 : pos + 16 + caplen], wire)
            pos += 16 + caplen
        pending = pending[pos:]


def _read_exact(handle: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = handle.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _pcapng_records(handle: BinaryIO, header: bytes, stats: ReadStats) -> Iterator[tuple]:
    import io

    data = header + handle.read()
    try:
        reader = dpkt.pcapng.Reader(io.BytesIO(data))
    except (ValueError, dpkt.UnpackError, struct.error) as exc:
        msg = f"not a readable pcapng file: {exc}"
        raise InvalidInputError(msg) from exc
    yield ("link", reader.datalink())
    iterator = iter(reader)
    while True:
        try:
            ts, buf = next(iterator)
        except StopIteration:
            return
        except (ValueError, dpkt.UnpackError, struct.error):
            stats.truncated_tail = True
            return
        yield (float(ts), buf, 0)


def iter_capture(
    source: str | PathLike[str] | BinaryIO,
    *,
    batch_size: int = 8192,
    follow: bool = False,
    poll_seconds: float = 0.5,
    max_packets: int | None = None,
    stats: ReadStats | None = None,
    stop: Event | None = None,
) -> Iterator[PacketTable]:
    """Yield the IP packets of a capture in batches of ``batch_size`` (the last may be smaller).

    Parameters
    ----------
    source : path, ``"-"`` (standard input) or a binary file object
    follow : bool
        Keep reading as the file grows (classic pcap only), like ``tail -f``; stop with Ctrl-C or ``stop``.
        Whenever the writer falls idle, the packets read so far are yielded at once, so a quiet network is
        scored without waiting for a full batch.
    stop : threading.Event, optional
        When set, a followed capture ends at its next idle moment.
    max_packets : int, optional
        Stop after this many frames.
    stats : ReadStats, optional
        Filled in as the capture is read.

    Raises
    ------
    DatasetNotFoundError
        The file does not exist.
    InvalidInputError
        Not a pcap/pcapng file, an unsupported link type, or a corrupt record header.
    """
    stats = stats if stats is not None else ReadStats()
    if isinstance(source, (str, PathLike)) and str(source) != "-":
        path = Path(source)
        if not path.is_file():
            msg = f"capture not found: {path}"
            raise DatasetNotFoundError(msg)
        with path.open("rb") as handle:
            yield from _iterate(handle, str(path), batch_size, follow, poll_seconds, max_packets, stats, stop)
    else:
        stream = sys.stdin.buffer if isinstance(source, (str, PathLike)) else source
        yield from _iterate(stream, "<stream>", batch_size, follow, poll_seconds, max_packets, stats, stop)


def _iterate(handle, name, batch_size, follow, poll, max_packets, stats, stop) -> Iterator[PacketTable]:
    header = _read_exact(handle, 4)
    if header in _PCAP_MAGIC:
        records = _pcap_records(handle, header, stats, follow, poll, stop)
    elif header == _PCAPNG_MAGIC:
        records = _pcapng_records(handle, header, stats)
    else:
        msg = f"{name} is not a pcap or pcapng capture (magic {header.hex() or 'missing'})"
        raise InvalidInputError(msg)
    try:
        _, linktype = next(records)
    except InvalidInputError as exc:
        msg = f"{name}: {exc}"
        raise InvalidInputError(msg) from exc
    if linktype not in LINK_TYPES:
        msg = f"{name}: link type {linktype} is not supported; Vigil reads {sorted(LINK_TYPES)} ({LINK_TYPES})"
        raise InvalidInputError(msg)
    link = LINK_TYPES[linktype]
    stats.link_type = link
    rows: list = []
    index = 0
    try:
        for record in records:
            if record is _IDLE:
                if rows:
                    yield _batch(rows)
                    rows = []
                continue
            ts, buf, wire = record
            _decode(link, buf, wire, index, ts, stats, rows)
            index += 1
            if len(rows) >= batch_size:
                yield _batch(rows)
                rows = []
            if max_packets is not None and index >= max_packets:
                break
    except InvalidInputError as exc:
        msg = f"{name}: {exc}"
        raise InvalidInputError(msg) from exc
    if rows:
        yield _batch(rows)


def _batch(rows: list) -> PacketTable:
    columns = list(zip(*rows, strict=True))
    names = ("index", "time", "length", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport", "proto", "flags",
             "payload")  # fmt: skip
    out = {}
    for name, values in zip(names, columns, strict=True):
        dtype = np.float64 if name == "time" else (np.uint64 if name.endswith(("_hi", "_lo")) else np.int64)
        out[name] = np.fromiter(values, dtype=dtype, count=len(values))
    return PacketTable.from_columns(out)


def read_capture(
    source: str | PathLike[str] | BinaryIO, *, max_packets: int | None = None
) -> tuple[PacketTable, ReadStats]:
    """Read a whole capture: its IP packets and the counters of what was skipped.

    Examples
    --------
    >>> import tempfile
    >>> from vigil.network.synthetic import make_capture, write_pcap
    >>> cap = make_capture(["port_scan"], train_seconds=5, gap_seconds=1, n_devices=1)
    >>> path = write_pcap(cap.packets, Path(tempfile.mkdtemp()) / "scan.pcap")
    >>> packets, stats = read_capture(path)
    >>> len(packets) == len(cap.packets), stats.malformed, stats.link_type
    (True, 0, 'ethernet')
    """
    stats = ReadStats()
    tables = list(iter_capture(source, max_packets=max_packets, stats=stats))
    return PacketTable.concat(tables), stats
