"""Invariants of the network incident alarm rule: persistence per host pair, batch pieces equal one run."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.alarms import AlarmPolicy
from vigil.network.incident_alarms import IncidentAlarmRule, IncidentAlarms

HOSTS = ["10.0.0.5", "10.0.0.9", "10.0.0.2"]


@st.composite
def traffic(draw):
    """Packets between three hosts, in time order, each flagged or not, with gaps that may reset a pair."""
    n = draw(st.integers(1, 120))
    src = draw(st.lists(st.sampled_from(HOSTS), min_size=n, max_size=n))
    dst = [HOSTS[(HOSTS.index(s) + draw(st.integers(1, 2))) % 3] for s in src]
    steps = draw(st.lists(st.sampled_from([0.01, 0.5, 3.0, 20.0]), min_size=n, max_size=n))
    flagged = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    meta = pd.DataFrame({"time": np.cumsum(steps), "src": src, "dst": dst})
    return meta, np.where(flagged, 2.0, 0.5)


rules = st.builds(
    lambda k, extra, gap: IncidentAlarmRule(
        persistence=AlarmPolicy(on_delay=k, window=k + extra, off_delay=k + extra), max_gap=gap
    ),
    st.integers(1, 6),
    st.integers(0, 6),
    st.sampled_from([1.0, 10.0, 100.0]),
)


def _pairs(meta: pd.DataFrame) -> list[frozenset[str]]:
    return [frozenset((a, b)) for a, b in zip(meta["src"], meta["dst"], strict=True)]


@settings(max_examples=150, deadline=None)
@given(traffic(), rules)
def test_a_pair_alarm_needs_k_flagged_packets_among_its_last_n(data, rule) -> None:
    meta, scores = data
    active = IncidentAlarms(rule, threshold=1.0).pair_alarms(meta, scores)
    pairs, times = _pairs(meta), meta["time"].to_numpy()
    k, n = rule.persistence.on_delay, rule.persistence.window
    for pair in set(pairs):
        rows = [i for i, p in enumerate(pairs) if p == pair]
        if sum(scores[i] > 1.0 for i in rows) < k:
            assert not active[rows].any(), "a pair with fewer than k flagged packets raised an alarm"
        for j, row in enumerate(rows):
            raised = active[row] and (j == 0 or not active[rows[j - 1]])
            if not raised:
                continue
            # The raise sees only the pair's packets since its last silence longer than max_gap.
            start = j
            while start > 0 and times[rows[start]] - times[rows[start - 1]] <= rule.max_gap:
                start -= 1
            recent = rows[max(start, j - n + 1) : j + 1]
            assert sum(scores[i] > 1.0 for i in recent) >= k


@settings(max_examples=100, deadline=None)
@given(traffic(), rules, st.integers(0, 120))
def test_batches_give_the_same_pair_alarms_as_one_run(data, rule, cut) -> None:
    meta, scores = data
    whole = IncidentAlarms(rule, threshold=1.0).pair_alarms(meta, scores)
    alarms = IncidentAlarms(rule, threshold=1.0)
    cut = min(cut, len(meta))
    first = alarms.pair_alarms(meta.iloc[:cut].reset_index(drop=True), scores[:cut])
    second = alarms.pair_alarms(meta.iloc[cut:].reset_index(drop=True), scores[cut:])
    assert np.array_equal(np.concatenate([first, second]), whole)
