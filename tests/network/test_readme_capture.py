"""The README's synthetic capture: its three attacks typed, and (almost) no incident outside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("dpkt", reason="packet captures need dpkt: pip install 'vigil[network]'")

from vigil.cli import main as vigil
from vigil.network.capture import score_capture
from vigil.network.incident_alarms import PLAIN_RULE
from vigil.pipeline import Pipeline

pytestmark = pytest.mark.slow

EXPECTED = {"syn_flood": "flood", "port_scan": "port_scan", "brute_force": "brute_force"}
SETTLE_SECONDS = 30.0  # the damped statistics settle some seconds after an attack ends


def test_the_readme_capture_raises_its_attacks_and_at_most_five_other_incidents(tmp_path: Path, capsys) -> None:
    assert vigil(["synth-capture", "-o", str(tmp_path / "synth")]) == 0
    assert vigil(["fit", str(tmp_path / "synth/benign.pcap"), "--detector", "kitnet", "-o", str(tmp_path / "m")]) == 0
    events = json.loads((tmp_path / "synth/events.json").read_text())
    pipe = Pipeline.load(tmp_path / "m")
    scored = score_capture(pipe, tmp_path / "synth/capture.pcap")

    def inside(incident, event) -> bool:
        return incident.start <= event["end"] + SETTLE_SECONDS and incident.end >= event["start"]

    for event in events:
        kinds = {i.kind for i in scored.incidents if inside(i, event)}
        assert EXPECTED[event["kind"]] in kinds, f"{event['kind']} typed as {kinds}"
    outside = [i.summary() for i in scored.incidents if not any(inside(i, e) for e in events)]
    assert len(outside) <= 5, outside
    # The plain rule (every typed episode an incident) is what raised a flood of them: the rule matters.
    plain = score_capture(pipe, tmp_path / "synth/capture.pcap", rule=PLAIN_RULE)
    assert len([i for i in plain.incidents if not any(inside(i, e) for e in events)]) > 50
    assert len(scored.held_back) > 50
