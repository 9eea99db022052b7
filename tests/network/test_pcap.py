"""The pcap/pcapng reader on good and bad input, and captures as tables for fit/score (needs dpkt)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from vigil.errors import DatasetNotFoundError, InvalidInputError
from vigil.network.packets import TCP_FLAGS
from vigil.network.synthetic import make_capture, write_pcap

SYN, ACK = TCP_FLAGS["SYN"], TCP_FLAGS["ACK"]
# ---------------------------------------------------------------------------------------------- pcap reading
dpkt = pytest.importorskip("dpkt")


def _pcap(frames: list[bytes], linktype: int = 1) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame
    return out


def _eth(payload: object, ethertype: int) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(dst=b"\x02" * 6, src=b"\x04" * 6, type=ethertype, data=payload))


def _tcp4(flags: int = SYN) -> bytes:
    tcp = dpkt.tcp.TCP(sport=1234, dport=502, flags=flags)
    ip = dpkt.ip.IP(src=bytes([10, 0, 0, 2]), dst=bytes([10, 0, 0, 1]), p=6, data=tcp)
    return _eth(ip, dpkt.ethernet.ETH_TYPE_IP)


def test_round_trip_of_a_synthetic_capture(tmp_path: Path) -> None:
    from vigil.network.pcap import read_capture

    cap = make_capture(["brute_force"], train_seconds=10, gap_seconds=2, n_devices=2)
    packets, stats = read_capture(write_pcap(cap.packets, tmp_path / "bf.pcap"))
    assert stats.packets == len(cap.packets) and stats.malformed == stats.non_ip == 0
    np.testing.assert_array_equal(packets.dport, cap.packets.dport)
    np.testing.assert_array_equal(packets.flags, cap.packets.flags)
    np.testing.assert_array_equal(packets.length, cap.packets.length)
    np.testing.assert_allclose(packets.time, cap.packets.time, atol=1e-6)


def test_bad_frames_are_skipped_and_counted(tmp_path: Path) -> None:
    from vigil.network.pcap import read_capture

    arp = _eth(dpkt.arp.ARP(), dpkt.ethernet.ETH_TYPE_ARP)
    ipv6 = _eth(
        dpkt.ip6.IP6(src=b"\x20\x01" + bytes(14), dst=b"\xfe\x80" + bytes(14), nxt=17, hlim=64,
                     data=dpkt.udp.UDP(sport=546, dport=547)),
        dpkt.ethernet.ETH_TYPE_IP6,
    )  # fmt: skip
    fragment = dpkt.ip.IP(src=bytes([10, 0, 0, 2]), dst=bytes([10, 0, 0, 1]), p=17, data=b"x" * 16)
    fragment.offset = 64
    broken = _tcp4()[:20]  # Ethernet header and a cut IP header
    path = tmp_path / "mixed.pcap"
    path.write_bytes(_pcap([_tcp4(), arp, ipv6, _eth(fragment, dpkt.ethernet.ETH_TYPE_IP), broken, _tcp4(ACK)]))
    packets, stats = read_capture(path)
    assert (stats.frames, stats.packets, stats.non_ip, stats.malformed) == (6, 4, 1, 1)
    assert stats.ipv6 == 1 and stats.fragments == 1
    assert packets.index.tolist() == [0, 2, 3, 5]  # frame positions line up with per-frame labels
    assert packets.metadata()["dst"].tolist()[1] == "fe80::"
    # a record cut short at the end of the file: the packets before it are kept, the tail is reported
    path.write_bytes(path.read_bytes()[:-10])
    packets, stats = read_capture(path)
    assert stats.truncated_tail and len(packets) == 3


def test_unreadable_captures_raise_clear_errors(tmp_path: Path) -> None:
    from vigil.network.pcap import read_capture

    with pytest.raises(DatasetNotFoundError):
        read_capture(tmp_path / "absent.pcap")
    (tmp_path / "text.pcap").write_text("not a capture at all")
    with pytest.raises(InvalidInputError, match="not a pcap or pcapng"):
        read_capture(tmp_path / "text.pcap")
    (tmp_path / "usb.pcap").write_bytes(_pcap([b"\x00" * 30], linktype=189))
    with pytest.raises(InvalidInputError, match="link type 189 is not supported"):
        read_capture(tmp_path / "usb.pcap")
    (tmp_path / "short.pcap").write_bytes(_pcap([])[:10])
    with pytest.raises(InvalidInputError, match="file header"):
        read_capture(tmp_path / "short.pcap")


def test_pcapng_and_linux_cooked_captures(tmp_path: Path) -> None:
    from vigil.network.pcap import read_capture

    path = tmp_path / "two.pcapng"
    with path.open("wb") as handle:
        writer = dpkt.pcapng.Writer(handle, linktype=1)
        writer.writepkt(_tcp4(), ts=1_700_000_000.5)
        writer.writepkt(_tcp4(ACK), ts=1_700_000_001.0)
    packets, stats = read_capture(path)
    assert len(packets) == 2 and stats.link_type == "ethernet"
    assert packets.time[0] == pytest.approx(1_700_000_000.5)
    sll = bytes(dpkt.sll.SLL(type=0, ethtype=0x0800, data=dpkt.ip.IP(bytes(_tcp4())[14:])))
    (tmp_path / "sll.pcap").write_bytes(_pcap([sll], linktype=113))
    packets, stats = read_capture(tmp_path / "sll.pcap")
    assert stats.link_type == "sll" and packets.metadata()["src"].tolist() == ["10.0.0.2"]


def test_read_packets_as_table_and_score_capture(tmp_path: Path) -> None:
    from vigil.network.capture import read_packets_as_table, score_capture
    from vigil.network.kitnet import KitNETDetector
    from vigil.pipeline import Pipeline

    cap = make_capture(["port_scan"], train_seconds=200, gap_seconds=20, n_devices=3)
    train, _, _ = cap.split()
    train_path = write_pcap(train, tmp_path / "benign.pcap")
    features, metadata = read_packets_as_table(train_path)
    assert len(features) == len(metadata) == len(train)
    assert metadata.attrs["read_stats"]["packets"] == len(train)
    pipe = Pipeline(KitNETDetector(epochs=3, random_state=0)).fit(features)
    scored = score_capture(pipe, write_pcap(cap.packets, tmp_path / "all.pcap"))
    assert list(scored.rows.columns[:6]) == ["packet", "time", "score", "threshold", "anomaly", "incident"]
    assert len(scored.rows) == len(cap.packets)
    assert "port_scan" in {i.kind for i in scored.incidents}


def test_follow_mode_reads_records_as_they_are_written(tmp_path: Path) -> None:
    import threading
    import time

    from vigil.network.pcap import iter_capture

    frames = [_tcp4(), _tcp4(ACK), _tcp4(), _tcp4(ACK)]
    data = _pcap(frames)
    header_and_two = 24 + 2 * (16 + len(frames[0]))
    path = tmp_path / "live.pcap"
    path.write_bytes(data[:header_and_two] + data[header_and_two : header_and_two + 7])  # a record cut mid-way

    def writer() -> None:
        time.sleep(0.3)
        with path.open("ab") as handle:
            handle.write(data[header_and_two + 7 :])

    thread = threading.Thread(target=writer)
    thread.start()
    seen = 0
    for batch in iter_capture(path, batch_size=1, follow=True, poll_seconds=0.05):
        seen += len(batch)
        if seen == 4:
            break
    thread.join()
    assert seen == 4
