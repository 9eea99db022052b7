from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.alerts import AlertTracker

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GAP = 30.0

# (seconds since the previous point, flagged); the first step is measured from T0.
steps = st.lists(
    st.tuples(st.floats(min_value=0.001, max_value=100.0, allow_nan=False), st.booleans()),
    max_size=60,
)


def expected_runs(times: list[datetime], flags: list[bool]) -> int:
    flagged = [t for t, flag in zip(times, flags, strict=True) if flag]
    runs = 0
    for i, t in enumerate(flagged):
        if i == 0 or (t - flagged[i - 1]).total_seconds() > GAP:
            runs += 1
    return runs


@settings(max_examples=200, deadline=None)
@given(steps=steps)
def test_alerts_match_flagged_runs(steps: list[tuple[float, bool]]) -> None:
    tracker = AlertTracker(device_gap_seconds=GAP, model_version="m1")
    times: list[datetime] = []
    flags: list[bool] = []
    elapsed = 0.0
    events = []
    for delta, flag in steps:
        elapsed += delta
        # Round to whole microseconds so that the expectation and the tracker see the same instants.
        moment = T0 + timedelta(microseconds=round(elapsed * 1e6))
        times.append(moment)
        flags.append(flag)
        events += tracker.update("pump2", moment, 2.0 if flag else 0.5, 1.0, flag, {"x": 1.0, "y": 0.5})
    events += tracker.close_all()

    opened = [e.alert for e in events if e.kind == "opened"]
    closed = [e.alert for e in events if e.kind == "closed"]
    assert len(opened) == expected_runs(times, flags)
    assert [a.id for a in closed] == [a.id for a in opened]
    assert len({a.id for a in closed}) == len(closed)
    assert sum(a.n_points for a in closed) == sum(flags)
    assert all(a.status == "closed" and a.start <= a.peak_time <= a.end for a in closed)
    assert tracker.open_alerts == []
