"""Metrics against small cases worked out by hand, degenerate series, pooling, and input checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from vigil.errors import InvalidInputError
from vigil.evaluation.metrics import (
    Counts,
    best_f1,
    confusion_counts,
    detection_delays,
    evaluate,
    evaluate_groups,
    event_recall,
    false_alarm_events,
    false_alarms_per_hour,
    point_adjust,
    point_metrics,
    pr_auc,
    roc_auc,
    segments,
)

# The worked example used throughout.
#   row:     0  1  2  3  4  5  6  7  8  9
#   y_true:  0  0  1  1  1  0  0  1  1  0   segments [2, 5) and [7, 9)
#   y_pred:  0  1  0  1  1  0  0  0  0  1   flagged runs [1, 2), [3, 5), [9, 10)
Y_TRUE = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0])
Y_PRED = np.array([0, 1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=bool)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


# ---------------------------------------------------------------------------------------------------------
# counts and point metrics
# ---------------------------------------------------------------------------------------------------------


def test_confusion_counts_worked_example() -> None:
    # TP rows 3, 4; FP rows 1, 9; FN rows 2, 7, 8; TN rows 0, 5, 6
    assert confusion_counts(Y_TRUE, Y_PRED) == Counts(tp=2, fp=2, fn=3, tn=3)


def test_point_metrics_worked_example() -> None:
    m = point_metrics(Counts(tp=2, fp=2, fn=3, tn=3))
    assert m["precision"] == pytest.approx(0.5)  # 2 / (2 + 2)
    assert m["recall"] == pytest.approx(0.4)  # 2 / (2 + 3)
    assert m["f1"] == pytest.approx(0.4444444444)  # 2 / (2 + (2 + 3) / 2) = 2 / 4.5
    assert m["far"] == pytest.approx(0.4)  # FP / (FP + TN) = 2 / 5
    assert m["mar"] == pytest.approx(0.6)  # FN / (FN + TP) = 3 / 5
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 2, 3, 3)
    assert all(type(m[k]) is int for k in ("tp", "fp", "fn", "tn"))


def test_point_metrics_are_fractions_not_percent() -> None:
    m = point_metrics(Counts(tp=9, fp=1, fn=1, tn=89))
    for key in ("precision", "recall", "f1", "far", "mar"):
        assert 0.0 <= m[key] <= 1.0


def test_point_metrics_rejects_non_counts() -> None:
    with pytest.raises(InvalidInputError, match="counts must be a Counts"):
        point_metrics({"tp": 1})  # type: ignore[arg-type]


def test_counts_add_and_sum() -> None:
    a = Counts(tp=1, fp=2, fn=3, tn=4)
    b = Counts(tp=10, fp=20, fn=30, tn=40)
    assert a + b == Counts(tp=11, fp=22, fn=33, tn=44)
    assert sum([a, b]) == a + b
    assert (a + b).total == 110
    with pytest.raises(TypeError):
        _ = a + 1  # type: ignore[operator]


def test_counts_is_frozen() -> None:
    counts = Counts(tp=1, fp=0, fn=0, tn=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        counts.tp = 2  # type: ignore[misc]


def test_skab_sanity_anchor_flag_everything() -> None:
    # SKAB: 12771 anomalous rows among 23801. Flagging every row: TP = 12771, FP = 11030, FN = TN = 0,
    # so F1 = 12771 / (12771 + 11030 / 2) = 0.6984..., precision = 12771 / 23801, recall 1, FAR 11030/11030.
    y_true = np.zeros(23801, dtype=int)
    y_true[:12771] = 1
    m = point_metrics(confusion_counts(y_true, np.ones(23801, dtype=bool)))
    assert m["f1"] == pytest.approx(0.698403149950782)
    assert m["f1"] == pytest.approx(0.698, abs=5e-4)
    assert m["far"] == 1.0
    assert m["recall"] == 1.0
    assert m["mar"] == 0.0
    assert m["precision"] == pytest.approx(0.5365740935254821)


# ---------------------------------------------------------------------------------------------------------
# degenerate series
# ---------------------------------------------------------------------------------------------------------


def test_no_anomalies() -> None:
    y_true = [0, 0, 0, 0]
    y_pred = [0, 1, 0, 0]
    m = point_metrics(confusion_counts(y_true, y_pred))  # TP 0, FP 1, FN 0, TN 3
    assert m["precision"] == 0.0
    assert _is_nan(m["recall"])
    assert _is_nan(m["mar"])
    assert m["f1"] == 0.0
    assert m["far"] == pytest.approx(0.25)  # 1 / (1 + 3)
    assert _is_nan(event_recall(y_true, y_pred))
    assert detection_delays(y_true, y_pred) == []
    assert segments(y_true) == []
    assert _is_nan(roc_auc(y_true, [0.1, 0.9, 0.2, 0.3]))
    assert _is_nan(pr_auc(y_true, [0.1, 0.9, 0.2, 0.3]))
    assert all(_is_nan(v) for v in best_f1(y_true, [0.1, 0.9, 0.2, 0.3]).values())
    r = evaluate(y_true, y_pred, scores=[0.1, 0.9, 0.2, 0.3])
    assert _is_nan(r["detection_delay_mean"]) and _is_nan(r["detection_delay_median"])
    assert r["false_alarm_events"] == 1
    assert r["false_alarms_per_hour"] == pytest.approx(900.0)  # 1 event / (4 rows * 1 s / 3600 s/h)


def test_no_anomalies_and_no_predictions() -> None:
    m = point_metrics(confusion_counts([0, 0, 0], [0, 0, 0]))
    assert (m["precision"], m["f1"], m["far"]) == (0.0, 0.0, 0.0)
    assert _is_nan(m["recall"])


def test_all_anomalies() -> None:
    y_true = [1, 1, 1]
    m = point_metrics(confusion_counts(y_true, [1, 1, 1]))
    assert (m["precision"], m["recall"], m["f1"], m["mar"]) == (1.0, 1.0, 1.0, 0.0)
    assert _is_nan(m["far"])  # no normal row: FP + TN = 0
    assert segments(y_true) == [(0, 3)]
    assert _is_nan(roc_auc(y_true, [0.1, 0.2, 0.3]))
    assert best_f1(y_true, [0.1, 0.2, 0.3])["f1"] == 1.0  # threshold 0.1 flags everything
    assert false_alarm_events(y_true, [1, 1, 1]) == 0
    assert _is_nan(false_alarms_per_hour(y_true, [1, 1, 1]))  # no normal time at all


def test_no_predictions() -> None:
    y_true = [0, 1, 1, 0]
    y_pred = np.zeros(4, dtype=bool)
    m = point_metrics(confusion_counts(y_true, y_pred))  # TP 0, FP 0, FN 2, TN 2
    assert (m["precision"], m["recall"], m["f1"], m["far"], m["mar"]) == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert event_recall(y_true, y_pred) == 0.0
    assert detection_delays(y_true, y_pred) == [None]
    assert not point_adjust(y_true, y_pred).any()
    assert false_alarms_per_hour(y_true, y_pred) == 0.0


def test_positive_label_values_count_as_anomalous() -> None:
    # label codes other than 1 (for example an anomaly type) still mean anomalous
    assert confusion_counts([0, 2, 3, 0], [0.0, 1.0, 0.0, 0.0]) == Counts(tp=1, fp=0, fn=1, tn=2)


# ---------------------------------------------------------------------------------------------------------
# threshold-free figures
# ---------------------------------------------------------------------------------------------------------


def test_roc_auc_hand_computed() -> None:
    # positive/negative pairs ranked right: 0.35 > 0.1, 0.8 > 0.1, 0.8 > 0.4 (not 0.35 > 0.4): 3 of 4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie counts half
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_pr_auc_hand_computed() -> None:
    # ranked: 0.8 (anomaly) P=1 R=.5; 0.4 (normal); 0.35 (anomaly) P=2/3 R=1 -> AP = .5 * 1 + .5 * 2/3
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.8333333333)


# ---------------------------------------------------------------------------------------------------------
# segments, events, delays, false alarms
# ---------------------------------------------------------------------------------------------------------


def test_segments_half_open() -> None:
    assert segments(Y_TRUE) == [(2, 5), (7, 9)]
    assert segments([1, 0, 1, 1]) == [(0, 1), (2, 4)]  # runs touching both ends
    assert segments([True]) == [(0, 1)]


def test_event_recall_worked_example() -> None:
    # [2, 5) is hit at rows 3-4, [7, 9) is missed: 1 of 2
    assert event_recall(Y_TRUE, Y_PRED) == 0.5


def test_detection_delays_in_rows() -> None:
    # [2, 5): first flag at row 3 -> 3 - 2 = 1 row; [7, 9): never flagged
    assert detection_delays(Y_TRUE, Y_PRED) == [1.0, None]


def test_flag_before_segment_is_not_a_detection() -> None:
    # the flag at row 1 precedes the segment [2, 4) and does not count; row 3 does: delay 1
    assert detection_delays([0, 0, 1, 1], [0, 1, 0, 1]) == [1.0]
    assert detection_delays([0, 0, 1, 1], [0, 1, 0, 0]) == [None]


def test_detection_delays_in_float_seconds() -> None:
    seconds = np.arange(10) * 10.0  # 0, 10, ..., 90
    # first flag of [2, 5) at row 3: 30 s - 20 s
    assert detection_delays(Y_TRUE, Y_PRED, timestamps=seconds) == [10.0, None]


def test_detection_delays_in_seconds_from_datetime64() -> None:
    minutes = np.array([0, 1, 2, 5, 9, 10, 11, 12, 13, 14])
    stamps = np.datetime64("2024-03-01T00:00:00") + minutes.astype("timedelta64[m]")
    # [2, 5) starts at minute 2, first flag at row 3 = minute 5: 3 min = 180 s
    assert detection_delays(Y_TRUE, Y_PRED, timestamps=stamps) == [180.0, None]


def test_false_alarm_events_worked_example() -> None:
    # flagged runs [1, 2) and [9, 10) touch no anomaly; [3, 5) overlaps [2, 5)
    assert false_alarm_events(Y_TRUE, Y_PRED) == 2


def test_false_alarm_run_overlapping_a_segment_edge_is_not_false() -> None:
    # the run [0, 3) overlaps the segment [2, 4) by one row: it is not a false alarm
    assert false_alarm_events([0, 0, 1, 1, 0], [1, 1, 1, 0, 0]) == 0


def test_false_alarms_per_hour_from_rows() -> None:
    # 2 events; 5 normal rows (0, 1, 5, 6, 9)
    assert false_alarms_per_hour(Y_TRUE, Y_PRED) == pytest.approx(1440.0)  # 2 / (5 s / 3600)
    assert false_alarms_per_hour(Y_TRUE, Y_PRED, sample_seconds=360) == pytest.approx(4.0)  # 2 / 0.5 h


def test_false_alarms_per_hour_from_timestamps() -> None:
    regular = np.arange(10) * 360.0
    assert false_alarms_per_hour(Y_TRUE, Y_PRED, timestamps=regular) == pytest.approx(4.0)
    # steps 60 s except 300 s after row 5; the last row lasts the median step, 60 s.
    # normal rows 0, 1, 5, 6, 9 last 60 + 60 + 300 + 60 + 60 = 540 s = 0.15 h -> 2 / 0.15
    irregular = np.array([0, 60, 120, 180, 240, 300, 600, 660, 720, 780], dtype=float)
    assert false_alarms_per_hour(Y_TRUE, Y_PRED, timestamps=irregular) == pytest.approx(13.3333333333)


# ---------------------------------------------------------------------------------------------------------
# point adjust and oracle best F1
# ---------------------------------------------------------------------------------------------------------


def test_point_adjust_worked_example() -> None:
    adjusted = point_adjust(Y_TRUE, Y_PRED)
    assert adjusted.dtype == np.bool_
    # [2, 5) was hit, so it is filled; [7, 9) was missed and stays empty; false alarms stay
    assert adjusted.astype(int).tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    # adjusted counts: TP 3, FP 2, FN 2, TN 3 -> F1 = 3 / (3 + 2) = 0.6
    assert point_metrics(confusion_counts(Y_TRUE, adjusted))["f1"] == pytest.approx(0.6)


def test_point_adjust_does_not_change_input() -> None:
    pred = Y_PRED.copy()
    point_adjust(Y_TRUE, pred)
    assert np.array_equal(pred, Y_PRED)


def test_point_adjust_docstring_warns() -> None:
    doc = point_adjust.__doc__ or ""
    assert "inflated" in doc
    assert '"point-adjusted"' in doc


def test_best_f1_hand_computed() -> None:
    # thresholds high to low, flag = score >= t:
    #   0.9: TP 1, flagged 1 -> 2*1 / (1 + 2) = .667     0.5: TP 1, flagged 2 -> 2 / 4 = .5
    #   0.4: TP 2, flagged 3 -> 4 / (3 + 2) = .8         0.2: 4 / 6 = .667;  0.1: 4 / 7 = .571
    result = best_f1([0, 0, 1, 1, 0], [0.1, 0.2, 0.9, 0.4, 0.5])
    assert result["f1"] == pytest.approx(0.8)
    assert result["threshold"] == 0.4
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == 1.0


def test_best_f1_flags_ties_together() -> None:
    # rows 0 and 1 share 0.5, so they are flagged together: 0.9 -> .667, 0.5 -> 4 / (3 + 2) = .8, 0.1 -> .667
    result = best_f1([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1])
    assert result["f1"] == pytest.approx(0.8)
    assert result["threshold"] == 0.5
    assert result["precision"] == pytest.approx(2 / 3)


def test_best_f1_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    y_true = rng.random(400) < 0.12
    scores = np.round(rng.normal(size=400) + 1.2 * y_true, 1)  # rounding makes ties
    brute = max(point_metrics(confusion_counts(y_true, scores >= t))["f1"] for t in np.unique(scores))
    result = best_f1(y_true, scores)
    assert result["f1"] == pytest.approx(brute)
    at_threshold = point_metrics(confusion_counts(y_true, scores >= result["threshold"]))
    assert at_threshold["f1"] == pytest.approx(result["f1"])
    assert at_threshold["precision"] == pytest.approx(result["precision"])
    assert at_threshold["recall"] == pytest.approx(result["recall"])


def test_best_f1_docstring_says_oracle() -> None:
    doc = best_f1.__doc__ or ""
    assert "oracle" in doc
    assert "never deploy" in doc


# ---------------------------------------------------------------------------------------------------------
# evaluate and evaluate_groups
# ---------------------------------------------------------------------------------------------------------


def test_evaluate_worked_example() -> None:
    scores = np.array([0.0, 0.6, 0.5, 0.9, 0.8, 0.1, 0.2, 0.4, 0.3, 0.7])
    r = evaluate(Y_TRUE, Y_PRED, scores=scores, sample_seconds=360)
    assert r["f1"] == pytest.approx(0.4444444444)  # see test_point_metrics_worked_example
    assert r["f1_point_adjusted"] == pytest.approx(0.6)  # see test_point_adjust_worked_example
    assert (r["far"], r["mar"]) == (pytest.approx(0.4), pytest.approx(0.6))
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (2, 2, 3, 3)
    # anomalies score .5 .9 .8 .4 .3, normals 0 .6 .1 .2 .7: of 25 pairs the anomaly wins
    # 3 (.5 beats 0 .1 .2) + 5 (.9) + 5 (.8) + 3 (.4) + 3 (.3) = 19 -> 19 / 25
    assert r["roc_auc"] == pytest.approx(0.76)
    assert r["pr_auc"] == pytest.approx(pr_auc(Y_TRUE, scores))
    assert r["n_segments"] == 2
    assert r["event_recall"] == 0.5
    assert (r["detection_delay_mean"], r["detection_delay_median"]) == (1.0, 1.0)
    assert r["detection_delay_unit"] == "rows"
    assert r["false_alarm_events"] == 2
    assert r["normal_hours"] == pytest.approx(0.5)  # 5 rows * 360 s
    assert r["false_alarms_per_hour"] == pytest.approx(4.0)


def test_evaluate_keeps_adjusted_f1_beside_f1() -> None:
    keys = list(evaluate(Y_TRUE, Y_PRED))
    assert keys.index("f1_point_adjusted") == keys.index("f1") + 1


def test_evaluate_without_scores_has_no_auc() -> None:
    r = evaluate(Y_TRUE, Y_PRED)
    assert "roc_auc" not in r and "pr_auc" not in r


def test_evaluate_with_timestamps_reports_seconds() -> None:
    r = evaluate(Y_TRUE, Y_PRED, timestamps=np.arange(10) * 10.0)
    assert r["detection_delay_unit"] == "seconds"
    assert r["detection_delay_mean"] == 10.0
    assert r["normal_hours"] == pytest.approx(50 / 3600)  # 5 normal rows of 10 s


def test_evaluate_delay_mean_and_median_over_detected_segments() -> None:
    # segments [0, 4) hit at row 3 (delay 3), [5, 6) hit at once (0), [7, 9) hit at row 8 (1), [10, 11) missed
    y_true = [1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1]
    y_pred = [0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0]
    assert detection_delays(y_true, y_pred) == [3.0, 0.0, 1.0, None]
    r = evaluate(y_true, y_pred)
    assert r["detection_delay_mean"] == pytest.approx(4 / 3)  # (3 + 0 + 1) / 3
    assert r["detection_delay_median"] == 1.0
    assert r["event_recall"] == 0.75


def test_evaluate_groups_pooled_differs_from_macro() -> None:
    a = ([1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0], None)  # TP 4 FP 0 FN 0 TN 4: F1 1, FAR 0
    b = ([1, 0, 0, 0], [0, 1, 1, 0], None)  # TP 0 FP 2 FN 1 TN 1: F1 0, FAR 2/3, MAR 1
    r = evaluate_groups({"a": a, "b": b})
    pooled = r["pooled"]
    # summed counts TP 4, FP 2, FN 1, TN 5
    assert (pooled["tp"], pooled["fp"], pooled["fn"], pooled["tn"]) == (4, 2, 1, 5)
    assert pooled["f1"] == pytest.approx(0.7272727273)  # 4 / (4 + 3 / 2)
    assert pooled["far"] == pytest.approx(2 / 7)
    assert pooled["mar"] == pytest.approx(0.2)  # 1 / 5
    assert r["macro"]["f1"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert r["macro"]["far"] == pytest.approx(1 / 3)  # (0 + 2/3) / 2
    assert r["macro"]["mar"] == pytest.approx(0.5)  # (0 + 1) / 2
    assert r["macro"]["n_parts"] == 2
    assert pooled["event_recall"] == 0.5  # a's segment found, b's missed
    assert pooled["false_alarm_events"] == 1  # b's run [1, 3)
    assert pooled["false_alarms_per_hour"] == pytest.approx(514.2857142857)  # 1 / (7 normal s / 3600)
    assert r["per_part"]["a"] == evaluate(*a[:2])
    assert r["per_part"]["b"] == evaluate(*b[:2])


def test_evaluate_groups_pooled_counts_equal_sum_of_parts() -> None:
    rng = np.random.default_rng(3)
    parts = {f"file-{i}": (rng.random(50) < 0.2, rng.random(50) < 0.1, None) for i in range(4)}
    r = evaluate_groups(parts)
    expected = sum(confusion_counts(y, p) for y, p, _ in parts.values())
    pooled = r["pooled"]
    assert Counts(pooled["tp"], pooled["fp"], pooled["fn"], pooled["tn"]) == expected


def test_evaluate_groups_segments_do_not_span_parts() -> None:
    # a ends in an anomaly and b starts with one: two segments, not one; b's is missed
    r = evaluate_groups({"a": ([0, 1, 1], [0, 1, 0], None), "b": ([1, 1, 0], [0, 0, 0], None)})
    assert r["pooled"]["n_segments"] == 2
    assert r["pooled"]["event_recall"] == 0.5


def test_evaluate_groups_auc_on_concatenated_scores() -> None:
    a = ([0, 1, 0, 1], [0, 1, 0, 0], [0.1, 0.9, 0.3, 0.2])
    b = ([0, 0, 1], [0, 0, 1], [0.5, 0.4, 0.8])
    r = evaluate_groups({"a": a, "b": b})
    y = np.concatenate([a[0], b[0]])
    s = np.concatenate([a[2], b[2]])
    assert r["pooled"]["roc_auc"] == pytest.approx(roc_auc(y, s))
    assert r["pooled"]["pr_auc"] == pytest.approx(pr_auc(y, s))


def test_evaluate_groups_macro_skips_undefined() -> None:
    # b has no anomaly, so its recall and MAR are nan and are left out of the macro means
    r = evaluate_groups({"a": ([1, 1, 0], [1, 0, 0], None), "b": ([0, 0, 0], [0, 0, 0], None)})
    assert r["macro"]["recall"] == 0.5
    assert r["macro"]["mar"] == 0.5
    assert r["macro"]["f1"] == pytest.approx((2 / 3 + 0.0) / 2)  # a: 1 / (1 + 1/2); b: TP = 0 -> 0


def test_evaluate_groups_timestamps_and_delays() -> None:
    a = ([0, 1, 1], [0, 0, 1], None, np.array([0.0, 10.0, 40.0]))  # delay 30 s
    b = ([1, 1, 0], [1, 0, 0], None, np.array([0.0, 5.0, 6.0]))  # delay 0 s
    pooled = evaluate_groups({"a": a, "b": b})["pooled"]
    assert pooled["detection_delay_unit"] == "seconds"
    assert pooled["detection_delay_mean"] == 15.0


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------


def test_length_mismatch_names_both_arrays() -> None:
    with pytest.raises(InvalidInputError, match="y_pred has 10 rows but y_true has 12"):
        confusion_counts(np.zeros(12), np.zeros(10))
    with pytest.raises(InvalidInputError, match="scores has 3 rows but y_true has 4"):
        roc_auc([0, 1, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InvalidInputError, match="timestamps has 2 rows but y_true has 3"):
        detection_delays([0, 1, 1], [0, 1, 1], timestamps=[0.0, 1.0])


def test_nonfinite_scores_located() -> None:
    with pytest.raises(InvalidInputError, match=r"scores\[row 3\] is NaN"):
        pr_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, float("nan")])
    with pytest.raises(InvalidInputError, match=r"scores\[row 0\] is infinite"):
        best_f1([0, 1], [float("inf"), 0.2])


def test_nonfinite_labels_located() -> None:
    with pytest.raises(InvalidInputError, match=r"y_true\[row 1\] is NaN"):
        segments([0.0, float("nan"), 1.0])
    with pytest.raises(InvalidInputError, match=r"y_pred\[row 2\] is infinite"):
        confusion_counts([0, 0, 1], [0.0, 0.0, float("inf")])


def test_sklearn_outlier_convention_rejected() -> None:
    with pytest.raises(InvalidInputError, match=r"y_pred\[row 1\] is -1.*scikit-learn"):
        confusion_counts([0, 1, 0], [1, -1, 1])


def test_wrong_shape_empty_and_dtype() -> None:
    with pytest.raises(InvalidInputError, match="y_true must be 1-D, got 2-D"):
        confusion_counts([[0, 1]], [[0, 1]])
    with pytest.raises(InvalidInputError, match="y_true must be 1-D, got 0-D"):
        segments(1)
    with pytest.raises(InvalidInputError, match="y_true is empty"):
        confusion_counts([], [])
    with pytest.raises(InvalidInputError, match="y_pred must hold boolean or 0/1 labels"):
        confusion_counts([0, 1], ["no", "yes"])
    with pytest.raises(InvalidInputError, match="scores must be numeric"):
        roc_auc([0, 1], ["a", "b"])


def test_bad_timestamps() -> None:
    with pytest.raises(InvalidInputError, match=r"timestamps\[row 2\] is earlier than timestamps\[row 1\]"):
        detection_delays([0, 1, 1], [0, 1, 1], timestamps=[0.0, 5.0, 3.0])
    stamps = np.array(["2024-01-01", "NaT", "2024-01-03"], dtype="datetime64[D]")
    with pytest.raises(InvalidInputError, match=r"timestamps\[row 1\] is NaT"):
        false_alarms_per_hour([0, 1, 1], [0, 1, 1], timestamps=stamps)
    with pytest.raises(InvalidInputError, match=r"timestamps\[row 0\] is NaN"):
        evaluate([0, 1], [0, 1], timestamps=[float("nan"), 1.0])
    with pytest.raises(InvalidInputError, match="timestamps must be numpy datetime64 values or float seconds"):
        evaluate([0, 1], [0, 1], timestamps=["2024-01-01", "2024-01-02"])


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_bad_sample_seconds(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="sample_seconds must be a finite number > 0"):
        false_alarms_per_hour([0, 1], [1, 0], sample_seconds=bad)  # type: ignore[arg-type]


def test_invalid_input_is_also_value_error() -> None:
    with pytest.raises(ValueError, match="y_pred has 1 rows but y_true has 2"):
        event_recall([0, 1], [0])


def test_evaluate_groups_bad_parts() -> None:
    with pytest.raises(InvalidInputError, match="parts is empty"):
        evaluate_groups({})
    with pytest.raises(InvalidInputError, match="parts must be a mapping"):
        evaluate_groups([([0, 1], [0, 1], None)])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"parts\['a'\] must be a tuple"):
        evaluate_groups({"a": ([0, 1], [0, 1])})
    with pytest.raises(InvalidInputError, match=r"parts\['b'\]: scores\[row 1\] is NaN"):
        evaluate_groups({"a": ([0, 1], [0, 1], [0.1, 0.2]), "b": ([0, 1], [0, 1], [0.1, float("nan")])})
    with pytest.raises(InvalidInputError, match=r"parts\['a'\] has scores but parts\['b'\] has none"):
        evaluate_groups({"a": ([0, 1], [0, 1], [0.1, 0.2]), "b": ([0, 1], [0, 1], None)})
    with pytest.raises(InvalidInputError, match=r"parts\['b'\] has timestamps but parts\['a'\] has none"):
        evaluate_groups({"a": ([0, 1], [0, 1], None), "b": ([0, 1], [0, 1], None, [0.0, 1.0])})
