"""The runtime's intake: which model scores a device (:class:`Router`), and the one check of a record
(:class:`RecordChecker`: shape, route, the model's sensors, finite numbers, time order, redelivery).

A record is validated here once; what passes is a vector in the model's sensor order that the scoring stage
hands to the pipeline as it is.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.errors import InvalidInputError, SchemaError
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.messages import Reading, Rejection, parse_record
from vigil.streaming.model_slot import ModelSlot
from vigil.streaming.runtime_devices import DeviceTable, iso
from vigil.streaming.runtime_metrics import RuntimeMetrics
from vigil.streaming.runtime_types import Redelivery
from vigil.streaming.sensor_policy import SensorPolicy, apply_policies
from vigil.times import format_time
from vigil.validation import check_record

__all__ = ["Accepted", "RecordChecker", "Router", "dead_letter"]

#: A record's readings in model order: a list on the fast path, validation's array otherwise.
Vector = Sequence[float] | np.ndarray


@dataclass(slots=True)
class Accepted:
    """A record that passed every check, waiting to be scored."""

    model: str
    reading: Reading
    ts: float
    vector: Vector
    note: str
    submission: int = 0
    index: int = 0


class Router:
    """``fnmatch`` routes of device ids to models, first match wins; a record's ``asset_type`` names its model.

    With no routes and one model, every device uses it. Answers are cached (within ``2 * max_devices``).
    """

    def __init__(self, routes: Sequence[tuple[str, str]], models: Sequence[str], *, max_devices: int) -> None:
        self.routes = [(str(pattern), str(model)) for pattern, model in routes]
        unknown = sorted({model for _, model in self.routes if model not in models})
        if unknown:
            msg = f"routes name models that are not served: {unknown} (served: {list(models)})"
            raise InvalidInputError(msg)
        self.models = list(models)
        self._cache: dict[tuple[str, str | None], str | None] = {}
        self._limit = 2 * max_devices

    def route(self, device: str, asset_type: str | None = None) -> str | None:
        key = (device, asset_type)
        if key in self._cache:
            return self._cache[key]
        if asset_type is not None:
            model = asset_type if asset_type in self.models else None
        else:
            model = next((m for pattern, m in self.routes if fnmatch.fnmatchcase(device, pattern)), None)
            if model is None and not self.routes and len(self.models) == 1:
                model = self.models[0]
        if len(self._cache) < self._limit:
            self._cache[key] = model
        return model

    def patterns(self, model: str) -> list[str]:
        return [pattern for pattern, name in self.routes if name == model]


class RecordChecker:
    """Check one decoded record against its model and its device; the device's time moves on when it passes."""

    def __init__(
        self,
        router: Router,
        slots: Mapping[str, ModelSlot],
        devices: DeviceTable,
        sensor_policies: Mapping[str, Mapping[str, SensorPolicy]],
        metrics: RuntimeMetrics,
    ) -> None:
        self.router = router
        self.slots = slots
        self.devices = devices
        self.sensor_policies = sensor_policies
        self.metrics = metrics

    def check(self, record: Any, device_hint: str | None, where: str) -> Accepted | Rejection | Redelivery:
        reading = parse_record(record, device_hint=device_hint, where=where)
        if isinstance(reading, Rejection):
            return reading
        device = reading.device
        model = self.router.route(device, reading.asset_type)
        if model is None:
            if reading.asset_type is not None:
                reason = f"{where}: asset_type {reading.asset_type!r} names no served model ({sorted(self.slots)})"
            else:
                reason = f"{where}: no model is routed to device {device!r}"
            return Rejection("unknown_device", reason, device)
        slot = self.slots[model]
        values, note = reading.values, ""
        missing: dict[str, str] = {}
        policies = self.sensor_policies.get(model)
        if policies is not None:
            result = apply_policies(values, reading.quality, policies)
            self.metrics.record_partial(result.counts)
            if result.rejection is not None:
                kind, why = result.rejection
                return Rejection(kind, f"readings (device={device}, {where}): {why}", device)
            values = result.values or {}
            notes, missing = result.notes, result.missing
            if missing:
                lacking = ", ".join(f"{name!r} ({why})" for name, why in missing.items())
                if not slot.pipeline.scores_without_features:
                    # Its threshold was calibrated on every sensor: a score over fewer says nothing against it.
                    reason = (
                        f"readings (device={device}, {where}): no value for {lacking}; on_missing is "
                        f"'score_without' but model {model} ({type(slot.pipeline.detector_).__name__}) cannot "
                        "score without them"
                    )
                    return Rejection("missing_value", reason, device)
                # A placeholder that passes the checks of the other readings; NaN marks it once they passed.
                values = {**values, **dict.fromkeys(missing, 0.0)}
                notes = [f"scored without {lacking}", *notes]
            note = "; ".join(notes)
        fast = _fast_vector(values, slot.features, slot.feature_set)
        # Anything off goes through validation.py, which finds it and words the reason.
        vector = fast if fast is not None else self._checked(reading, values, slot.features, where)
        if isinstance(vector, Rejection):
            return vector
        # A redelivery is recognised by what the record said: its readings, and which sensors it lacked.
        digest = hash(tuple(vector)) if not missing else hash((tuple(vector), frozenset(missing)))
        if missing:
            vector = [math.nan if name in missing else v for name, v in zip(slot.features, vector, strict=True)]
        state = self.devices.get(device)
        if state is None and self.devices.full:
            reason = f"{where}: device {device!r} is beyond the limit of {self.devices.max_devices} devices"
            return Rejection("unknown_device", reason, device)
        state = self.devices.route(device, model)
        ts = reading.timestamp
        if state.last_ts is not None and ts <= state.last_ts:
            if state.is_redelivery(ts, digest):
                return Redelivery(device, reading.time)
            kind = "duplicate" if ts == state.last_ts else "out_of_order"
            reason = (
                f"{where}: time {format_time(reading.time)} of device {device!r} is "
                f"{'the same as' if kind == 'duplicate' else 'earlier than'} its previous {iso(state.last_ts)}"
            )
            return Rejection(kind, reason, device)
        state.accept(ts, digest)
        return Accepted(model, reading, ts, vector, note)

    def _checked(self, reading: Reading, values: dict[str, Any], features: list[str], where: str) -> Vector | Rejection:
        device = reading.device
        nulls = _missing_readings(reading)
        if nulls:
            self.metrics.record_partial({"missing": sum(v is None for v in reading.values.values())})
            reason = f"readings (device={device}, {where}) have no value for {nulls}"
            return Rejection("missing_value", reason, device)
        try:
            return check_record(values, features, where=f"readings (device={device}, {where})")
        except SchemaError as exc:
            return Rejection("sensors_mismatch", str(exc), device)
        except InvalidInputError as exc:
            text = str(exc)
            kind = "non_finite" if (" is NaN" in text or " is infinite" in text) else "wrong_type"
            return Rejection(kind, text, device)


