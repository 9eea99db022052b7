"""One served model version with what the runtime keeps beside it: tracker, calibration, recent data.

A :class:`ModelSlot` is created from the registry's active version (:func:`load_slot`) and replaced
whole on a hot swap, so everything that belongs to one version — its open alerts, its per-device
thresholds, its recent scores — goes with it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vigil.alarms import AlarmState
from vigil.alerts import AlertEvent, AlertTracker
from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline
from vigil.streaming.device_calibration import DeviceCalibration
from vigil.streaming.model_registry import ModelRegistry, atomic_write_text
from vigil.streaming.runtime_types import RuntimeConfig

__all__ = [
    "ModelSlot",
    "alarm_state_path",
    "calibration_path",
    "load_slot",
    "read_calibration",
    "read_recent",
    "recent_path",
    "save_alarm_states",
    "save_calibration",
    "save_recent",
]

log = logging.getLogger(__name__)


@dataclass
class ModelSlot:
    """A served model version and the runtime state that belongs to it.

    Attributes
    ----------
    name, version : str
    pipeline : Pipeline
    tracker : AlertTracker
        Its alerts (ids include the version, so a new version opens new alerts).
    calibration : DeviceCalibration
        Per-device thresholds moved by false-positive verdicts.
    features : list of str
        Sensor names in the model's order (``feature_set`` for fast membership checks).
    context : int
        Rows of history a windowed detector needs per device.
    recent_scores : deque
        Recent scores of all devices, for the drift check.
    recent_rows : deque
        Recent accepted ``(device, time, values)`` rows, saved for retraining.
    open_devices : set of str
        Devices with an open alert: only their quiet points need the tracker.
    drifted, drift_message : bool, str
        Outcome of the last drift check, and its words.
    last_event_ts, last_event_mono : float
        Newest event time seen and the monotonic clock when it arrived: together the stream's clock,
        which closes alerts of devices that fell silent.
    """

    name: str
    version: str
    pipeline: Pipeline
    tracker: AlertTracker
    calibration: DeviceCalibration
    features: list[str]
    feature_set: frozenset[str]
    context: int
    recent_scores: deque[float]
    recent_rows: deque[tuple[str, float, Sequence[float] | np.ndarray]]
    open_devices: set[str] = field(default_factory=set)
    alarm_states: dict[str, AlarmState] = field(default_factory=dict)
    drifted: bool = False
    drift_message: str = ""
    last_event_ts: float | None = None
    last_event_mono: float = 0.0

    def note(self, events: Sequence[AlertEvent]) -> None:
        """Keep :attr:`open_devices` in step with the tracker's open alerts."""
        for event in events:
            if event.kind == "closed":
                self.open_devices.discard(event.alert.device)
            else:
                self.open_devices.add(event.alert.device)

    @property
    def threshold(self) -> float:
        return float(self.pipeline.threshold_)

    def alarm_state(self, device: str) -> AlarmState:
        """The device's alarm-stage state, fresh (as at the end of calibration) for a device not seen yet."""
        state = self.alarm_states.get(device)
        if state is None:
            state = self.alarm_states[device] = self.pipeline.alarm_.start()
        return state


