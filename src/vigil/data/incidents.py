"""Incidents injected by the plant simulator: what they are, where they go and what they do.

An incident is either *physical* — it changes the process itself (a valve closes, a bearing wears, a
pump or the compressor runs at the wrong operating point), so every coupled sensor responds — or a
*sensor fault* that corrupts one reading while the process carries on (a spike, a stuck value, a drift,
a dropout to 0.0). :func:`vigil.data.simulator.simulate_plant` plans them with :func:`plan_incidents`,
feeds the physical ones to its process model through :func:`disturbances` and applies the sensor faults
to the measured readings with :func:`apply_sensor_faults`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError

__all__ = [
    "INCIDENT_CATEGORIES",
    "Disturbances",
    "Incident",
    "IncidentPlan",
    "apply_sensor_faults",
    "disturbances",
    "plan_incidents",
]

#: Every incident kind the simulator injects, and the category of anomaly it belongs to.
INCIDENT_CATEGORIES = MappingProxyType(
    {
        "spike": "point",
        "valve_closing": "collective",
        "bearing_wear": "collective",
        "contextual": "contextual",
        "stuck_sensor": "sensor_fault",
        "drift": "sensor_fault",
        "dropout": "sensor_fault",
    }
)

_PUMPS = ("pump1", "pump2", "pump3")

# Mode indices shared with the simulator's schedule.
IDLE, LOW, MID, FULL = 1, 2, 3, 4
# Big load changes only: a frozen reading is visible once the process has clearly moved away from it.
_LOAD_CHANGES = ((IDLE, FULL), (FULL, IDLE), (LOW, FULL), (FULL, LOW))

# (sensor, magnitude, cause): one-sample-to-few-sample excursions of a plausible size.
_SPIKES = (
    ("{pump}.vibration_mms", 2.5, "mechanical knock"),
    ("{pump}.suction_pressure_bar", -0.4, "cavitation dip"),
    ("conveyor.motor_current_A", 12.0, "momentary jam on the belt"),
    ("compressor.discharge_pressure_bar", -0.3, "pressure transient"),
    ("hx.inlet_temp_C", 3.0, "interference on the RTD cable"),
)
# (sensor, bias at the end of the drift)
_DRIFTS = (
    ("hx.outlet_temp_C", 3.0),
    ("tank.temp_C", 2.5),
    ("hx.inlet_temp_C", -2.5),
    ("{pump}.suction_pressure_bar", 0.35),
)
_STUCK = ("{pump}.current_A", "{pump}.flow_m3h", "conveyor.motor_current_A", "tank.level_pct")
_DROPOUTS = (
    "tank.level_pct",
    "compressor.discharge_pressure_bar",
    "hx.outlet_temp_C",
    "{pump}.outlet_pressure_bar",
    "header.pressure_bar",
)

# Incidents in order of priority: short runs keep only the head of the list, which holds one incident of
# every category.
_PRIORITY = (
    "spike",
    "valve_closing",
    "contextual_pump",
    "dropout",
    "stuck_sensor",
    "bearing_wear",
    "drift",
    "contextual_air",
    "spike",
    "spike",
)
_REQUIRED = 4  # the head of _PRIORITY that covers all four categories
_DEFAULT_TEST_ROWS = 9000  # rows after training in the default 4 h run

_UNITS = {"mms": "mm/s", "m3h": "m³/h", "C": "°C", "pct": "%", "mps": "m/s"}


def _unit(sensor: str) -> str:
    suffix = sensor.rsplit("_", 1)[-1]
    return _UNITS.get(suffix, suffix)


@dataclass(frozen=True)
class Incident:
    """One injected incident: what happened, where and when.

    Parameters
    ----------
    kind : str
        One of ``'spike'``, ``'valve_closing'``, ``'bearing_wear'``, ``'contextual'``,
        ``'stuck_sensor'``, ``'drift'``, ``'dropout'``.
    category : str
        The anomaly category of the kind: ``'point'``, ``'collective'``, ``'contextual'`` or
        ``'sensor_fault'`` (see :data:`INCIDENT_CATEGORIES`).
    start, end : int
        Half-open row range ``[start, end)``. For physical incidents it includes the time the process
        needs to settle back to normal.
    sensors : tuple of str
        The sensors the incident acts on directly; coupled sensors downstream may move too.
    description : str
        What happened, for people.

    Examples
    --------
    >>> inc = Incident("dropout", "sensor_fault", 100, 160, ("tank.level_pct",), "level reads 0.0")
    >>> inc.duration
    60
    """

    kind: str
    category: str
    start: int
    end: int
    sensors: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        if self.kind not in INCIDENT_CATEGORIES:
            msg = f"unknown incident kind {self.kind!r}; expected one of {sorted(INCIDENT_CATEGORIES)}"
            raise InvalidInputError(msg)
        if self.category != INCIDENT_CATEGORIES[self.kind]:
            expected = INCIDENT_CATEGORIES[self.kind]
            msg = f"incident kind {self.kind!r} has category {expected!r}, got {self.category!r}"
            raise InvalidInputError(msg)
        if not 0 <= self.start < self.end:
            msg = f"incident rows must satisfy 0 <= start < end, got start={self.start}, end={self.end}"
            raise InvalidInputError(msg)
        if not self.sensors:
            msg = f"incident {self.kind!r} at row {self.start} names no sensor"
            raise InvalidInputError(msg)

    @property
    def duration(self) -> int:
        """Number of rows the incident covers."""
        return self.end - self.start


@dataclass
class IncidentPlan:
    """A planned incident before it is placed and measured (internal to the simulator).

    ``pre`` and ``post`` are rows reserved around ``[start, start + duration)``: the schedule may be
    overridden there (a contextual incident needs the line idle before it starts) and a physical
    incident's label may extend into ``post`` while the process settles.

    Examples
    --------
    >>> IncidentPlan("drift", "hx.outlet_temp_C", duration=300).reserved
    300
    """

    variant: str
    target: str
    duration: int
    pre: int = 0
    post: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    start: int = -1

    @property
    def kind(self) -> str:
        """The public incident kind (both contextual variants are ``'contextual'``)."""
        return "contextual" if self.variant.startswith("contextual") else self.variant

    @property
    def physical(self) -> bool:
        """Whether the incident changes the process rather than one reading."""
        return self.kind in {"valve_closing", "bearing_wear", "contextual"}

    @property
    def reserved(self) -> int:
        """Rows the incident occupies, margins included."""
        return self.pre + self.duration + self.post

    @property
    def end(self) -> int:
        """Nominal end row (exclusive), before any settling tail."""
        return self.start + self.duration

    def overrides(self) -> list[tuple[int, int, int]]:
        """Schedule overrides ``(from_row, to_row, mode)`` that make the incident meaningful."""
        lo, hi = self.start - self.pre, self.end + self.post
        if self.kind == "contextual":
            return [(lo, hi, self.params["mode"])]
        if self.kind == "stuck_sensor":
            change = self.start + self.params["change_after"]
            before, after = self.params["modes"]
            return [(lo, change, before), (change, hi, after)]
        return []

    def sensors(self) -> tuple[str, ...]:
        """Sensors the incident acts on directly."""
        t = self.target
        if self.kind == "valve_closing":
            return (f"{t}.flow_m3h", f"{t}.outlet_pressure_bar", f"{t}.current_A", f"{t}.power_kW")
        if self.kind == "bearing_wear":
            return (f"{t}.vibration_mms", f"{t}.bearing_temp_C")
        if self.variant == "contextual_pump":
            quantities = ("speed_rpm", "flow_m3h", "outlet_pressure_bar", "current_A", "power_kW")
            return tuple(f"{t}.{q}" for q in quantities)
        if self.variant == "contextual_air":
            return ("compressor.speed_rpm", "compressor.current_A", "compressor.power_kW")
        return (t,)

    def describe(self, mode_names: tuple[str, ...]) -> str:
        """A sentence for people."""
        p, t = self.params, self.target
        if self.kind == "spike":
            return f"Spike of {p['magnitude']:+g} {_unit(t)} on {t} for {self.duration} s ({p['cause']})"
        if self.kind == "valve_closing":
            return (
                f"Valve on the {t} discharge closes to {p['opening']:.0%} open over {p['close']} s, "
                f"stays there {p['hold']} s and reopens over {p['reopen']} s: {t} flow falls, "
                "its outlet pressure rises and its current drops"
            )
        if self.kind == "bearing_wear":
            return (
                f"Bearing wear on {t} develops over {self.duration / 60:.0f} min: vibration rises by up to "
                f"{p['vibration']:.1f} mm/s and the bearing temperature creeps up, until it is relubricated"
            )
        mode = mode_names[p["mode"]].replace("_", " ") if "mode" in p else ""
        if self.variant == "contextual_pump":
            return (
                f"{t} speed controller left at its full-load setpoint while the line runs {mode}: "
                f"{t} speed, flow, pressure and current sit at full-load levels, normal under full load "
                "but not now"
            )
        if self.variant == "contextual_air":
            return (
                f"Compressed-air leak while the line runs {mode}: the compressor works at its full-load "
                "speed and current, normal under full load but not now"
            )
        if self.kind == "stuck_sensor":
            before, after = (mode_names[m].replace("_", " ") for m in p["modes"])
            return f"{t} freezes at its last value while the line changes from {before} to {after}"
        if self.kind == "drift":
            return f"{t} drifts by up to {p['bias']:+g} {_unit(t)} over {self.duration / 60:.0f} min"
        return f"{t} reads 0.0 for {self.duration} s (lost 4–20 mA loop)"


def _scaled(base: float, floor: int, scale: float) -> int:
    return max(floor, round(base * scale))


def _make_plan(variant: str, rng: np.random.Generator, scale: float, pumps: list[str]) -> IncidentPlan:
    """Draw one incident of ``variant``; ``pumps`` is a seeded rotation so incidents spread over pumps."""
    pump = pumps.pop(0)
    pumps.append(pump)

    def pick(options: tuple[Any, ...]) -> Any:
        return options[int(rng.integers(len(options)))]

    if variant == "spike":
        sensor, magnitude, cause = pick(_SPIKES)
        params = {"magnitude": magnitude, "cause": cause}
        return IncidentPlan(variant, sensor.format(pump=pump), int(rng.integers(1, 4)), params=params)
    if variant == "valve_closing":
        close, hold, reopen = _scaled(90, 60, scale), _scaled(180, 60, scale), _scaled(30, 20, scale)
        params = {"close": close, "hold": hold, "reopen": reopen, "opening": round(rng.uniform(0.3, 0.4), 2)}
        return IncidentPlan(variant, pump, close + hold + reopen, post=_scaled(300, 150, scale), params=params)
    if variant == "bearing_wear":
        params = {"vibration": round(rng.uniform(3.0, 3.5), 1), "heat": round(rng.uniform(12.0, 15.0), 1)}
        duration = _scaled(480, 240, scale)
        return IncidentPlan(variant, pump, duration, post=_scaled(420, 180, scale), params=params)
    if variant in {"contextual_pump", "contextual_air"}:
        target = pump if variant == "contextual_pump" else "compressor"
        params = {"mode": pick((IDLE, LOW)), "ramp": 30}
        pre, post = _scaled(240, 150, scale), _scaled(420, 180, scale)
        return IncidentPlan(variant, target, _scaled(240, 150, scale), pre=pre, post=post, params=params)
    if variant == "stuck_sensor":
        duration = _scaled(300, 180, scale)
        params = {"change_after": duration // 4, "modes": pick(_LOAD_CHANGES)}
        target = pick(_STUCK).format(pump=pump)
        return IncidentPlan(variant, target, duration, pre=_scaled(120, 90, scale), post=60, params=params)
    if variant == "drift":
        sensor, bias = pick(_DRIFTS)
        return IncidentPlan(variant, sensor.format(pump=pump), _scaled(600, 240, scale), params={"bias": bias})
    if variant == "dropout":
        return IncidentPlan(variant, pick(_DROPOUTS).format(pump=pump), _scaled(120, 45, scale))
    msg = f"unknown incident variant {variant!r}"  # pragma: no cover - internal table
    raise InvalidInputError(msg)


def plan_incidents(rng: np.random.Generator, *, train_rows: int, n_rows: int, scale: float) -> list[IncidentPlan]:
    """Choose, size and place incidents in rows ``[train_rows, n_rows)``, separated by normal gaps.

    As many incidents of :data:`_PRIORITY` are kept as fit; fewer than one per category is an error.

    Examples
    --------
    >>> plans = plan_incidents(np.random.default_rng(0), train_rows=1000, n_rows=4000, scale=0.5)
    >>> {"spike", "valve_closing", "contextual", "dropout"} <= {p.kind for p in plans}
    True
    """
    pumps = [str(p) for p in rng.permutation(_PUMPS)]
    span = n_rows - train_rows
    # Runs longer than the default go round the list again rather than packing incidents tighter.
    rounds = max(1, round(span / _DEFAULT_TEST_ROWS))
    plans = [_make_plan(v, rng, scale, pumps) for v in _PRIORITY * rounds]
    gap = _scaled(300, 120, scale)
    kept: list[IncidentPlan] = []
    used = gap
    for plan in plans:
        if used + plan.reserved + gap > span:
            if len(kept) < _REQUIRED:
                need = sum(p.reserved + gap for p in plans[:_REQUIRED]) + gap
                msg = (
                    f"the run is too short: the {span} s after the training period cannot hold one "
                    f"incident of each category with normal gaps between them, which needs {need} s; "
                    "simulate more hours or shorten train_hours"
                )
                raise InvalidInputError(msg)
            break
        kept.append(plan)
        used += plan.reserved + gap
    order = rng.permutation(len(kept))
    kept = [kept[i] for i in order]
    # Spread the slack over the gaps at random so incident times vary with the seed.
    slack = span - used
    extra = np.floor(rng.dirichlet(np.ones(len(kept) + 1)) * slack).astype(int)
    row = train_rows
    for plan, more in zip(kept, extra, strict=False):
        row += gap + int(more)
        plan.start = row + plan.pre
        row += plan.reserved
    return kept


def _trapezoid(n: int, start: int, rise: int, hold: int, fall: int) -> NDArray[np.float64]:
    """0 before ``start``, linear rise to 1, hold, linear fall back to 0."""
    t = np.arange(n, dtype=np.float64) - start
    up = np.clip((t + 1) / max(rise, 1), 0.0, 1.0)
    down = np.clip((rise + hold + fall - t - 1) / max(fall, 1), 0.0, 1.0)
    return np.minimum(up, down) * (t >= 0)


@dataclass
class Disturbances:
    """Hidden inputs by which physical incidents act on the process model.

    Examples
    --------
    >>> Disturbances.none(3).valve_opening.shape
    (3, 3)
    """

    valve_opening: NDArray[np.float64]  # (3, n) fraction open per pump discharge valve
    wear: NDArray[np.float64]  # (3, n) bearing wear progress per pump, 0..1
    pump_override: NDArray[np.float64]  # (3, n) weight of a full-load speed setpoint per pump, 0..1
    air_leak: NDArray[np.float64]  # (n,) weight of full-load air demand, 0..1
    wear_params: NDArray[np.float64]  # (3, 2) vibration and heat of full wear per pump

    @classmethod
    def none(cls, n: int) -> Disturbances:
        """Normal operation: every valve open, no wear, no override."""
        return cls(np.ones((3, n)), np.zeros((3, n)), np.zeros((3, n)), np.zeros(n), np.zeros((3, 2)))


def disturbances(plans: list[IncidentPlan], n: int) -> Disturbances:
    """Translate the physical incidents of ``plans`` into process-model inputs.

    Examples
    --------
    >>> plan = IncidentPlan("bearing_wear", "pump2", 4, params={"vibration": 2.0, "heat": 9.0}, start=1)
    >>> disturbances([plan], 6).wear[1].round(2).tolist()
    [0.0, 0.06, 0.25, 0.56, 1.0, 0.0]
    """
    d = Disturbances.none(n)
    for plan in plans:
        p = plan.params
        if plan.kind == "valve_closing":
            w = _trapezoid(n, plan.start, p["close"], p["hold"], p["reopen"])
            d.valve_opening[_PUMPS.index(plan.target)] -= (1.0 - p["opening"]) * w
        elif plan.kind == "bearing_wear":
            i = _PUMPS.index(plan.target)
            t = np.arange(n) - plan.start
            inside = (t >= 0) & (t < plan.duration)
            # Wear accelerates: vibration grows with the square of the elapsed fraction.
            d.wear[i] = np.where(inside, ((t + 1) / plan.duration) ** 2, 0.0)
            d.wear_params[i] = (p["vibration"], p["heat"])
        elif plan.kind == "contextual":
            ramp = p["ramp"]
            w = _trapezoid(n, plan.start, ramp, plan.duration - 2 * ramp, ramp)
            if plan.variant == "contextual_pump":
                d.pump_override[_PUMPS.index(plan.target)] = w
            else:
                d.air_leak = w
    return d


def apply_sensor_faults(values: NDArray[np.float64], columns: tuple[str, ...], plans: list[IncidentPlan]) -> None:
    """Corrupt the measured ``values`` (rows × ``columns``) in place with the sensor-fault incidents.

    Examples
    --------
    >>> x = np.ones((4, 1))
    >>> apply_sensor_faults(x, ("a.b_C",), [IncidentPlan("dropout", "a.b_C", 2, start=1)])
    >>> x.ravel().tolist()
    [1.0, 0.0, 0.0, 1.0]
    """
    for plan in plans:
        if plan.physical:
            continue
        j = columns.index(plan.target)
        rows = slice(plan.start, plan.end)
        if plan.kind == "spike":
            values[rows, j] += plan.params["magnitude"]
        elif plan.kind == "stuck_sensor":
            values[rows, j] = values[plan.start - 1, j]
        elif plan.kind == "drift":
            ramp = np.arange(1, plan.duration + 1) / plan.duration
            values[rows, j] += plan.params["bias"] * ramp
        elif plan.kind == "dropout":
            values[rows, j] = 0.0
