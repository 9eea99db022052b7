from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vigil.alerts import Alert, AlertEvent, AlertTracker, alert_id, default_incident_type
from vigil.errors import InvalidInputError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def feed(tracker: AlertTracker, device: str, points: list[tuple[float, float, bool]]) -> list[AlertEvent]:
    """Feed (seconds, score, flagged) points with a fixed threshold of 1 and two features."""
    events: list[AlertEvent] = []
    for seconds, score, flagged in points:
        contributions = {f"{device}.flow_m3h": 3.0 * score, f"{device}.rpm": 1.0 * score}
        events += tracker.update(device, at(seconds), score, 1.0, flagged, contributions)
    return events


def test_sustained_run_is_one_growing_alert() -> None:
    tracker = AlertTracker(device_gap_seconds=30, model_version="m1")
    points = [(0, 0.5, False), (1, 2.0, True), (2, 4.2, True), (3, 3.0, True), (4, 0.1, False)]
    events = feed(tracker, "pump2", points)
    assert [e.kind for e in events] == ["opened", "updated", "updated"]
    assert len({e.alert.id for e in events}) == 1
    (closed,) = tracker.close_all()
    assert closed.kind == "closed"
    alert = closed.alert
    assert alert.status == "closed"
    assert alert.n_points == 3
    assert alert.start == at(1)
    assert alert.end == at(3)
    assert alert.peak_time == at(2)
    assert alert.score == pytest.approx(4.2)
    assert alert.threshold == 1.0
    assert alert.model_version == "m1"
    assert alert.device == "pump2"
    assert [name for name, _ in alert.top_features] == ["pump2.flow_m3h", "pump2.rpm"]
    assert sum(share for _, share in alert.top_features) == pytest.approx(1.0)
    assert alert.top_features[0][1] == pytest.approx(0.75)
    assert tracker.open_alerts == []


def test_events_are_snapshots() -> None:
    tracker = AlertTracker(model_version="m1")
    events = feed(tracker, "pump2", [(0, 2.0, True), (1, 3.0, True)])
    assert events[0].alert.n_points == 1
    assert events[1].alert.n_points == 2
    assert events[0].alert.status == "open"


def test_gap_longer_than_device_gap_gives_two_alerts() -> None:
    tracker = AlertTracker(device_gap_seconds=30, model_version="m1")
    events = feed(tracker, "pump2", [(0, 2.0, True), (10, 2.0, True), (41, 2.0, True)])
    events += tracker.close_all()
    assert [e.kind for e in events] == ["opened", "updated", "closed", "opened", "closed"]
    first, second = events[2].alert, events[4].alert
    assert first.id != second.id
    assert (first.n_points, second.n_points) == (2, 1)
    assert (first.end, second.start) == (at(10), at(41))


def test_gap_of_exactly_device_gap_keeps_the_alert_open() -> None:
    tracker = AlertTracker(device_gap_seconds=30, model_version="m1")
    events = feed(tracker, "pump2", [(0, 2.0, True), (30, 2.0, True)])
    assert [e.kind for e in events] == ["opened", "updated"]


def test_unflagged_point_after_the_gap_closes_the_alert() -> None:
    tracker = AlertTracker(device_gap_seconds=30, model_version="m1")
    events = feed(tracker, "pump2", [(0, 2.0, True), (5, 0.1, False), (31, 0.1, False)])
    assert [e.kind for e in events] == ["opened", "closed"]
    assert events[-1].alert.end == at(0)


def test_flush_closes_silent_devices_only() -> None:
    tracker = AlertTracker(device_gap_seconds=30, model_version="m1")
    feed(tracker, "a", [(0, 2.0, True)])
    feed(tracker, "b", [(20, 2.0, True)])
    assert [(e.kind, e.alert.device) for e in tracker.flush(at(40))] == [("closed", "a")]
    assert [a.device for a in tracker.open_alerts] == ["b"]
    closed = tracker.flush(at(100))
    assert [(e.kind, e.alert.device) for e in closed] == [("closed", "b")]
    assert tracker.flush(at(200)) == []


