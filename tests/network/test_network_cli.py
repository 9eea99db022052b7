"""The CLI hooks: fit on a benign capture, score a capture to CSV with incident types, watch a capture."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("dpkt")


def test_fit_score_and_watch_a_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vigil.network.cli import add_commands, read_packets_as_table, write_capture_scores
    from vigil.network.kitnet import KitNETDetector
    from vigil.pipeline import Pipeline

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth-capture", "-o", str(tmp_path / "cap"), "--attacks", "port_scan",
                              "--train-seconds", "200"])  # fmt: skip
    assert args.func(args) == 0
    features, _ = read_packets_as_table(tmp_path / "cap" / "benign.pcap")
    Pipeline(KitNETDetector(epochs=3, random_state=0)).fit(features).save(tmp_path / "model")
    summary = write_capture_scores(tmp_path / "model", tmp_path / "cap" / "capture.pcap", tmp_path / "scores.csv")
    assert "port_scan" in summary
    rows = pd.read_csv(tmp_path / "scores.csv")
    assert rows.columns.tolist()[:6] == ["packet", "time", "score", "threshold", "anomaly", "incident"]
    incidents = json.loads((tmp_path / "scores.csv.incidents.json").read_text())["incidents"]
    assert any(i["kind"] == "port_scan" and i["source"] == "10.0.0.66" for i in incidents)
    args = parser.parse_args(["watch", str(tmp_path / "model"), str(tmp_path / "cap" / "capture.pcap"), "--once",
                              "-o", str(tmp_path / "alerts.jsonl")])  # fmt: skip
    assert args.func(args) == 0
    assert "port_scan: 10.0.0.66" in capsys.readouterr().out
    assert (tmp_path / "alerts.jsonl").read_text().count("\n") >= 1
