"""Live typing: a peer seen in an earlier batch of a capture is not a new peer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dpkt", reason="packet captures need dpkt: pip install 'vigil[network]'")

from vigil.network.capture import CaptureScorer, _features
from vigil.network.incidents import type_incidents
from vigil.network.kitnet import KitNETDetector
from vigil.network.synthetic import make_capture
from vigil.pipeline import Pipeline


def _talk(n: int = 30) -> pd.DataFrame:
    """A quiet exchange between one device and a broker: 30 flagged packets over 10 s."""
    return pd.DataFrame(
        {
            "packet": np.arange(n),
            "time": np.linspace(0.0, 10.0, n),
            "src": "10.0.0.7",
            "dst": "10.0.0.2",
            "sport": 40000,
            "dport": 1883,
            "proto": 6,
            "flags": 0x18,
            "length": 120,
        }
    )


def test_a_peer_known_from_earlier_batches_is_not_new() -> None:
    talk = _talk()
    flagged = np.ones(len(talk), dtype=bool)
    assert [i.kind for i in type_incidents(talk, flagged)] == ["new_peer"]
    known = type_incidents(
        talk, flagged, known_pairs={("10.0.0.7", "10.0.0.2")}, known_services={("10.0.0.2", 1883, 6)}
    )
    assert [i.kind for i in known] == ["unusual_traffic"]


def test_capture_scorer_remembers_peers_across_batches_within_its_bound() -> None:
    cap = make_capture(["port_scan"], train_seconds=60, gap_seconds=10, n_devices=3)
    train, test, _ = cap.split()
    pipe = Pipeline(KitNETDetector(epochs=3, random_state=0)).fit(_features(train)[0])
    scorer = CaptureScorer(pipe)
    scorer.score(train)
    seen = train.metadata()
    assert set(zip(seen["src"], seen["dst"], strict=True)) <= scorer.known_pairs
    assert ("10.0.0.66", "10.0.0.12") not in scorer.known_pairs  # the scanner comes later
    bounded = CaptureScorer(pipe, max_known=1)
    bounded.score(train)
    bounded.score(test)  # already at the bound: the second batch adds nothing
    assert len(bounded.known_pairs) == len(set(zip(seen["src"], seen["dst"], strict=True)))
