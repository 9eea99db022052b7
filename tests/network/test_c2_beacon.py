"""c2_beacon: an internal host's regular, unanswered check-ins with one remote host and port."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.errors import InvalidInputError
from vigil.network.beacons import BeaconRule, BeaconTracker
from vigil.network.incidents import type_incidents
from vigil.network.synthetic import make_capture

SYN, ACK, RST, PSH = 0x02, 0x10, 0x04, 0x08


def _beats(times, *, src="10.0.0.14", dst="198.51.100.23", dport=4444, proto=6, answer=None) -> pd.DataFrame:
    """One attempt per time (a SYN, or a UDP datagram); ``answer`` adds the remote's reply with that payload."""
    n = len(times)
    sport = 41000 + np.arange(n)
    flags = SYN if proto == 6 else 0
    rows = pd.DataFrame({"time": times, "src": src, "dst": dst, "sport": sport, "dport": dport, "proto": proto,
                         "flags": flags, "length": 60, "payload": 0 if proto == 6 else 48})  # fmt: skip
    if answer is not None:
        back = pd.DataFrame({"time": np.asarray(times) + 0.02, "src": dst, "dst": src, "sport": dport, "dport": sport,
                             "proto": proto, "flags": PSH | ACK if proto == 6 else 0, "length": 60 + answer,
                             "payload": answer})  # fmt: skip
        rows = pd.concat([rows, back])
    rows = rows.sort_values("time", kind="stable").reset_index(drop=True)
    return rows.assign(packet=np.arange(len(rows)))


@pytest.mark.parametrize("jitter", [0.0, 0.03, 0.1])
def test_a_jittered_unanswered_beacon_is_typed_with_its_evidence(jitter: float) -> None:
    rng = np.random.default_rng(3)
    times = 1000.0 + np.arange(15) * 20.0 + rng.uniform(-jitter, jitter, 15) * 20.0
    meta = _beats(times)
    incidents = type_incidents(meta, np.ones(len(meta), dtype=bool))
    assert [(i.kind, i.source, i.target) for i in incidents] == [("c2_beacon", "10.0.0.14", "198.51.100.23")]
    evidence = incidents[0].evidence
    assert evidence["attempts"] == 15 and evidence["destination"] == "198.51.100.23:4444"
    assert evidence["period_seconds"] == pytest.approx(20.0, rel=0.1)
    assert evidence["jitter"] <= max(jitter, 0.01) and evidence["silent_share"] == 1.0
    assert "198.51.100.23 port 4444" in incidents[0].action


def test_the_synthetic_beacon_is_typed_over_benign_traffic() -> None:
    cap = make_capture(["c2_beacon"], train_seconds=60, gap_seconds=10, n_devices=3)
    incidents = type_incidents(cap.packets.metadata(), cap.y)
    beacons = [i for i in incidents if i.kind == "c2_beacon"]
    assert [(i.source, i.target) for i in beacons] == [("10.0.0.14", "198.51.100.23")]
    # retransmissions a second after a silent SYN count once
    assert beacons[0].evidence["attempts"] == 12


@pytest.mark.parametrize(("proto", "answer"), [(17, 48), (6, 300)])
def test_periodic_traffic_that_is_answered_is_no_beacon(proto: int, answer: int) -> None:
    # NTP- or DNS-like request-response every 20 s to one outside server (UDP), or a polled HTTPS API (TCP)
    times = 1000.0 + np.arange(15) * 20.0
    meta = _beats(times, dport=123 if proto == 17 else 443, proto=proto, answer=answer)
    kinds = {i.kind for i in type_incidents(meta, np.ones(len(meta), dtype=bool))}
    assert "c2_beacon" not in kinds


def test_the_benign_synthetic_traffic_raises_no_beacon_even_when_every_packet_is_flagged() -> None:
    cap = make_capture([], train_seconds=600, gap_seconds=10, n_devices=4)
    meta = cap.packets.metadata()
    assert "c2_beacon" not in {i.kind for i in type_incidents(meta, np.ones(len(meta), dtype=bool))}


def test_irregular_or_too_few_attempts_are_no_beacon() -> None:
    rng = np.random.default_rng(0)
    random_times = 1000.0 + np.cumsum(rng.exponential(20.0, 15))
    few = 1000.0 + np.arange(5) * 20.0
    for times in (random_times, few):
        meta = _beats(times)
        assert "c2_beacon" not in {i.kind for i in type_incidents(meta, np.ones(len(meta), dtype=bool))}


def test_a_beacon_the_detector_does_not_flag_is_no_incident() -> None:
    meta = _beats(1000.0 + np.arange(15) * 20.0)
    assert type_incidents(meta, np.zeros(len(meta), dtype=bool)) == []


def test_a_beacon_spread_over_batches_is_found_from_the_history() -> None:
    meta = _beats(1000.0 + np.arange(12) * 20.0)
    tracker = BeaconTracker()
    found = []
    for part in np.array_split(np.arange(len(meta)), 4):  # 3 attempts a batch: none holds enough alone
        batch = meta.iloc[part].reset_index(drop=True)
        found += [i for i in type_incidents(batch, np.ones(len(batch), dtype=bool), beacons=tracker)]
    # the first batch's 3 attempts are stray episodes; with 6 attempts seen, the second batch types the beacon
    assert [i.kind for i in found] == ["unusual_traffic"] * 3 + ["c2_beacon"] * 3
    assert found[-1].evidence["attempts"] == 12 and found[-1].start == 1000.0


def test_a_bad_beacon_rule_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="min_attempts"):
        BeaconRule(min_attempts=2)
    with pytest.raises(InvalidInputError, match="max_jitter"):
        BeaconRule(max_jitter=float("nan"))
