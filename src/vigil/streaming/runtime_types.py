"""The runtime's public types: its configuration and its decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.device_calibration import GUARD_MARGIN, MAX_RAISE, MAX_STEP
from vigil.times import format_time

__all__ = ["Decision", "Outcome", "Redelivery", "RuntimeConfig"]


class Decision(NamedTuple):
    """What the runtime decided about one accepted record."""

    device: str
    time: datetime
    model: str
    version: str
    score: float
    threshold: float
    anomaly: bool
    alert_id: str | None
    note: str = ""
    """Why the reading was treated specially, e.g. flagged by the feedback guard; empty otherwise."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "device": self.device,
            "time": format_time(self.time),
            "model": self.model,
            "version": self.version,
            "score": self.score,
            "threshold": self.threshold,
            "anomaly": self.anomaly,
            "alert_id": self.alert_id,
        }
        if self.note:
            out["note"] = self.note
        return out


class Redelivery(NamedTuple):
    """A record identical to one the runtime already processed (a QoS 1 redelivery, a client's retry).

    It is acknowledged and counted, neither scored again nor dead-lettered: its first copy's decision stands.
    """

    device: str
    time: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "time": format_time(self.time), "redelivery": True}


Outcome = Decision | DeadLetter | Redelivery


@dataclass(frozen=True)
class RuntimeConfig:
    """Tuning of the runtime; the defaults suit 1-10 k messages/s on one core.

    Parameters
    ----------
    max_batch : int
        Most records scored in one micro-batch.
    max_delay : float
        Seconds the worker waits for more records once a batch has begun.
    queue_size : int
        Submissions that may wait; a full queue refuses HTTP posts and slows MQTT delivery.
    max_payload_bytes, max_batch_records : int
        Larger payloads, or batches with more records, are dead-lettered as ``oversized``.
    max_devices : int
        Distinct devices kept in memory; records of further devices are refused as ``unknown_device``.
    device_gap_seconds : float
        An alert closes after this many seconds without a flagged point (see AlertTracker).
    target_far : float
        False-alarm rate each device is recalibrated to after a false-positive verdict.
    calibration_window, calibration_min_samples : int
        Recent scores kept per device for recalibration, and the fewest used for a quantile.
    feedback_max_step, feedback_max_raise, feedback_guard_margin : float
        Bounds of what verdicts may do to a device's threshold: at most ×``feedback_max_step`` per verdict,
        at most ×``feedback_max_raise`` of the model's threshold in total, and readings above
        ×``feedback_guard_margin`` of the model's threshold are flagged whatever feedback set (see
        :mod:`vigil.streaming.device_calibration`).
    timeline_points : int
        Recent (time, score, threshold) points kept per device for the dashboard.
    recent_rows : int
        Recent accepted rows kept per model for retraining (saved under the registry).
    recent_flush_seconds : float
        How often those rows are written to the registry.
    counter_flush_seconds : float
        How often the processed/scored/dead-lettered counts are added to the alert store (and at stop), so
        that they carry across restarts; a SIGKILL loses at most this many seconds of counts.
    registry_poll_seconds : float
        How often the registry's active pointers are checked for versions activated elsewhere.
    drift_check_seconds : float
        How often each model's recent scores are compared with its training scores (drift is logged when
        it starts and ends; ``/models/{name}/drift`` and ``/metrics`` report it at any time).
    health_window_seconds, health_dead_letter_share, health_min_records : float, float, int
        ``/health`` says "degraded" when more than this share of the records processed in the last window
        (at least ``health_min_records`` of them) were dead-lettered.
    stall_seconds : float
        ``/health`` says "degraded" when records wait and none was processed for this long.
    """

    max_batch: int = 1024
    max_delay: float = 0.002
    queue_size: int = 20_000
    max_payload_bytes: int = 1_048_576
    max_batch_records: int = 10_000
    max_devices: int = 100_000
    device_gap_seconds: float = 30.0
    target_far: float = 0.01
    calibration_window: int = 2000
    calibration_min_samples: int = 200
    feedback_max_step: float = MAX_STEP
    feedback_max_raise: float = MAX_RAISE
    feedback_guard_margin: float = GUARD_MARGIN
    timeline_points: int = 600
    recent_rows: int = 20_000
    recent_flush_seconds: float = 30.0
    counter_flush_seconds: float = 5.0
    registry_poll_seconds: float = 2.0
    drift_check_seconds: float = 60.0
    health_window_seconds: float = 60.0
    health_dead_letter_share: float = 0.5
    health_min_records: int = 20
    stall_seconds: float = 30.0
