"""Damped statistics against hand computation, and the synthetic attacks detected and typed."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.network.damped import DampedKeyStats, linear_scan
from vigil.network.features import PacketFeatureExtractor
from vigil.network.packets import TCP_FLAGS, PacketTable
from vigil.network.synthetic import make_capture

SYN, ACK = TCP_FLAGS["SYN"], TCP_FLAGS["ACK"]


def _feature(X: np.ndarray, names: list[str], name: str) -> np.ndarray:
    return X[:, names.index(name)]


def test_linear_scan_matches_the_sequential_recurrence() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (300, 2))
    a[rng.random(300) < 0.1] = 0.0
    b = rng.normal(size=(300, 2, 3))
    expected = np.zeros_like(b)
    state = np.zeros((2, 3))
    for i in range(300):
        state = a[i][:, None] * state + b[i]
        expected[i] = state
    np.testing.assert_allclose(linear_scan(a, b), expected, rtol=1e-12, atol=1e-12)


def test_damped_stats_carry_state_across_batches_and_prune() -> None:
    stats = DampedKeyStats(decays=(1.0, 0.5), n_values=1, idle_timeout=10.0)
    slots, new = stats.assign([b"k"])
    first = stats.update(slots, np.array([0.0]), np.array([[1.0]]))
    slots2, new2 = stats.assign([b"k"])
    second = stats.update(slots2, np.array([2.0]), np.array([[1.0]]))
    assert new.tolist() == [True] and new2.tolist() == [False]
    np.testing.assert_allclose(first[0, :, 0], [1.0, 1.0])
    np.testing.assert_allclose(second[0, :, 0], [1.0 + 2.0**-2, 1.0 + 2.0**-1])
    assert stats.prune(now=5.0) == 0 and stats.prune(now=20.0) == 1 and stats.n_keys == 0


def _three_packets() -> PacketTable:
    return PacketTable.from_records(
        [
            {"time": 10.0, "length": 100, "src": "10.0.0.2", "dst": "10.0.0.1", "sport": 5000, "dport": 80,
             "proto": 6, "flags": SYN},
            {"time": 11.0, "length": 60, "src": "10.0.0.1", "dst": "10.0.0.2", "sport": 80, "dport": 5000,
             "proto": 6, "flags": SYN | ACK},
            {"time": 13.0, "length": 300, "src": "10.0.0.2", "dst": "10.0.0.1", "sport": 5000, "dport": 80,
             "proto": 6, "flags": ACK},
        ]
    )  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 2, 8192])
def test_features_equal_hand_computed_statistics(batch_size: int) -> None:
    ex = PacketFeatureExtractor(decays=(1.0,), dst_decays=(1.0,), batch_size=batch_size)
    X = ex.process(_three_packets())
    names = ex.feature_names
    # source host 10.0.0.2 at t=13: weights 2^-3 (t=10) and 1 (t=13)
    w = 2.0**-3 + 1.0
    mean = (100 * 2.0**-3 + 300) / w
    std = np.sqrt((100**2 * 2.0**-3 + 300**2) / w - mean**2)
    np.testing.assert_allclose(_feature(X, names, "host_w_L1"), [1.0, 1.0, w])
    np.testing.assert_allclose(_feature(X, names, "host_mean_L1")[2], mean)
    np.testing.assert_allclose(_feature(X, names, "host_std_L1")[2], std)
    # the first packet opened a new pair and socket; the third did not; the first is a bare SYN
    np.testing.assert_allclose(_feature(X, names, "host_new_peer_L1")[2], 2.0**-3 / w)
    np.testing.assert_allclose(_feature(X, names, "host_syn_L1"), [1.0, 0.0, 2.0**-3 / w])
    # the reply (packet 2) sees the forward pair decayed by 1 s: w = 1/2, so reply share = 1/2 / (1 + 1/2)
    np.testing.assert_allclose(_feature(X, names, "chan_reply_L1")[1], 0.5 / 1.5)
    # packet 3 sees the reverse pair (one packet at t=11) decayed by 2 s
    rev_w = 2.0**-2
    np.testing.assert_allclose(_feature(X, names, "chan_reply_L1")[2], rev_w / (w + rev_w))
    np.testing.assert_allclose(_feature(X, names, "chan_mag_L1")[2], np.hypot(mean, 60.0))
    np.testing.assert_allclose(_feature(X, names, "chan_radius_L1")[2], std)  # reverse has no spread
    # inter-arrival time within the pair 10.0.0.2 -> 10.0.0.1: 0 then 3 s
    np.testing.assert_allclose(_feature(X, names, "chan_jit_mean_L1")[2], 3.0 / w)
    np.testing.assert_allclose(_feature(X, names, "sock_w_L1"), [1.0, 1.0, w])
    np.testing.assert_allclose(_feature(X, names, "dst_new_source_L1")[:2], [1.0, 1.0])


def test_reordered_timestamps_are_clamped_and_counted() -> None:
    packets = _three_packets()
    columns = {name: getattr(packets, name).copy() for name in packets.__dataclass_fields__}
    columns["time"] = np.array([10.0, 9.0, 13.0])
    ex = PacketFeatureExtractor(decays=(1.0,))
    X = ex.process(PacketTable.from_columns(columns))
    assert ex.n_reordered == 1 and np.isfinite(X).all()


def test_synthetic_attacks_are_detected_and_typed() -> None:
    from vigil.network.capture import _features, score_packets
    from vigil.network.kitnet import KitNETDetector
    from vigil.pipeline import Pipeline

    cap = make_capture(
        ["syn_flood", "port_scan", "host_scan", "brute_force", "exfiltration"],
        train_seconds=900,
        gap_seconds=90,
        n_devices=6,
        seed=3,
    )
    features, metadata = _features(cap.packets)
    train = cap.packets.time < cap.train_end
    pipe = Pipeline(KitNETDetector(random_state=0)).fit(features[train])
    scored = score_packets(pipe, features[~train].reset_index(drop=True), metadata[~train].reset_index(drop=True))
    kind = cap.kind[~train]
    flagged = scored.rows["anomaly"].to_numpy()
    expected = {"syn_flood": "flood", "port_scan": "port_scan", "host_scan": "host_scan",
                "brute_force": "brute_force", "exfiltration": "exfiltration"}  # fmt: skip
    for attack, incident in expected.items():
        rows = kind == attack
        assert flagged[rows].mean() > 0.9, attack
        assert scored.rows["incident"][rows & flagged].mode().iloc[0] == incident, attack
    assert flagged[kind == "benign"].mean() < 0.05
    flood = next(i for i in scored.incidents if i.kind == "flood")
    assert flood.target == "10.0.0.2" and "rate-limit" in flood.action
    assert flood.evidence["distinct_sources_to_target"] > 1000


def test_vectorised_extractor_equals_the_per_packet_reference() -> None:
    from vigil.network.reference import SequentialFeatureExtractor

    cap = make_capture(["syn_flood", "port_scan", "brute_force"], train_seconds=60, gap_seconds=5, n_devices=4, seed=1)
    packets = cap.packets.take(slice(0, 3000))
    fast = PacketFeatureExtractor(idle_timeout=None, batch_size=512).process(packets)
    slow = SequentialFeatureExtractor().process(packets)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-5)
