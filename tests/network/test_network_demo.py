"""The plant-network part of the demo: a DDoS flood and an unauthorized access attempt, detected and typed."""

from __future__ import annotations


def test_network_demo_detects_and_types_both_attacks() -> None:
    from vigil.network.demo import format_network_summary, run_network_demo

    result = run_network_demo(train_seconds=300.0)
    assert [(r["attack"], r["detected"], r["typed_as"]) for r in result["attacks"]] == [
        ("syn_flood", True, "flood"),
        ("brute_force", True, "brute_force"),
    ]
    assert all(r["delay_seconds"] < 5.0 for r in result["attacks"])
    assert result["false_alarm_rate"] < 0.05
    text = format_network_summary(result)
    assert "rate-limit traffic to 10.0.0.2" in text and "block 10.0.0.66" in text