def test_devices_are_independent() -> None:
    tracker = AlertTracker(device_gap_seconds=30, model_version="m1")
    events: list[AlertEvent] = []
    for i in range(6):
        events += feed(tracker, "a", [(i, 2.0, True)])
        events += feed(tracker, "b", [(i, 0.1 if i < 3 else 2.0, i >= 3)])
    events += tracker.close_all()
    closed = {e.alert.device: e.alert for e in events if e.kind == "closed"}
    assert set(closed) == {"a", "b"}
    assert closed["a"].n_points == 6
    assert closed["b"].n_points == 3
    assert closed["b"].start == at(3)
    assert closed["a"].id != closed["b"].id
    assert closed["a"].top_features[0][0] == "a.flow_m3h"
    assert closed["b"].top_features[0][0] == "b.flow_m3h"


def test_ids_are_deterministic() -> None:
    points = [(0, 2.0, True), (1, 3.0, True), (50, 2.0, True), (51, 0.1, False)]

    def run() -> list[tuple[str, str]]:
        tracker = AlertTracker(device_gap_seconds=30, model_version="m1")
        events = feed(tracker, "pump2", points) + tracker.close_all()
        return [(e.kind, e.alert.id) for e in events]

    first, second = run(), run()
    assert first == second
    assert len({alert for _, alert in first}) == 2
    assert first[0][1] == alert_id("pump2", "m1", at(0))


def test_id_depends_on_model_version_and_device() -> None:
    ids = {alert_id("a", "m1", T0), alert_id("b", "m1", T0), alert_id("a", "m2", T0)}
    assert len(ids) == 3
    # The same instant in another time zone is the same alert.
    assert alert_id("a", "m1", T0) == alert_id("a", "m1", T0.astimezone(timezone(timedelta(hours=2))))


def test_posix_seconds_are_accepted_as_times() -> None:
    tracker = AlertTracker(model_version="m1")
    (event,) = tracker.update("pump2", T0.timestamp(), 2.0, 1.0, True, {"x": 1.0})
    assert event.alert.start == T0


def test_out_of_order_time_raises_and_names_device_and_times() -> None:
    tracker = AlertTracker(model_version="m1")
    feed(tracker, "pump2", [(10, 2.0, True)])
    with pytest.raises(InvalidInputError, match="pump2") as info:
        feed(tracker, "pump2", [(5, 2.0, True)])
    message = str(info.value)
    assert at(5).isoformat() in message.replace(".000000", "")
    assert at(10).isoformat() in message.replace(".000000", "")
    # The rejected point changed nothing; other devices may still be at earlier times.
    assert tracker.open_alerts[0].n_points == 1
    assert feed(tracker, "other", [(5, 2.0, True)])[0].kind == "opened"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"time": datetime(2024, 5, 1, 12, 0)}, "time zone"),  # naive on purpose
        ({"score": float("nan")}, "score"),
        ({"threshold": float("inf")}, "threshold"),
        ({"contributions": {"x": -1.0}}, "contributions"),
        ({"contributions": {"x": float("nan")}}, "contributions"),
        ({"contributions": [1.0]}, "mapping"),
        ({"device": ""}, "device"),
    ],
)
def test_bad_points_are_rejected(kwargs: dict[str, object], match: str) -> None:
    tracker = AlertTracker(model_version="m1")
    point = {
        "device": "pump2",
        "time": T0,
        "score": 2.0,
        "threshold": 1.0,
        "is_anomaly": True,
        "contributions": {"x": 1.0},
    }
    point.update(kwargs)
    with pytest.raises(InvalidInputError, match=match):
        tracker.update(**point)  # type: ignore[arg-type]
    assert tracker.open_alerts == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"device_gap_seconds": -1.0, "model_version": "m1"},
        {"device_gap_seconds": float("nan"), "model_version": "m1"},
        {"model_version": ""},
        {"model_version": "m1", "top_k": 0},
    ],
)
def test_bad_tracker_parameters_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        AlertTracker(**kwargs)  # type: ignore[arg-type]


def test_default_incident_type_rule() -> None:
    assert default_incident_type([("a", 0.6), ("b", 0.4)]) == "single-sensor deviation (a)"
    assert default_incident_type([("a", 0.59), ("b", 0.41)]) == "multi-sensor deviation"
    assert default_incident_type([("a", 1.0)]) == "single-sensor deviation (a)"
    assert default_incident_type([]) == "unattributed deviation"


