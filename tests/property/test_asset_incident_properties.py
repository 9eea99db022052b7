from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.alerts import MODALITIES, Alert, AssetMap, IncidentCorrelator, IncidentEvent

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WINDOW = 30.0
ASSETS = AssetMap({"10.0.0.12": "pump2", "10.0.0.13": "pump3"})
DEVICES = {"pump2": {"telemetry": "pump2", "network": "10.0.0.12", "camera": "pump2/cam"}}
DEVICES["pump3"] = {"telemetry": "pump3", "network": "10.0.0.13", "camera": "pump3/cam"}

# (asset, modality, start s, duration s) of each alert
specs = st.lists(
    st.tuples(
        st.sampled_from(sorted(DEVICES)),
        st.sampled_from(MODALITIES),
        st.integers(0, 600),
        st.integers(0, 60),
    ),
    max_size=14,
)


def make_alert(n: int, asset: str, modality: str, start: int, end: int, status: str) -> Alert:
    return Alert(
        id=f"a{n}",
        device=DEVICES[asset][modality],
        start=T0 + timedelta(seconds=start),
        end=T0 + timedelta(seconds=end),
        peak_time=T0 + timedelta(seconds=start),
        score=2.0,
        threshold=1.0,
        model_version="m1",
        status=status,
        modality=modality,
    )


def expected_incidents(spans: list[tuple[str, str, int, int]]) -> set[frozenset[str]]:
    """Connected components of "same asset and at most WINDOW apart" that span two modalities or more."""
    parent = list(range(len(spans)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, (asset, _, start, end) in enumerate(spans):
        for j, (other, _, other_start, other_end) in enumerate(spans[:i]):
            if asset == other and max(start, other_start) - min(end, other_end) <= WINDOW:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(spans)):
        groups.setdefault(root(i), []).append(i)
    return {
        frozenset(f"a{i}" for i in members) for members in groups.values() if len({spans[i][1] for i in members}) >= 2
    }


def final_incidents(events: list[IncidentEvent]) -> set[frozenset[str]]:
    latest: dict[str, IncidentEvent] = {}
    for event in events:
        if event.incident.id not in latest or event.incident.revision > latest[event.incident.id].incident.revision:
            latest[event.incident.id] = event
    return {frozenset(e.incident.alert_ids) for e in latest.values() if e.incident.status != "merged"}


def deliver(correlator: IncidentCorrelator, alerts: list[Alert], cuts: list[int]) -> list[IncidentEvent]:
    """Hand the alerts to the correlator in batches, cut at the given positions."""
    events: list[IncidentEvent] = []
    bounds = sorted({0, len(alerts), *(c % (len(alerts) + 1) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        events += correlator.observe(alerts[lo:hi])
    return events


@settings(max_examples=300, deadline=None)
@given(
    specs=specs,
    orders=st.lists(st.randoms(use_true_random=False), min_size=3, max_size=3),
    cuts=st.lists(st.integers(0, 20), max_size=5),
)
def test_grouping_does_not_depend_on_arrival_order(specs, orders, cuts) -> None:
    spans = [(asset, modality, start, start + duration) for asset, modality, start, duration in specs]
    correlator = IncidentCorrelator(ASSETS, window_seconds=WINDOW)
    # As the sources report them: each alert opens (start only), grows to its full span, then closes;
    # alerts of different sources arrive in any order, and so do their updates.
    phases = []
    for status, full, rng in (("open", False, orders[0]), ("open", True, orders[1]), ("closed", True, orders[2])):
        phase = [
            make_alert(n, asset, modality, start, end if full else start, status)
            for n, (asset, modality, start, end) in enumerate(spans)
        ]
        rng.shuffle(phase)
        phases.append(phase)
    events = [e for phase in phases for e in deliver(correlator, phase, cuts)]
    events += correlator.close_all()
    assert final_incidents(events) == expected_incidents(spans)
    # every incident that opened ends closed or merged into another
    latest = {e.incident.id: e.incident for e in sorted(events, key=lambda e: e.incident.revision)}
    assert {i.status for i in latest.values()} <= {"closed", "merged"}
    for incident in latest.values():  # a merged one leads, through those it joined, to a closed one
        seen = {incident.id}
        while incident.status == "merged":
            incident = latest[incident.merged_into]
            assert incident.id not in seen
            seen.add(incident.id)
