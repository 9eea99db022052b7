"""Properties of the evaluation metrics that must hold for any labels and decisions."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vigil.evaluation.metrics import (
    Counts,
    best_f1,
    confusion_counts,
    detection_delays,
    evaluate,
    evaluate_groups,
    event_recall,
    point_adjust,
    point_metrics,
    segments,
)


@st.composite
def labelled(draw: st.DrawFn, max_rows: int = 120) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=1, max_value=max_rows))
    return draw(arrays(np.bool_, n)), draw(arrays(np.bool_, n))


@st.composite
def scored(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=1, max_value=120))
    y_true = draw(arrays(np.bool_, n))
    # few distinct values so that ties are common
    scores = draw(arrays(np.float64, n, elements=st.integers(-5, 5).map(float)))
    return y_true, scores


@given(labelled())
def test_point_metrics_are_fractions(case: tuple[np.ndarray, np.ndarray]) -> None:
    m = point_metrics(confusion_counts(*case))
    for key in ("precision", "recall", "f1", "far", "mar"):
        assert math.isnan(m[key]) or 0.0 <= m[key] <= 1.0
    assert 0.0 <= m["f1"] <= 1.0
    assert 0.0 <= m["precision"] <= 1.0
    assert m["tp"] + m["fp"] + m["fn"] + m["tn"] == case[0].shape[0]
    if not math.isnan(m["recall"]):
        assert math.isclose(m["mar"], 1.0 - m["recall"])


@given(labelled())
def test_point_adjust_only_adds_flags_inside_anomalies(case: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, y_pred = case
    adjusted = point_adjust(y_true, y_pred)
    assert np.array_equal(adjusted[~y_true], y_pred[~y_true])
    assert np.all(adjusted >= y_pred)
    assert np.array_equal(point_adjust(y_true, adjusted), adjusted)  # idempotent


@given(labelled())
def test_point_adjusted_recall_and_f1_not_below_raw(case: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, y_pred = case
    raw = point_metrics(confusion_counts(y_true, y_pred))
    adjusted = point_metrics(confusion_counts(y_true, point_adjust(y_true, y_pred)))
    if not math.isnan(raw["recall"]):
        assert adjusted["recall"] >= raw["recall"]
    assert adjusted["f1"] >= raw["f1"]
    assert evaluate(y_true, y_pred)["f1_point_adjusted"] >= evaluate(y_true, y_pred)["f1"]


@given(labelled())
def test_segments_cover_exactly_the_anomalies(case: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, y_pred = case
    rebuilt = np.zeros_like(y_true)
    previous_end = -1
    for start, end in segments(y_true):
        assert previous_end < start < end  # ordered, non-empty, separated by at least one normal row
        rebuilt[start:end] = True
        previous_end = end
    assert np.array_equal(rebuilt, y_true)
    delays = detection_delays(y_true, y_pred)
    assert len(delays) == len(segments(y_true))
    found = sum(d is not None for d in delays)
    recall = event_recall(y_true, y_pred)
    assert (math.isnan(recall) and not delays) or math.isclose(recall, found / len(delays))
    assert all(d is None or d >= 0 for d in delays)


@given(st.lists(labelled(max_rows=40), min_size=1, max_size=5))
def test_pooled_counts_equal_sum_of_part_counts(cases: list[tuple[np.ndarray, np.ndarray]]) -> None:
    parts = {f"part-{i}": (y_true, y_pred, None) for i, (y_true, y_pred) in enumerate(cases)}
    result = evaluate_groups(parts)
    pooled = result["pooled"]
    expected = sum((confusion_counts(y, p) for y, p in cases), Counts(0, 0, 0, 0))
    assert Counts(pooled["tp"], pooled["fp"], pooled["fn"], pooled["tn"]) == expected
    assert pooled["n_segments"] == sum(r["n_segments"] for r in result["per_part"].values())
    assert pooled["false_alarm_events"] == sum(r["false_alarm_events"] for r in result["per_part"].values())


@settings(max_examples=60)
@given(scored(), st.data())
def test_best_f1_beats_every_threshold(case: tuple[np.ndarray, np.ndarray], data: st.DataObject) -> None:
    y_true, scores = case
    result = best_f1(y_true, scores)
    if not y_true.any():
        assert math.isnan(result["f1"])
        return
    threshold = data.draw(st.sampled_from(sorted(set(scores.tolist()))))
    other = point_metrics(confusion_counts(y_true, scores >= threshold))["f1"]
    assert result["f1"] >= other - 1e-12
    chosen = point_metrics(confusion_counts(y_true, scores >= result["threshold"]))["f1"]
    assert math.isclose(chosen, result["f1"])
