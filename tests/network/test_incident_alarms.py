"""The alarm rule between typed network episodes and incidents: persistence, merging, nothing dropped silently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.alarms import AlarmPolicy
from vigil.errors import InvalidInputError
from vigil.network.incident_alarms import DEFAULT_RULE, PLAIN_RULE, IncidentAlarmRule, IncidentAlarms
from vigil.network.incidents import NetworkIncident, type_incidents


def _packets(times, src="10.0.0.7", dst="10.0.0.2") -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame({"packet": np.arange(n), "time": np.asarray(times, dtype=float), "src": src, "dst": dst,
                         "sport": 40000, "dport": 1883, "proto": 6, "flags": 0x18, "length": 120})  # fmt: skip


def test_stray_flagged_packets_are_held_back_and_a_persistent_pair_is_shown() -> None:
    # One flagged packet a minute on a pair that talks once a second: typed unusual_traffic each time.
    times = np.arange(0.0, 600.0, 1.0)
    meta = _packets(times)
    scores = np.where(np.arange(len(times)) % 60 == 30, 2.0, 0.5)
    # ... then 12 s in which every packet of the pair is flagged.
    scores[300:312] = 2.0
    episodes = type_incidents(meta, scores > 1.0)
    alarms = IncidentAlarms(DEFAULT_RULE, threshold=1.0)
    shown, held = alarms.annunciate(episodes, alarms.pair_alarms(meta, scores))
    assert len(held) == len(episodes) - 1 and all(i.kind in DEFAULT_RULE.persistent_kinds for i in held)
    assert [(i.start, i.end) for i in shown] == [(300.0, 311.0)]
    plain = IncidentAlarms(PLAIN_RULE, threshold=1.0)
    every, none = plain.annunciate(episodes, plain.pair_alarms(meta, scores))
    assert none == [] and len(every) == len(episodes) and all(a is b for a, b in zip(every, episodes, strict=True))


def test_a_typed_attack_needs_no_persistence_and_repeats_merge_within_the_holdoff() -> None:
    scan = [NetworkIncident("port_scan", t, t + 2.0, np.arange(i * 40, i * 40 + 40), "10.0.0.66", "10.0.0.12")
            for i, t in enumerate((0.0, 30.0, 200.0))]  # fmt: skip
    alarms = IncidentAlarms(DEFAULT_RULE, threshold=1.0)
    shown, held = alarms.annunciate(scan, np.zeros(120, dtype=bool))
    assert held == []
    assert [(i.start, i.end, len(i.packets), i.evidence["episodes"]) for i in shown] == [
        (0.0, 32.0, 80, 2),
        (200.0, 202.0, 40, 1),
    ]


def test_the_count_of_a_pair_restarts_after_a_silence_longer_than_max_gap() -> None:
    rule = IncidentAlarmRule(persistence=AlarmPolicy(on_delay=3, window=3), max_gap=5.0)
    # Three flagged packets in a row, but a 30 s silence before the third: no alarm; with no gap: alarm.
    apart = IncidentAlarms(rule, threshold=1.0).pair_alarms(_packets([0.0, 1.0, 31.0]), np.full(3, 2.0))
    together = IncidentAlarms(rule, threshold=1.0).pair_alarms(_packets([0.0, 1.0, 2.0]), np.full(3, 2.0))
    assert apart.tolist() == [False, False, False] and together.tolist() == [False, False, True]


def test_quiet_pairs_are_forgotten() -> None:
    alarms = IncidentAlarms(DEFAULT_RULE, threshold=1.0)
    alarms.pair_alarms(_packets(np.arange(20.0)), np.where(np.arange(20) == 3, 2.0, 0.5))
    assert alarms.tracked_pairs == 0


@pytest.mark.parametrize(
    "kwargs", [{"max_gap": 0.0}, {"max_gap": float("nan")}, {"holdoff_seconds": -1.0}, {"persistence": (4, 10)}]
)
def test_a_bad_rule_is_refused_with_its_name(kwargs) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(kwargs))):
        IncidentAlarmRule(**kwargs)


def test_odd_episodes_during_the_warm_up_are_held_back_with_their_reason() -> None:
    meta = _packets(np.arange(0.0, 60.0, 0.5))
    scores = np.where((np.arange(len(meta)) < 8) | (np.arange(len(meta)) >= 100), 2.0, 0.5)  # 0-3.5 s and 50-59.5 s
    episodes = type_incidents(meta, scores > 1.0)
    alarms = IncidentAlarms(DEFAULT_RULE, threshold=1.0, warmup_seconds=10.0)
    shown, held = alarms.annunciate(episodes, alarms.pair_alarms(meta, scores))
    assert [i.start for i in shown] == [50.0]
    assert [(i.start, i.evidence["held_back"].split(":")[0]) for i in held] == [(0.0, "warm-up")]
    # a typed attack in the warm-up is shown all the same
    scan = NetworkIncident("port_scan", 1.0, 3.0, np.arange(5), "10.0.0.66", "10.0.0.12")
    assert alarms.annunciate([scan], np.zeros(len(meta), dtype=bool))[0][0].kind == "port_scan"
