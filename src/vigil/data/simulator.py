"""A seeded simulator of a smart-manufacturing line, with labelled incidents, for demos and tests.

The line: three parallel centrifugal pumps feed a common header into a heated mixing tank; the product
leaves the tank through a heat exchanger cooled by a cooling-tower loop; a screw compressor supplies
instrument air and a conveyor carries the product away. 61 sensors at 1 Hz describe it.

The physics is simple but coupled, so that a model of normal behaviour has structure to learn:

- pump affinity laws against a system curve: flow rises roughly with speed, head with speed squared,
  shaft power (and so current) roughly with speed cubed; closing a discharge valve moves the operating
  point up the pump curve (less flow, more pressure, less power);
- the header flow is the sum of the pump flows and feeds the tank; its level and temperature respond to
  changes of inflow, and temperatures downstream (heat exchanger) lag upstream ones;
- temperatures follow heat sources with first-order lags; vibration grows with speed; motor currents
  depend on power and on the shared supply voltage, which sags with total plant power;
- the ambient temperature varies slowly (air-conditioning cycles) and shifts the machine temperatures.

The line runs through operating modes on a seeded schedule (start-up, idle, low, mid and full load),
and everything is computed for all seconds at once with numpy and :func:`scipy.signal.lfilter`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.signal import lfilter

from vigil.data.incidents import (
    FULL,
    IDLE,
    INCIDENT_CATEGORIES,
    LOW,
    MID,
    Disturbances,
    Incident,
    IncidentPlan,
    apply_sensor_faults,
    disturbances,
    plan_incidents,
)
from vigil.errors import InvalidInputError

__all__ = ["INCIDENT_CATEGORIES", "MODES", "Incident", "PlantRecording", "simulate_plant"]

#: Operating modes, in the order of their index in the schedule.
MODES = ("startup", "idle", "low_load", "mid_load", "full_load")
_STARTUP = 0
_LOAD = np.array([0.0, 0.0, 0.35, 0.65, 1.0])  # line load per mode (start-up ramps towards idle)
_DEFAULT_HOURS = 4.0
_TRAIN_SHARE = 0.375  # 1.5 h of 4 h
_MIN_SEGMENT = 120  # s, shortest operating-mode segment
# Idle, the three load levels and one more: whatever the order, training then sees load rise and fall.
_TRAIN_SEGMENTS = 5
_LOAD_RAMP = 60  # s, a load change ramps linearly over this time
_SETTLED = 60  # s, by then every machine has soft-started and the process flows

# machine -> (sensor, measurement noise standard deviation in the sensor's unit)
_PUMP_SENSORS = (
    ("speed_rpm", 2.0), ("flow_m3h", 0.35), ("suction_pressure_bar", 0.01), ("outlet_pressure_bar", 0.02),
    ("current_A", 0.12), ("power_kW", 0.06), ("vibration_mms", 0.06), ("bearing_temp_C", 0.1), ("motor_temp_C", 0.1),
)  # fmt: skip
_SENSORS: dict[str, tuple[tuple[str, float], ...]] = {
    "pump1": _PUMP_SENSORS,
    "pump2": _PUMP_SENSORS,
    "pump3": _PUMP_SENSORS,
    "header": (("flow_m3h", 0.8), ("pressure_bar", 0.015), ("fluid_temp_C", 0.08)),
    "tank": (
        ("level_pct", 0.25), ("temp_C", 0.08), ("heater_power_kW", 0.3), ("agitator_speed_rpm", 0.8),
        ("agitator_current_A", 0.08), ("agitator_vibration_mms", 0.05), ("outlet_flow_m3h", 0.6),
    ),
    "hx": (
        ("inlet_temp_C", 0.08), ("outlet_temp_C", 0.08), ("coolant_in_temp_C", 0.08),
        ("coolant_out_temp_C", 0.08), ("coolant_flow_m3h", 0.5), ("pressure_drop_bar", 0.005),
    ),
    "compressor": (
        ("speed_rpm", 5.0), ("discharge_pressure_bar", 0.02), ("discharge_temp_C", 0.15), ("current_A", 0.3),
        ("power_kW", 0.2), ("vibration_mms", 0.06), ("oil_temp_C", 0.1),
    ),
    "conveyor": (
        ("belt_speed_mps", 0.005), ("motor_speed_rpm", 3.0), ("motor_current_A", 0.1), ("motor_power_kW", 0.05),
        ("vibration_mms", 0.05), ("motor_temp_C", 0.1), ("gearbox_temp_C", 0.1),
    ),
    "plant": (("ambient_temp_C", 0.1), ("humidity_pct", 0.3), ("supply_voltage_V", 0.6), ("total_power_kW", 0.8)),
}  # fmt: skip
_COLUMNS = tuple(f"{m}.{s}" for m, sensors in _SENSORS.items() for s, _ in sensors)
_NOISE = np.array([sd for sensors in _SENSORS.values() for _, sd in sensors])


@dataclass(frozen=True, eq=False)
class PlantRecording:
    """A simulated recording of the line, with its ground truth.

    Attributes
    ----------
    frame : pandas.DataFrame
        One float64 column per sensor, named ``machine.quantity_unit``, on a 1 s DatetimeIndex ``time``.
    labels : numpy.ndarray of bool
        True in rows inside an incident.
    incidents : tuple of Incident
        In time order, non-overlapping, all at or after ``train_rows``.
    modes : numpy.ndarray of str
        Operating mode per row, one of :data:`MODES`.
    train_rows : int
        Rows ``[0, train_rows)`` are normal operation covering every mode: the training period.
    machines : Mapping[str, tuple[str, ...]]
        The sensor columns of each machine.

    Examples
    --------
    >>> rec = simulate_plant(hours=1.0, seed=3)
    >>> rec.frame.shape, rec.train_rows
    ((3600, 61), 1350)
    >>> sorted({i.category for i in rec.incidents})
    ['collective', 'contextual', 'point', 'sensor_fault']
    """

    frame: pd.DataFrame
    labels: NDArray[np.bool_]
    incidents: tuple[Incident, ...]
    modes: NDArray[np.str_]
    train_rows: int
    machines: Mapping[str, tuple[str, ...]]

    @property
    def sensors(self) -> tuple[str, ...]:
        """All sensor columns, in frame order."""
        return tuple(self.frame.columns)

    @property
    def train_frame(self) -> pd.DataFrame:
        """The incident-free training period."""
        return self.frame.iloc[: self.train_rows]

    @property
    def test_frame(self) -> pd.DataFrame:
        """Everything after the training period."""
        return self.frame.iloc[self.train_rows :]


# ---------------------------------------------------------------------------------------------- helpers


def _lag(u: NDArray[np.float64], tau: float, y0: float | None = None) -> NDArray[np.float64]:
    """First-order lag ``tau dy/dt = u - y`` sampled at 1 s, starting from ``y0`` (default ``u[0]``)."""
    a = math.exp(-1.0 / tau)
    start = float(u[0]) if y0 is None else y0
    y, _ = lfilter([1.0 - a], [1.0, -a], u, zi=[a * start])
    return y


def _slow_noise(rng: np.random.Generator, n: int, sd: float, tau: float) -> NDArray[np.float64]:
    """Stationary AR(1) noise with standard deviation ``sd`` and correlation time ``tau`` seconds."""
    a = math.exp(-1.0 / tau)
    e = rng.standard_normal(n + 1)
    y, _ = lfilter([math.sqrt(1.0 - a * a)], [1.0, -a], e[1:], zi=[a * e[0]])
    return sd * y


def _ramp(u: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """Causal moving average: turns steps into linear ramps of ``width`` seconds."""
    padded = np.concatenate([np.full(width, u[0]), u])
    c = np.cumsum(padded)
    return (c[width:] - c[:-width]) / width


def _between(t: NDArray[np.float64], t0: float, t1: float) -> NDArray[np.float64]:
    """0 before ``t0``, linear to 1 at ``t1``, 1 after."""
    return np.clip((t - t0) / max(t1 - t0, 1.0), 0.0, 1.0)


def _current(
    power_kw: NDArray[np.float64], volts: NDArray[np.float64], magnetising: NDArray[np.floating[Any]]
) -> NDArray[np.float64]:
    """Three-phase motor current from electrical power, supply voltage and magnetising current."""
    active = power_kw * 1000.0 / (math.sqrt(3.0) * volts * 0.9)
    return np.sqrt(active**2 + magnetising**2)


# -------------------------------------------------------------------------------------------- schedule


def _durations(rng: np.random.Generator, total: int, count: int) -> NDArray[np.int64]:
    """``count`` seeded segment lengths of at least ``_MIN_SEGMENT`` summing to ``total``."""
    weights = rng.uniform(0.6, 1.4, count)
    spare = total - count * _MIN_SEGMENT
    sizes = _MIN_SEGMENT + np.floor(weights / weights.sum() * spare).astype(np.int64)
    sizes[-1] += total - sizes.sum()
    return sizes


def _schedule(rng: np.random.Generator, n: int, train_rows: int, startup_rows: int, scale: float) -> NDArray[np.int64]:
    """Mode index per row: start-up, then every load mode in training, then a random sequence."""
    modes = np.empty(n, dtype=np.int64)
    modes[:startup_rows] = _STARTUP
    count = int(np.clip((train_rows - startup_rows) // 600, _TRAIN_SEGMENTS, 10))
    sequence = [IDLE, *(int(m) for m in rng.permutation([LOW, MID, FULL]))]
    while len(sequence) < count:
        sequence.append(int(rng.choice([m for m in (IDLE, LOW, MID, FULL) if m != sequence[-1]])))
    row = startup_rows
    for mode, size in zip(sequence, _durations(rng, train_rows - startup_rows, count), strict=True):
        modes[row : row + size] = mode
        row += size
    shortest, longest = max(_MIN_SEGMENT, round(300 * scale)), max(2 * _MIN_SEGMENT, round(900 * scale))
    previous = sequence[-1]
    while row < n:
        choices = [m for m in (IDLE, LOW, MID, FULL) if m != previous]
        previous = int(rng.choice(choices))
        size = int(rng.integers(shortest, longest + 1))
        modes[row : row + size] = previous
        row += size
    return modes


# --------------------------------------------------------------------------------------------- physics


@dataclass
class _Inputs:
    """Everything the physics needs except the incidents: schedule-derived signals and process noise."""

    load: NDArray[np.float64]  # line load 0..1, ramped
    run_pumps: NDArray[np.float64]  # start-up progress of each machine group, 0..1
    run_compressor: NDArray[np.float64]
    run_line: NDArray[np.float64]  # conveyor, agitator, cooling pump
    noise: dict[str, NDArray[np.float64]]
    # 0 for the usual product, 1 for the new one (a product change ramps between them)
    product: NDArray[np.float64] | None = None


def _inputs(rng: np.random.Generator, modes: NDArray[np.int64], startup_rows: int) -> _Inputs:
    n = len(modes)
    t = np.arange(n, dtype=np.float64)
    # Start-up: each machine group soft-starts to its minimum speed within seconds, then the whole line
    # ramps up as if the load rose from below idle (-0.2) to idle, so start-up stays on the same
    # operating curves as normal production.
    load = _ramp(_LOAD[modes], _LOAD_RAMP)
    load -= 0.2 * (1.0 - _between(t, 0.0, float(startup_rows)))
    slow = {
        "trim": np.stack([_slow_noise(rng, n, 0.006, 120.0) + off for off in (0.0, 0.004, -0.005)]),
        "load": _slow_noise(rng, n, 0.012, 60.0),
        "air": _slow_noise(rng, n, 0.02, 45.0),
        "ambient": _slow_noise(rng, n, 0.1, 300.0),
        # The hall's air conditioning cycles the ambient temperature with a 20 min period.
        "hvac": 0.3 * np.sin(2.0 * np.pi * t / 1200.0 + rng.uniform(0.0, 2.0 * np.pi)),
        "humidity": _slow_noise(rng, n, 0.2, 120.0),
        "grid": _slow_noise(rng, n, 0.5, 60.0),
        "tank_temp": _slow_noise(rng, n, 0.05, 60.0),
        "level": _slow_noise(rng, n, 0.4, 120.0),
        "tower": _slow_noise(rng, n, 0.15, 120.0),
        "vibration": _slow_noise(rng, 6 * n, 0.05, 20.0).reshape(6, n),
    }
    return _Inputs(
        load=np.clip(load + slow["load"] * (modes != _STARTUP), -0.2, 1.0),
        run_pumps=_between(t, 2.0, 10.0),
        run_compressor=_between(t, 0.0, 8.0),
        run_line=_between(t, 4.0, 12.0),
        noise=slow,
    )


def _physics(inp: _Inputs, dist: Disturbances) -> dict[str, NDArray[np.float64]]:
    """Noise-free (except process noise) sensor values for every second."""
    z = inp.noise
    n = inp.load.size
    out: dict[str, NDArray[np.float64]] = {}

    def warm(source: NDArray[np.float64], tau: float) -> NDArray[np.float64]:
        # The line restarts warm after a short stop: process lags start settled at the value their
        # source has once the machines have soft-started and the product flows.
        return _lag(source, tau, float(source[min(_SETTLED, n - 1)]))

    ambient = 20.0 + z["hvac"] + z["ambient"]
    load = inp.load
    on_p = (inp.run_pumps > 0).astype(np.float64)

    # Pumps: speed setpoints follow the line load; a contextual override pins one at full load.
    full_speed = 0.55 + 0.42 * 1.0
    setpoint = inp.run_pumps * (0.55 + 0.42 * load + z["trim"])
    setpoint = (1.0 - dist.pump_override) * setpoint + dist.pump_override * (full_speed + z["trim"])
    speed = np.stack([_lag(sp, 5.0) for sp in setpoint])
    # Pump curve H = 6 s^2 - a Q^2 against system curve H = 1 + (R / v^2) Q^2 (bar, m3/h).
    # The new product is more viscous (35 % more line resistance) and is held 7 °C warmer in the tank.
    product = np.zeros(n) if inp.product is None else inp.product
    a, r = 1.5 / 3600.0, 3.5 / 3600.0 * (1.0 + 0.35 * product)
    head0 = np.maximum(6.0 * speed**2 - 1.0, 0.0)
    flow = np.sqrt(head0 / (a + r / dist.valve_opening**2))
    head = 6.0 * speed**2 - a * flow**2
    total_flow = flow.sum(axis=0)
    suction = 1.5 - 0.2 * (total_flow / 180.0) ** 2 - 0.05 * (flow / 60.0) ** 2
    q_ratio = flow / (60.0 * np.maximum(speed, 0.05))
    efficiency = np.clip(0.78 - 0.5 * (q_ratio - 1.0) ** 2, 0.3, 0.8)
    wear = dist.wear
    shaft = flow * head / 36.0 / efficiency + 0.3 * speed + 0.5 * wear
    pump_power = (shaft / 0.93 + 0.25) * on_p

    # Compressor: variable-speed screw compressor following air demand; a leak demands full-load air.
    demand = 0.35 + 0.6 * load + z["air"]
    demand = (1.0 - dist.air_leak) * demand + dist.air_leak * (0.95 + z["air"])
    comp_speed = _lag(inp.run_compressor * demand, 8.0)
    # The air receiver holds its pressure through a short stop; the compressor tops it up to 7 bar.
    comp_pressure = 6.6 + 0.4 * inp.run_compressor - 0.6 * (demand - _lag(demand, 30.0))
    comp_power = (4.0 + 38.0 * comp_speed * (0.6 + 0.4 * comp_pressure / 7.0)) * (inp.run_compressor > 0)

    # Conveyor and agitator follow the line load; the product mass on the belt lags the load.
    run_line = inp.run_line
    belt = _lag(run_line * (0.3 + 0.9 * load), 3.0)
    mass = warm(run_line * np.maximum(load, 0.0), 90.0)
    torque = 0.2 + 0.8 * mass
    conv_power = (0.4 + 7.0 * torque * belt / 1.2) * (run_line > 0)
    agit = _lag(run_line * (0.5 + 0.5 * load), 5.0)

    # Tank: level responds to the imbalance between inflow and the level-controlled outflow.
    outflow = warm(total_flow, 45.0)
    level = 55.0 + 0.12 * (total_flow - outflow) + z["level"]
    agit_power = (0.3 + 5.5 * agit**3 * (0.6 + 0.4 * level / 55.0)) * (run_line > 0)
    # Feed water comes from a buffer warmed by the pumps' recirculation, so it is warmer at high flow.
    feed_temp = warm(ambient - 3.0 + 0.03 * total_flow, 120.0)
    tank_setpoint = 48.0 + 7.0 * product
    tank_temp = tank_setpoint + warm(-0.02 * (total_flow - warm(total_flow, 180.0)), 60.0) + z["tank_temp"]
    heater = warm(np.clip(15.0 + 0.2 * total_flow * (tank_setpoint - feed_temp) / 30.0, 0.0, 80.0), 30.0)

    # Electrical: the supply voltage sags with total power, and currents rise as it sags.
    total_power = 15.0 + pump_power.sum(axis=0) + comp_power + conv_power + agit_power + heater
    volts = 401.0 + z["grid"] - 0.03 * total_power
    pump_current = _current(pump_power, volts, 5.0 * on_p)

    for i, pump in enumerate(("pump1", "pump2", "pump3")):
        vib, heat = dist.wear_params[i]
        vibration = 0.6 + 2.4 * speed[i] ** 2 + 0.4 * (1.0 - q_ratio[i]) ** 2 * on_p + vib * wear[i]
        out[f"{pump}.speed_rpm"] = 1480.0 * speed[i]
        out[f"{pump}.flow_m3h"] = flow[i]
        out[f"{pump}.suction_pressure_bar"] = suction[i]
        out[f"{pump}.outlet_pressure_bar"] = suction[i] + head[i]
        out[f"{pump}.current_A"] = pump_current[i]
        out[f"{pump}.power_kW"] = pump_power[i]
        out[f"{pump}.vibration_mms"] = vibration + z["vibration"][i] * speed[i]
        bearing_src = ambient + 4.0 + 18.0 * speed[i] ** 2 + heat * wear[i]
        out[f"{pump}.bearing_temp_C"] = warm(bearing_src, 120.0)
        out[f"{pump}.motor_temp_C"] = warm(ambient + 8.0 + 0.09 * pump_current[i] ** 2, 120.0)

    out["header.flow_m3h"] = total_flow
    out["header.pressure_bar"] = 1.5 + 1.0 * on_p + 1.0 * (total_flow / 180.0) ** 2
    out["header.fluid_temp_C"] = feed_temp

    out["tank.level_pct"] = level
    out["tank.temp_C"] = tank_temp
    out["tank.heater_power_kW"] = heater
    out["tank.agitator_speed_rpm"] = 120.0 * agit
    out["tank.agitator_current_A"] = _current(agit_power, volts, 2.0 * (run_line > 0))
    out["tank.agitator_vibration_mms"] = 0.5 + 1.5 * agit**2 + z["vibration"][3] * agit
    out["tank.outlet_flow_m3h"] = outflow

    # Heat exchanger: hot product from the tank against the cooling-tower loop.
    hot_in = warm(tank_temp, 20.0) - 0.3
    # The cooling-water pump runs in ratio to the product flow.
    coolant_flow = run_line * _lag(15.0 + 0.8 * outflow, 10.0)
    coolant_in = warm(ambient + 5.0 + 2.0 * load + z["tower"], 120.0)
    effectiveness = np.clip(0.45 + 0.25 * coolant_flow / 100.0 - 0.15 * outflow / 180.0, 0.2, 0.9)
    hot_out_ss = hot_in - effectiveness * (hot_in - coolant_in)
    coolant_rise = (hot_in - hot_out_ss) * outflow / np.maximum(coolant_flow, 5.0)
    out["hx.inlet_temp_C"] = hot_in
    out["hx.outlet_temp_C"] = warm(hot_out_ss, 30.0)
    out["hx.coolant_in_temp_C"] = coolant_in
    out["hx.coolant_out_temp_C"] = warm(coolant_in + np.minimum(coolant_rise, 25.0), 30.0)
    out["hx.coolant_flow_m3h"] = coolant_flow
    out["hx.pressure_drop_bar"] = 0.05 + 0.4 * (outflow / 180.0) ** 2

    comp_on = (inp.run_compressor > 0).astype(np.float64)
    comp_current = _current(comp_power, volts, 12.0 * comp_on)
    out["compressor.speed_rpm"] = 3000.0 * comp_speed
    out["compressor.discharge_pressure_bar"] = comp_pressure
    out["compressor.discharge_temp_C"] = warm(ambient + 55.0 * comp_on + 25.0 * comp_speed, 120.0)
    out["compressor.current_A"] = comp_current
    out["compressor.power_kW"] = comp_power
    out["compressor.vibration_mms"] = 1.0 + 1.8 * comp_speed**2 + z["vibration"][4] * comp_speed
    out["compressor.oil_temp_C"] = warm(ambient + 35.0 * comp_on + 20.0 * comp_speed, 120.0)

    conv_current = _current(conv_power, volts, 4.0 * (run_line > 0))
    out["conveyor.belt_speed_mps"] = belt
    out["conveyor.motor_speed_rpm"] = belt / 1.2 * 1450.0
    out["conveyor.motor_current_A"] = conv_current
    out["conveyor.motor_power_kW"] = conv_power
    out["conveyor.vibration_mms"] = 0.5 + 2.0 * (belt / 1.2) ** 2 + z["vibration"][5] * belt
    out["conveyor.motor_temp_C"] = warm(ambient + 10.0 + 0.08 * conv_current**2, 240.0)
    out["conveyor.gearbox_temp_C"] = warm(ambient + 8.0 + 22.0 * conv_power / 8.0, 240.0)

    out["plant.ambient_temp_C"] = ambient
    out["plant.humidity_pct"] = 45.0 - 1.0 * (ambient - 20.0) + z["humidity"]
    out["plant.supply_voltage_V"] = volts
    out["plant.total_power_kW"] = total_power
    return out


# ------------------------------------------------------------------------------------------ public API


def _check_args(hours: float, train_hours: float | None, seed: int, start: str) -> tuple[int, int, pd.Timestamp]:
    """Validate the arguments of :func:`simulate_plant`; return rows, training rows and the first timestamp."""
    for name, value in (("hours", hours), ("train_hours", train_hours)):
        if value is None and name == "train_hours":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            msg = f"{name} must be a positive finite number of hours, got {value!r}"
            raise InvalidInputError(msg)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        msg = f"seed must be a non-negative integer, got {seed!r}"
        raise InvalidInputError(msg)
    try:
        origin = pd.Timestamp(start)
    except (ValueError, TypeError):
        origin = pd.NaT
    if origin is pd.NaT:
        msg = f"start must be a timestamp such as '2026-01-05T06:00:00', got {start!r}"
        raise InvalidInputError(msg)
    n = round(hours * 3600)
    train_rows = round((hours * _TRAIN_SHARE if train_hours is None else train_hours) * 3600)
    if train_rows >= n:
        msg = f"train_hours={train_hours!r} must be shorter than hours={hours!r}"
        raise InvalidInputError(msg)
    need = _startup_rows(train_rows) + _TRAIN_SEGMENTS * _MIN_SEGMENT
    if train_rows < need:
        fix = (
            f"hours >= {need / 3600 / _TRAIN_SHARE:.2f} (or train_hours >= {need / 3600:.2f})"
            if train_hours is None
            else f"train_hours >= {need / 3600:.2f}"
        )
        msg = (
            f"the run is too short: its training period of {train_rows} s cannot hold start-up, idle "
            f"and the three load levels, which need at least {need} s; use {fix}"
        )
        raise InvalidInputError(msg)
    return n, train_rows, origin


def _startup_rows(train_rows: int) -> int:
    return int(np.clip(round(0.06 * train_rows), 120, 300))


def _label_end(plan: IncidentPlan, delta: NDArray[np.float64], settled: NDArray[np.float64]) -> int:
    """End of a physical incident: the last row, within its margin, where it still moves a sensor by
    more than ``settled`` (per sensor)."""
    hi = plan.end + plan.post
    moved = np.flatnonzero((np.abs(delta[plan.start : hi]) > settled).any(axis=1))
    last = plan.start + int(moved[-1]) + 1 if moved.size else plan.end
    return max(plan.end, last)


def simulate_plant(
    *,
    hours: float = _DEFAULT_HOURS,
    train_hours: float | None = None,
    seed: int = 7,
    start: str = "2026-01-05T06:00:00",
    product_change_hours: float | None = None,
) -> PlantRecording:
    """Simulate the line at 1 Hz, with labelled incidents after a normal training period.

    Parameters
    ----------
    hours : float, default 4.0
        Length of the recording.
    train_hours : float, optional
        Length of the incident-free training period at the start; by default 37.5 % of ``hours``
        (1.5 h of 4 h). It always covers start-up, idle and the three load levels.
    seed : int, default 7
        Seeds everything: schedule, incidents and noise. The same seed gives the same recording.
    start : str, default "2026-01-05T06:00:00"
        Timestamp of the first row.
    product_change_hours : float, optional
        From this hour on the line makes a new product — more viscous, held 7 °C warmer — after a
        10-minute changeover: a legitimate new normal (not labelled anomalous) that a model trained on
        the old product will at first take for a fault.

    Returns
    -------
    PlantRecording

    Raises
    ------
    InvalidInputError
        If an argument is invalid, or the run is too short to hold the training period and one
        incident of each category (about 40 minutes with the default training share).

    Notes
    -----
    Sensor faults are applied to the measured readings; physical incidents change the process, and
    their label runs on until every sensor is back within three noise standard deviations (or a tenth
    of its normal spread) of where it would have been without the incident.

    Examples
    --------
    >>> rec = simulate_plant(hours=1.0, seed=1)
    >>> rec.frame.index.freqstr, len(rec.sensors), str(rec.modes[0])
    ('s', 61, 'startup')
    >>> rec.machines["pump1"][:3]
    ('pump1.speed_rpm', 'pump1.flow_m3h', 'pump1.suction_pressure_bar')
    >>> bool(rec.labels[: rec.train_rows].any()), all(i.start >= rec.train_rows for i in rec.incidents)
    (False, True)
    """
    n, train_rows, origin = _check_args(hours, train_hours, seed, start)
    scale = float(np.clip(n / (_DEFAULT_HOURS * 3600), 0.25, 1.0))
    schedule_rng, incident_rng, process_rng, sensor_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    startup = _startup_rows(train_rows)
    modes = _schedule(schedule_rng, n, train_rows, startup, scale)
    plans = plan_incidents(incident_rng, train_rows=train_rows, n_rows=n, scale=scale)
    for plan in plans:
        for lo, hi, mode in plan.overrides():
            modes[max(lo, train_rows) : min(hi, n)] = mode
    inputs = _inputs(process_rng, modes, startup)
    if product_change_hours is not None:
        change = round(3600 * product_change_hours)
        if not train_rows <= change < n:
            msg = f"product_change_hours={product_change_hours} must fall after training and before the end"
            raise InvalidInputError(msg)
        t = np.arange(n, dtype=np.float64)
        inputs = dataclasses.replace(inputs, product=_between(t, float(change), float(change + 600)))

    faulty = _physics(inputs, disturbances(plans, n))
    values = np.column_stack([faulty[c] for c in _COLUMNS])
    normal = _physics(inputs, Disturbances.none(n))
    delta = values - np.column_stack([normal[c] for c in _COLUMNS])
    # A physical incident is over once no sensor is off by more than 3 noise standard deviations or
    # a tenth of its normal spread, whichever is larger: slow temperatures may take longer to settle
    # fully, but what is left is invisible next to normal variation.
    settled = np.maximum(3.0 * _NOISE, 0.1 * values[:train_rows].std(axis=0))

    values += sensor_rng.standard_normal(values.shape) * _NOISE
    apply_sensor_faults(values, _COLUMNS, plans)

    labels = np.zeros(n, dtype=bool)
    incidents = []
    for plan in sorted(plans, key=lambda p: p.start):
        end = _label_end(plan, delta, settled) if plan.physical else plan.end
        labels[plan.start : end] = True
        incidents.append(
            Incident(plan.kind, INCIDENT_CATEGORIES[plan.kind], plan.start, end, plan.sensors(), plan.describe(MODES))
        )
    index = pd.date_range(origin, periods=n, freq="s", name="time")
    frame = pd.DataFrame(values, index=index, columns=list(_COLUMNS))
    mode_names = np.asarray(MODES)[modes]
    labels.setflags(write=False)
    mode_names.setflags(write=False)
    machines = MappingProxyType({m: tuple(f"{m}.{s}" for s, _ in sensors) for m, sensors in _SENSORS.items()})
    return PlantRecording(frame, labels, tuple(incidents), mode_names, train_rows, machines)
