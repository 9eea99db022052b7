"""Scoring one model's share of a micro-batch: scores, the alarm stage's decisions, contributions, the tracker.

:func:`score_batch` scores the accepted records of one model in one call of its fitted pipeline (windowed models
get each device's history first), lets the pipeline's own alarm stage decide device by device in time order,
asks for feature contributions only for the flagged rows, and feeds the model's alert tracker. A record the
model gives no finite score is refused alone: its neighbours score as if it had never come.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vigil.alarms import AlarmState
from vigil.alerts import AlertEvent
from vigil.base import ScoredRows
from vigil.errors import InvalidInputError, NumericalError
from vigil.streaming.messages import Rejection
from vigil.streaming.model_slot import ModelSlot
from vigil.streaming.runtime_devices import DeviceTable
from vigil.streaming.runtime_intake import Accepted
from vigil.streaming.runtime_types import Decision

__all__ = ["score_batch", "set_feedback_floor"]

log = logging.getLogger(__name__)


def score_batch(
    slot: ModelSlot, pending: Sequence[Accepted], devices: DeviceTable, events: list[AlertEvent]
) -> list[Decision | Rejection]:
    """One decision per pending record of ``slot``'s model, or the refusal of a record it gives no finite score.

    The alert events the decisions cause are appended to ``events``.
    """
    X = np.array([item.vector for item in pending], dtype=np.float64)
    n, d = X.shape
    shares = np.zeros((n, d))
    by_device: dict[str, list[int]] = {}
    for i, item in enumerate(pending):
        by_device.setdefault(item.reading.device, []).append(i)
    failures: dict[int, Exception] = {}
    scores = np.full(n, np.nan)
    gaps = np.isnan(X)  # the sensors a row is scored without (only row-wise models take such rows)
    groups = _by_missing(gaps)
    # Each scored piece of the batch keeps what scoring computed, so that its flagged rows are explained
    # from the same pass (a network is not run a second time).
    pieces: list[tuple[np.ndarray, ScoredRows]] = []
    if slot.context == 0:
        for missing, group in groups:
            _score_rows(_scorer(slot.pipeline, missing), X, group, scores, failures, pieces)
    else:
        for device, rows in by_device.items():
            state = devices[device]
            history = state.history if state.history is not None else np.empty((0, d))
            kept = _score_windows(slot.pipeline, history, X, rows, scores, failures, pieces)
            state.history = np.vstack([history, X[kept]])[-slot.context :]
    # The pipeline's own alarm stage decides, device by device in time order, continuing each device's
    # state: the same object and the same decisions as `Pipeline.decide` over the whole series. Refused
    # records are left out, as if they had never come.
    flagged = np.zeros(n, dtype=bool)
    thresholds = np.full(n, slot.threshold)
    notes: dict[int, str] = {}
    alarm_stage = slot.pipeline.alarm_
    for device, all_rows in by_device.items():
        rows = [i for i in all_rows if i not in failures] if failures else all_rows
        if not rows:
            continue
        alarm = slot.alarm_state(device)
        override = set_feedback_floor(slot, device, alarm)
        run = alarm_stage.run(scores[rows], alarm, timestamps=[pending[i].ts for i in rows])
        flagged[rows] = run.active
        thresholds[rows] = run.thresholds
        if alarm.floor is not None and alarm.floor < override:
            # The feedback guard capped the floor: a reading flagged at or below the operators' threshold
            # would have been hidden by their feedback, and its decision says so.
            for j in np.flatnonzero(run.flagged & (scores[rows] <= override)):
                notes[rows[j]] = slot.calibration.guard_note(device, slot.threshold, float(scores[rows[j]]))
        for row, reason in run.notes:
            log.info("device %s at %s: %s", device, pending[rows[row]].reading.time, reason)
    any_flagged = bool(flagged.any())
    if any_flagged:
        for piece, scored in pieces:
            explain = flagged[piece]
            if explain.any():
                shares[piece[explain]] = _contributions(scored, explain, d)

    refused = {i: _refusal(slot, exc, pending[i].reading.device) for i, exc in failures.items()}
    complete = None if len(groups) == 1 and not groups[0][0] else np.logical_not(gaps.any(axis=1)).tolist()
    results: list[Decision | Rejection] = []
    features, name, version = slot.features, slot.name, slot.version
    tracker, open_devices, calibration = slot.tracker, slot.open_devices, slot.calibration
    recent_scores, recent_rows = slot.recent_scores, slot.recent_rows
    score_list, threshold_list = scores.tolist(), thresholds.tolist()
    flag_list = flagged.tolist()
    share_rows = shares.tolist() if any_flagged else None
    newest, decided = slot.last_event_ts, False
    for i, item in enumerate(pending):
        if i in refused:
            results.append(refused[i])
            continue
        reading = item.reading
        device = reading.device
        score, threshold, is_anomaly = score_list[i], threshold_list[i], flag_list[i]
        alert = None
        if is_anomaly or device in open_devices:
            # A quiet point of a device without an open alert changes nothing in the tracker (time order
            # is checked before), so the tracker only sees the points that can open, grow or close an alert.
            contributions = dict(zip(features, share_rows[i], strict=True)) if share_rows and is_anomaly else {}
            row_events = tracker.update(device, reading.time, score, threshold, is_anomaly, contributions)
            if row_events:
                slot.note(row_events)
                events.extend(row_events)
                alert = next((e.alert.id for e in row_events if e.kind != "closed"), None)
        ts = item.ts
        calibration.observe(device, ts, score)
        recent_scores.append(score)
        if complete is None or complete[i]:  # retraining needs every sensor
            recent_rows.append((device, ts, item.vector))
        note = item.note
        if i in notes:
            note = f"{note}; {notes[i]}" if note else notes[i]
        devices[device].observe((ts, score, threshold, is_anomaly, note, (features, tuple(map(float, item.vector)))))
        if newest is None or ts > newest:
            newest = ts
        decided = True
        results.append(Decision(device, reading.time, name, version, score, threshold, is_anomaly, alert, note))
    if decided:
        slot.last_event_ts = newest
        slot.last_event_mono = time.monotonic()
    return results


def set_feedback_floor(slot: ModelSlot, device: str, state: AlarmState) -> float:
    """Put the device's feedback threshold, capped by the guard, under its alarm-stage level; return the threshold.

    The floor is the lower of the operators' threshold and the guard (``guard_margin`` × the model's
    threshold), so feedback never hides a reading above the guard.
    """
    threshold, guard = slot.calibration.levels(device, slot.threshold)
    floor = min(threshold, guard)
    state.floor = floor if floor > slot.threshold else None
    return threshold


def _refusal(slot: ModelSlot, exc: Exception, device: str) -> Rejection:
    if isinstance(exc, InvalidInputError | ArithmeticError | RuntimeWarning):
        kind, what = "non_finite_score", "gives no finite score for this record"
    else:
        log.error("model %s (%s) failed on a record: %r", slot.name, slot.version, exc)
        kind, what = "internal", "failed on this record"
    return Rejection(kind, f"model {slot.name} ({slot.version}) {what}: {exc}", device)


def _by_missing(gaps: np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """The rows grouped by which sensors they lack (``gaps``: True where a row's reading is NaN), complete first."""
    if not gaps.any():
        return [((), np.arange(len(gaps)))]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(gaps):
        groups.setdefault(tuple(np.flatnonzero(row).tolist()), []).append(i)
    return [(missing, np.array(rows)) for missing, rows in sorted(groups.items())]


def _scorer(pipeline: Any, missing: tuple[int, ...]) -> Callable[[np.ndarray], ScoredRows]:
    if not missing:
        # The records were checked on arrival (RecordChecker); the pipeline does not check them again.
        return lambda X: pipeline.score_with_contributions(X, check_input=False)
    return lambda X: ScoredRows(
        pipeline.score_without(X, missing), lambda rows: pipeline.contributions_without(X[rows], missing)
    )


def _score_rows(
    score: Callable[[np.ndarray], ScoredRows],
    X: np.ndarray,
    rows: np.ndarray,
    scores: np.ndarray,
    failures: dict[int, Exception],
    pieces: list[tuple[np.ndarray, ScoredRows]],
) -> None:
    """Score ``X[rows]`` of a row-wise model into ``scores`` and ``pieces``; put the rows it cannot score in
    ``failures``.

    One call scores the batch; only when it fails are the rows halved until the failing ones stand alone,
    so a hostile record costs a few extra calls and never its neighbours' scores.
    """
    try:
        with np.errstate(all="ignore"):  # an overflow shows as a non-finite score, refused below
            scored = score(X[rows])
            values = np.asarray(scored.scores, dtype=np.float64)
        if not np.isfinite(values).all():
            msg = "the model produced non-finite scores"
            raise NumericalError(msg)
        scores[rows] = values
        pieces.append((rows, scored))
    except Exception as exc:
        if len(rows) == 1:
            failures[int(rows[0])] = exc
            return
        half = len(rows) // 2
        _score_rows(score, X, rows[:half], scores, failures, pieces)
        _score_rows(score, X, rows[half:], scores, failures, pieces)


def _score_windows(
    pipeline: Any,
    history: np.ndarray,
    X: np.ndarray,
    rows: list[int],
    scores: np.ndarray,
    failures: dict[int, Exception],
    pieces: list[tuple[np.ndarray, ScoredRows]],
) -> list[int]:
    """Score one device's ``rows`` of a windowed model after its ``history``; return the rows it could score.

    When the device's rows fail together, they are scored one at a time, each after the rows kept so far,
    so a refused row never enters the window of the rows after it.
    """
    try:
        with np.errstate(all="ignore"):
            scored = pipeline.score_with_contributions(np.vstack([history, X[rows]]), check_input=False)
            values = np.asarray(scored.scores[len(history) :], dtype=np.float64)
        if np.isfinite(values).all():
            scores[rows] = values
            pieces.append((np.asarray(rows), _tail(scored, len(history))))
            return list(rows)
    except Exception:  # found row by row below
        log.debug("a windowed batch failed; scoring its rows one at a time")
    kept: list[int] = []
    for row in rows:
        try:
            joined = np.vstack([history, X[[*kept, row]]])
            with np.errstate(all="ignore"):
                scored = pipeline.score_with_contributions(joined, check_input=False)
                value = float(scored.scores[-1])
            if not math.isfinite(value):
                msg = f"the model produced a non-finite score ({value})"
                raise NumericalError(msg)
        except Exception as exc:
            failures[row] = exc
            continue
        scores[row] = value
        pieces.append((np.array([row]), _tail(scored, len(joined) - 1)))
        kept.append(row)
    return kept


def _tail(scored: ScoredRows, skip: int) -> ScoredRows:
    """``scored`` without its first ``skip`` rows (the history a windowed model was given before the batch)."""
    return ScoredRows(scored.scores[skip:], lambda rows: scored.contributions(rows + skip))


def _contributions(scored: ScoredRows, explain: np.ndarray, n_features: int) -> np.ndarray:
    """Feature shares of the rows of a scored piece that ``explain`` marks; a row the model cannot explain gets
    none (its score still stands)."""
    count = int(explain.sum())
    try:
        with np.errstate(all="ignore"):
            shares = np.asarray(scored.contributions(explain), dtype=np.float64)
        if np.isfinite(shares).all():
            return shares
        log.error("the model gave non-finite feature shares for %d flagged rows; their alerts name no feature", count)
    except Exception:
        log.exception("the model could not explain %d flagged rows; their alerts name no feature", count)
    return np.zeros((count, n_features))