def dead_letter(rejection: Rejection, source: str, payload: Any) -> DeadLetter:
    """The dead letter of a refused record (or payload), with the record as JSON text."""
    if isinstance(payload, Reading):
        payload = {"device": payload.device, "time": format_time(payload.time), "readings": payload.values}
    if not isinstance(payload, str):
        try:
            payload = json.dumps(payload, default=str)
        except (TypeError, ValueError):
            payload = repr(payload)
    return DeadLetter(
        kind=rejection.kind, reason=rejection.reason, source=source, payload=payload, device=rejection.device
    )


def device_of(record: Any) -> str | None:
    device = record.get("device") if isinstance(record, dict) else None
    return device if isinstance(device, str) else None


def _fast_vector(values: dict[str, Any], features: list[str], feature_set: frozenset[str]) -> list[float] | None:
    """The readings in model order when they are exactly the model's sensors with finite plain numbers, else None.

    This is the common case, checked in a few microseconds; anything else goes through
    :func:`vigil.validation.check_record`, which finds and words the problem.
    """
    if len(values) != len(features) or values.keys() != feature_set:
        return None
    row = [values[name] for name in features]
    for value in row:
        kind = type(value)
        if kind is not float and kind is not int:
            return None
    # One sum finds a NaN or an infinity among finite floats; an overflowing sum goes the slow way.
    return row if math.isfinite(sum(row)) else None


def _missing_readings(reading: Reading) -> str:
    """The null readings of a record with the source's reason for each, as words; empty when there is none."""
    quality = reading.quality or {}
    missing = [name for name, value in reading.values.items() if value is None]
    return ", ".join(f"{name!r} ({quality.get(name, 'null, no reason given')})" for name in missing)