def test_tracker_classifies_from_accumulated_shares() -> None:
    tracker = AlertTracker(model_version="m1")
    (opened,) = tracker.update("p", at(0), 2.0, 1.0, True, {"p.temp_c": 9.0, "p.rpm": 1.0})
    assert opened.alert.incident_type == "single-sensor deviation (p.temp_c)"
    (updated,) = tracker.update("p", at(1), 2.0, 1.0, True, {"p.rpm": 9.0, "p.vib_mm_s": 1.0})
    # Totals now temp 9, rpm 10, vib 1: no feature holds 60 %.
    assert updated.alert.incident_type == "multi-sensor deviation"
    assert [name for name, _ in updated.alert.top_features] == ["p.rpm", "p.temp_c", "p.vib_mm_s"]


def test_custom_classifier_replaces_the_default() -> None:
    def classify(top_features: object) -> str:
        return "cavitation"

    tracker = AlertTracker(model_version="m1", classify=classify)
    (event,) = tracker.update("p", at(0), 2.0, 1.0, True, {"p.flow": 1.0})
    assert event.alert.incident_type == "cavitation"


def test_top_k_limits_the_features_kept() -> None:
    tracker = AlertTracker(model_version="m1", top_k=2)
    (event,) = tracker.update("p", at(0), 2.0, 1.0, True, {"a": 3.0, "b": 2.0, "c": 1.0})
    assert event.alert.top_features == [("a", pytest.approx(0.5)), ("b", pytest.approx(2 / 6))]


def test_explanation_mentions_top_features_and_peak_ratio() -> None:
    tracker = AlertTracker(model_version="m1")
    contributions = {"pump2.flow_m3h": 0.45, "pump2.outlet_pressure_bar": 0.33, "pump2.rpm": 0.22}
    (event,) = tracker.update("pump2", at(0), 4.2, 1.0, True, contributions)
    assert event.alert.explanation == (
        "pump2.flow_m3h and pump2.outlet_pressure_bar drove 78 % of the score (peak 4.2× threshold)"
    )
    (event,) = tracker.update("other", at(0), 3.0, 2.0, True, {"other.temp_c": 1.0})
    assert event.alert.explanation.startswith("other.temp_c drove 100 %")
    assert "1.5× threshold" in event.alert.explanation


def test_explanation_without_attribution() -> None:
    tracker = AlertTracker(model_version="m1")
    (event,) = tracker.update("p", at(0), 2.0, 0.0, True, {})
    assert event.alert.top_features == []
    assert event.alert.incident_type == "unattributed deviation"
    assert "No feature attribution" in event.alert.explanation


def test_alert_dict_round_trip_is_json_friendly() -> None:
    tracker = AlertTracker(model_version="m1")
    feed(tracker, "pump2", [(0, 2.0, True), (1, 5.0, True)])
    (event,) = tracker.close_all()
    alert = event.alert
    alert.feedback.append({"time": at(9).isoformat(), "verdict": "note", "note": "checked", "user": "ana"})
    text = json.dumps(alert.to_dict())
    again = Alert.from_dict(json.loads(text))
    assert again == alert
    assert json.loads(text)["start"] == "2024-05-01T12:00:00.000000+00:00"


def test_alert_rejects_unknown_status_and_naive_times() -> None:
    with pytest.raises(InvalidInputError, match="status"):
        Alert(
            id="a",
            device="d",
            start=T0,
            end=T0,
            peak_time=T0,
            score=1.0,
            threshold=1.0,
            model_version="m",
            status="resolved",
        )
    naive = datetime(2024, 5, 1)  # naive on purpose
    with pytest.raises(InvalidInputError, match="time zone"):
        Alert(id="a", device="d", start=naive, end=T0, peak_time=T0, score=1.0, threshold=1.0, model_version="m")


def test_from_dict_reports_missing_fields() -> None:
    record = Alert(
        id="a", device="d", start=T0, end=T0, peak_time=T0, score=1.0, threshold=1.0, model_version="m"
    ).to_dict()
    del record["threshold"]
    with pytest.raises(InvalidInputError, match="threshold"):
        Alert.from_dict(record)