def load_slot(registry: ModelRegistry, name: str, config: RuntimeConfig) -> ModelSlot:
    """Load the active version of model ``name`` with its saved per-device thresholds."""
    version = registry.active(name)
    if version is None:
        msg = f"model {name!r} has no active version in the registry {registry.root}"
        raise InvalidInputError(msg)
    pipeline = registry.load(name, version)
    calibration = DeviceCalibration(
        target_far=config.target_far,
        window=config.calibration_window,
        min_samples=config.calibration_min_samples,
        max_step=config.feedback_max_step,
        max_raise=config.feedback_max_raise,
        guard_margin=config.feedback_guard_margin,
    )
    read_calibration(calibration_path(registry, name, version), calibration, float(pipeline.threshold_))
    alarm_states: dict[str, AlarmState] = {}
    saved_alarms = alarm_state_path(registry, name, version)
    if saved_alarms.is_file():
        try:
            document = json.loads(saved_alarms.read_text(encoding="utf-8"))
            alarm_states = {str(device): AlarmState.from_dict(state) for device, state in document.items()}
        except (ValueError, AttributeError) as exc:
            # Adaptation restarts from calibration rather than the service refusing to start; said in the log.
            log.warning("%s: unreadable alarm state, devices start from calibration: %s", saved_alarms, exc)
    features = list(pipeline.feature_names_in_)
    recent_rows: deque[tuple[str, float, Sequence[float] | np.ndarray]] = deque(maxlen=config.recent_rows)
    # The rows a previous run saved stay in the buffer: without them the first save after a restart would
    # replace thousands of saved rows with the few seen since, and retraining would find nothing to learn.
    saved_rows = read_recent(recent_path(registry, name))
    if saved_rows is not None and saved_rows[3] == features:
        devices, times, values, _ = saved_rows
        recent_rows.extend(zip(devices, times.tolist(), values.tolist(), strict=True))
    return ModelSlot(
        name=name,
        version=version,
        pipeline=pipeline,
        tracker=AlertTracker(device_gap_seconds=config.device_gap_seconds, model_version=version),
        calibration=calibration,
        features=features,
        feature_set=frozenset(features),
        context=int(pipeline.context_rows),
        recent_scores=deque(maxlen=config.calibration_window * 4),
        recent_rows=recent_rows,
        alarm_states=alarm_states,
    )


def calibration_path(registry: ModelRegistry, name: str, version: str) -> Path:
    """Where the per-device thresholds of one model version are kept."""
    return registry.model_dir(name) / "calibration" / f"{version}.json"


def read_calibration(path: Path, calibration: DeviceCalibration, default: float) -> None:
    """Replace ``calibration``'s thresholds and histories by those saved at ``path``, when there is a file.

    ``default`` is the model's threshold; thresholds saved without history are stamped with the file's time.
    """
    if not path.is_file():
        return
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        msg = f"the device calibration {path} is not valid JSON: {exc}"
        raise InvalidInputError(msg) from exc
    calibration.restore(document, default=default, time=datetime.fromtimestamp(path.stat().st_mtime, tz=UTC))


def save_calibration(registry: ModelRegistry, slot: ModelSlot) -> None:
    """Write the slot's per-device thresholds and their histories (atomically)."""
    atomic_write_text(
        calibration_path(registry, slot.name, slot.version), json.dumps(slot.calibration.state(), indent=2)
    )


def alarm_state_path(registry: ModelRegistry, name: str, version: str) -> Path:
    """Where the per-device alarm-stage states of one model version are kept across restarts."""
    return registry.model_dir(name) / "alarm-state" / f"{version}.json"


def save_alarm_states(registry: ModelRegistry, slot: ModelSlot) -> None:
    """Write every device's alarm-stage state of the slot (adaptive level, annunciation, shelving)."""
    document = {device: state.to_dict() for device, state in slot.alarm_states.items()}
    atomic_write_text(alarm_state_path(registry, slot.name, slot.version), json.dumps(document))


def recent_path(registry: ModelRegistry, name: str) -> Path:
    """Where the recent accepted rows of model ``name`` are kept for retraining."""
    return registry.model_dir(name) / "recent.npz"


def read_recent(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, list[str]] | None:
    """The saved recent rows as ``(devices, POSIX times, values, feature names)``, or None without a file."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        return (
            archive["device"].astype(str).tolist(),
            archive["time"].astype(np.float64),
            archive["X"].astype(np.float64),
            [str(f) for f in archive["features"]],
        )


def save_recent(registry: ModelRegistry, slot: ModelSlot) -> None:
    """Write the slot's recent accepted rows to ``REGISTRY/<model>/recent.npz`` for retraining."""
    rows = list(slot.recent_rows)
    if not rows:
        return
    path = recent_path(registry, slot.name)
    # A temporary name of its own: several workers may share a registry, and a shared name would let one
    # rename another's half-written file into place.
    handle, name = tempfile.mkstemp(prefix=".recent-", suffix=".npz", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        np.savez(
            tmp,
            device=np.array([r[0] for r in rows]),
            time=np.array([r[1] for r in rows], dtype=np.float64),
            X=np.array([r[2] for r in rows], dtype=np.float64),
            features=np.array(slot.features),
        )
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
