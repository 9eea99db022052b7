"""Hand a device's in-memory state over between workers of one consumer group.

A worker keeps, per device, what the :class:`~vigil.streaming.runtime.Runtime` keeps: the open alert and
its attribution, the last time seen (for order checks), the window history of windowed models. When a
rebalance moves a device's partition to another worker:

- the old owner first stores everything it scored (the runtime is drained and the alerts committed),
  then *releases* the device: forgets its state without closing its open alert, which stays ``open`` in
  the alert store;
- the new owner *warms* the device on its first message: it resumes the stored open alert (same id, same
  start, points counted so far, its attribution rebuilt from the stored top features) and takes the
  alert's end as the device's last time, so a redelivered reading that the old owner had already folded
  into the alert is refused as a duplicate instead of being counted twice.

What is not handed over: a windowed model's history (the new owner fills the window again from the
device's next readings, as a restarted single-process service does) and the recent scores kept for
per-device recalibration (per-device thresholds themselves live in the model registry and are read again).

This module is the only place where :mod:`vigil.scale` reaches into the runtime's private state; its
functions must run on the runtime's worker thread (``runtime.call``) or before the runtime starts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from vigil.alerts import Alert
from vigil.streaming.model_slot import read_calibration
from vigil.streaming.runtime import Runtime, _Device

__all__ = ["held_devices", "release_devices", "reload_calibration", "resume_alert"]


def held_devices(runtime: Runtime) -> set[str]:
    """Devices the runtime holds state for (seen, or resumed from the store)."""
    held = set(runtime._devices)
    for slot in runtime._slots.values():
        held.update(slot.tracker.devices)
    return held


def release_devices(runtime: Runtime, devices: Iterable[str]) -> int:
    """Forget these devices' state without closing their open alerts; return how many were held."""
    released = 0
    for device in devices:
        found = runtime._devices.pop(device, None) is not None
        for slot in runtime._slots.values():
            found = slot.tracker.forget(device) or found
            slot.open_devices.discard(device)
        released += found
    return released


def resume_alert(runtime: Runtime, alert: Alert) -> bool:
    """Continue an alert another worker left open; False when its model version is not served here.

    The device's last time becomes the alert's end, as when the runtime resumes alerts after a restart.
    """
    slot = next((s for s in runtime._slots.values() if s.version == alert.model_version), None)
    if slot is None:
        return False
    slot.tracker.resume(alert)
    slot.open_devices.add(alert.device)
    ts = alert.end.timestamp()
    runtime._devices[alert.device] = _Device(
        alert.device, slot.name, last_ts=ts, timeline=deque(maxlen=runtime.config.timeline_points)
    )
    slot.last_event_ts = max(slot.last_event_ts or ts, ts)
    slot.last_event_mono = time.monotonic()
    return True


def reload_calibration(runtime: Runtime) -> None:
    """Read the per-device thresholds of every served version again (another worker may have changed them)."""
    for slot in runtime._slots.values():
        read_calibration(runtime._calibration_path(slot.name, slot.version), slot.calibration, slot.threshold)
