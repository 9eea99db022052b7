"""The plant's network for ``vigil demo``: device traffic with a DDoS flood and an unauthorized access attempt.

The plant's IoT devices publish to an MQTT broker, query DNS and NTP on the gateway (the synthetic benign
traffic of :mod:`vigil.network.synthetic`). After a benign period used for training, a spoofed SYN flood hits
the broker and, later, one host tries SSH logins on the gateway in a burst. KitNET is trained on the benign
packets; the rest is replayed in micro-batches through a :class:`~vigil.network.capture.CaptureScorer`, and
each injected attack is checked: detected or not, after how long, and typed as which incident.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from vigil.network.capture import CaptureScorer
from vigil.network.features import PacketFeatureExtractor, decays_for_training
from vigil.network.kitnet import KitNETDetector
from vigil.network.synthetic import make_capture
from vigil.pipeline import Pipeline

__all__ = ["EXPECTED_INCIDENT", "format_network_summary", "run_network_demo"]

EXPECTED_INCIDENT = {"syn_flood": "flood", "brute_force": "brute_force"}
"""Injected attack → the incident type it should be given."""


def run_network_demo(*, seed: int = 7, train_seconds: float = 900.0, batch_size: int = 2048) -> dict[str, Any]:
    """Simulate, train, replay and check; return the per-attack table, the incidents and timings.

    Examples
    --------
    >>> result = run_network_demo(train_seconds=300.0)  # doctest: +SKIP
    >>> [(row["attack"], row["detected"], row["typed_as"]) for row in result["attacks"]]  # doctest: +SKIP
    [('syn_flood', True, 'flood'), ('brute_force', True, 'brute_force')]
    >>> print(format_network_summary(result))  # doctest: +SKIP
    network attack  detected    delay  typed as      suggested action
    ...
    """
    start = time.perf_counter()
    cap = make_capture(["syn_flood", "brute_force"], train_seconds=train_seconds, gap_seconds=120.0, seed=seed)
    train, test, kinds = cap.split()
    extractor = PacketFeatureExtractor(decays=decays_for_training(train_seconds))
    features = pd.DataFrame(extractor.process(train), columns=extractor.feature_names)
    pipe = Pipeline(KitNETDetector(random_state=seed)).fit(features)
    scorer = CaptureScorer(pipe)
    scorer.score(train)  # the live scorer starts from the statistics the training traffic left
    flagged = np.zeros(len(test), dtype=bool)
    incident_of = np.full(len(test), "", dtype=object)
    incidents = []
    for offset in range(0, len(test), batch_size):
        scored = scorer.score(test.take(slice(offset, offset + batch_size)))
        flagged[offset : offset + len(scored.rows)] = scored.rows["anomaly"].to_numpy()
        incident_of[offset : offset + len(scored.rows)] = scored.rows["incident"].to_numpy()
        incidents += scored.incidents
    rows = []
    for event in cap.events:
        mask = kinds == event["kind"]
        hits = mask & flagged
        typed = pd.Series(incident_of[hits]).mode()
        rows.append(
            {
                "attack": event["kind"],
                "detected": bool(hits.any()),
                "delay_seconds": float(test.time[hits].min() - event["start"]) if hits.any() else None,
                "packets_flagged": float(hits.sum() / mask.sum()),
                "typed_as": str(typed.iloc[0]) if len(typed) else "",
                "expected": EXPECTED_INCIDENT[event["kind"]],
            }
        )
    benign = kinds == "benign"
    big = [i for i in incidents if len(i.packets) >= 10]
    return {
        "attacks": rows,
        "incidents": [i.as_dict() for i in big],
        "actions": [i.action for i in big],
        "false_alarm_rate": float(flagged[benign].mean()),
        "packets": len(cap.packets),
        "train_packets": len(train),
        "seconds": time.perf_counter() - start,
        "model_version": pipe.version_,
    }


def format_network_summary(result: dict[str, Any]) -> str:
    """The demo's console table for the network part."""
    lines = [f"{'network attack':<14}  {'detected':<8}  {'delay':>7}  {'typed as':<12}  suggested action", "-" * 96]
    actions = {i["kind"]: i["action"] for i in result["incidents"]}
    for row in result["attacks"]:
        delay = "—" if row["delay_seconds"] is None else f"{row['delay_seconds']:.1f} s"
        lines.append(
            f"{row['attack']:<14}  {'yes' if row['detected'] else 'no':<8}  {delay:>7}  {row['typed_as']:<12}  "
            f"{actions.get(row['typed_as'], '')}"
        )
    lines.append("-" * 96)
    lines.append(
        f"{result['packets']} packets, trained on {result['train_packets']}; "
        f"false-alarm rate {100 * result['false_alarm_rate']:.2f} % of benign packets"
    )
    return "\n".join(lines)
