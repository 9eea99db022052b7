"""The Modbus and MQTTset capture protocols on the real captures (needs the data and dpkt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dpkt")
pytestmark = pytest.mark.data


def test_modbus_protocol_labels_and_every_attack_found(data_dir: Path) -> None:
    from vigil.network.bench import run_network_bench

    result = run_network_bench("modbus", "kitnet", data_dir=data_dir, quiet=True)
    assert set(result["per_part"]) == {"moving_two_files", "exploit_ms08", "cnc_upload", "characterization",
                                       "fake_command"}  # fmt: skip
    parts = result["per_part"]
    assert parts["characterization"]["attack_packets"] == 6719  # official labels, aligned by frame
    assert parts["characterization"]["read_stats"]["non_ip"] == 13
    assert "fake_command" in parts["exploit_ms08"]["trained_on"]
    assert result["event_recall"] == 1.0
    assert result["roc_auc_mean"] > 0.85
    for key in ("accuracy", "precision", "recall", "f1", "far", "roc_auc", "per_category_recall", "fit_seconds"):
        assert key in result


def test_mqttset_merged_attacks_are_all_detected(data_dir: Path) -> None:
    from vigil.network.bench import run_network_bench

    result = run_network_bench("mqttset", "kitnet", data_dir=data_dir, quiet=True)
    assert len(result["per_part"]) == 7
    assert result["event_recall"] == 1.0
    assert result["roc_auc"] > 0.95
    assert np.isfinite(result["benign_fpr_max"])


def test_merge_attack_rewrites_the_victim_and_keeps_time_order() -> None:
    from vigil.network.capture_bench import merge_attack
    from vigil.network.packets import PacketTable

    benign = PacketTable.from_records([{"time": float(t), "src": "10.0.0.2", "dst": "10.0.0.1"} for t in range(10)])
    attack = PacketTable.from_records(
        [{"time": 500.0 + t / 10, "src": f"6.6.6.{t}", "dst": "9.9.9.9"} for t in range(20)]
    )
    merged, is_attack = merge_attack(benign, attack, start=4.5, victim="9.9.9.9", new_victim="10.0.0.1")
    assert (np.diff(merged.time) >= 0).all() and is_attack.sum() == 20
    assert set(merged.metadata()["dst"]) == {"10.0.0.1"}
    assert merged.time[is_attack].min() == 4.5
