"""What the runtime shows of its devices and thresholds (the API's /devices, timelines and threshold pages)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from vigil.streaming.drift import score_drift
from vigil.streaming.model_slot import ModelSlot
from vigil.streaming.runtime_devices import DeviceState, iso
from vigil.streaming.sensor_policy import SensorPolicy

__all__ = ["device_rows", "threshold_now", "threshold_view", "timeline_rows"]


def device_rows(
    devices: Iterable[DeviceState],
    slots: Mapping[str, ModelSlot],
    sensor_policies: Mapping[str, Mapping[str, SensorPolicy]],
) -> list[dict[str, Any]]:
    """Every device: its model, last time, last score and threshold, and its score statistics, by name."""
    out = []
    sensors: dict[str, list[dict[str, Any]]] = {}  # one list per model, however many devices it serves
    for device in devices:
        if device.model not in sensors:
            sensors[device.model] = _sensors(slots.get(device.model), sensor_policies.get(device.model, {}))
        slot = slots.get(device.model)
        last = device.timeline[-1] if device.timeline else None
        out.append(
            {
                "device": device.name,
                "model": device.model,
                "last_time": None if device.last_ts is None else iso(device.last_ts),
                "last_score": None if last is None else last[1],
                "threshold": None if last is None else threshold_now(device, slot),
                "feedback": None if slot is None else _feedback_summary(device.name, slot),
                "points": device.n,
                "score_mean": device.mean if device.n else None,
                "score_std": math.sqrt(device.m2 / (device.n - 1)) if device.n > 1 else None,
                "flag_rate": device.flagged / device.n if device.n else None,
                "declared": device.declared,
                "silent": device.silent_since is not None,
                "silent_since": None if device.silent_since is None else iso(device.silent_since),
                "dead_letters": device.dead_letters,
                "last_dead_letter": device.last_dead_letter or None,
                "drift": None if slot is None else _device_drift(device, slot),
                "sensors": sensors[device.model],
            }
        )
    return sorted(out, key=lambda d: d["device"])


def timeline_rows(state: DeviceState) -> list[dict[str, Any]]:
    """The device's recent points (time, score, threshold, anomaly, the sensor values scored), oldest first."""
    return [
        {
            "time": iso(ts),
            "score": score,
            "threshold": thr,
            "anomaly": flag,
            **({"note": note} if note else {}),
            **({"values": {k: v if v == v else None for k, v in zip(*values, strict=True)}} if values else {}),
        }
        for ts, score, thr, flag, note, values in list(state.timeline)
    ]


def threshold_now(device: DeviceState, slot: ModelSlot | None) -> float | None:
    """The set level the device's next reading is compared with (adaptive level, feedback floor, guard)."""
    state = None if slot is None else slot.alarm_states.get(device.name)
    if slot is None or state is None:
        return device.timeline[-1][2] if device.timeline else None
    return float(slot.pipeline.alarm_.current_threshold(state))


def threshold_view(device: str, slot: ModelSlot, seen: DeviceState | None) -> dict[str, Any]:
    """The device's feedback threshold, its model's, the bounds and guard, and every change."""
    cal = slot.calibration
    threshold, guard = cal.levels(device, slot.threshold)
    change = cal.in_force(device)
    return {
        "device": device,
        "model": slot.name,
        "version": slot.version,
        "threshold": threshold,
        "model_threshold": slot.threshold,
        "set_level": None if seen is None else threshold_now(seen, slot),
        "guard": None if math.isinf(guard) else guard,
        "bounds": {
            "max_step": cal.max_step,
            "max_raise": cal.max_raise,
            "guard_margin": cal.guard_margin,
            "ceiling": cal.ceiling(slot.threshold),
        },
        "undoable": None if change is None else change.id,
        "history": [c.to_dict() for c in cal.history(device)],
    }


def _feedback_summary(device: str, slot: ModelSlot) -> dict[str, Any]:
    cal = slot.calibration
    threshold, guard = cal.levels(device, slot.threshold)
    change = cal.in_force(device)
    history = cal.history(device)
    return {
        "threshold": threshold,
        "model_threshold": slot.threshold,
        "guard": None if math.isinf(guard) else guard,
        "in_force": None if change is None else change.to_dict(),
        "last_change": history[-1].to_dict() if history else None,
    }


def _device_drift(device: DeviceState, slot: ModelSlot) -> dict[str, Any]:
    """The device's recent scores against its model's training scores (:func:`score_drift`), in brief."""
    report = score_drift([point[1] for point in list(device.timeline)], slot.pipeline.train_score_quantiles_)
    worst = max((c["z"] for c in report.checks), key=abs, default=None)
    return {"n": report.n, "drifted": report.drifted, "z": worst, "message": report.message}


def _sensors(slot: ModelSlot | None, policies: Mapping[str, SensorPolicy]) -> list[dict[str, Any]]:
    """The model's sensors with the unit and valid range the plant file gives them (None where it does not)."""
    if slot is None:
        return []
    out = []
    for name in slot.features:
        policy = policies.get(name)
        unit, low, high = (None, None, None) if policy is None else (policy.unit, policy.low, policy.high)
        out.append({"name": name, "unit": unit, "low": low, "high": high})
    return out
