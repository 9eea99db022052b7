from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from vigil.data.incidents import INCIDENT_CATEGORIES, Incident
from vigil.data.simulator import MODES, PlantRecording, simulate_plant
from vigil.errors import InvalidInputError

CATEGORIES = {"point", "collective", "contextual", "sensor_fault"}


def normal_running(rec: PlantRecording) -> np.ndarray:
    """Rows of steady normal operation: after start-up and outside incidents."""
    return (rec.modes != "startup") & ~rec.labels


def test_same_seed_gives_the_same_recording() -> None:
    a, b = simulate_plant(seed=11), simulate_plant(seed=11)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.modes, b.modes)
    assert a.incidents == b.incidents
    assert a.train_rows == b.train_rows


def test_different_seeds_give_different_recordings() -> None:
    a, b = simulate_plant(hours=1.0, seed=1), simulate_plant(hours=1.0, seed=2)
    assert not np.allclose(a.frame.to_numpy(), b.frame.to_numpy())
    assert a.incidents != b.incidents


def test_frame_shape_index_and_values() -> None:
    rec = simulate_plant()
    frame = rec.frame
    assert frame.shape == (14_400, 61)
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "time"
    assert frame.index[0] == pd.Timestamp("2026-01-05T06:00:00")
    assert frame.index.freqstr == "s"
    assert (frame.index[1:] - frame.index[:-1] == pd.Timedelta(seconds=1)).all()
    assert (frame.dtypes == np.float64).all()
    assert np.isfinite(frame.to_numpy()).all()
    assert len(rec.labels) == len(rec.modes) == len(frame)
    assert frame.columns.is_unique
    assert all(col.count(".") == 1 for col in frame.columns)


def test_machines_partition_the_sensors() -> None:
    rec = simulate_plant(hours=1.0)
    assert len(rec.machines) >= 6
    assert {"pump1", "pump2", "pump3", "compressor", "conveyor", "hx", "tank"} <= set(rec.machines)
    listed = [col for cols in rec.machines.values() for col in cols]
    assert sorted(listed) == sorted(rec.sensors)
    for machine, cols in rec.machines.items():
        assert all(col.startswith(f"{machine}.") for col in cols)


def test_default_run_holds_every_kind_and_category() -> None:
    rec = simulate_plant()
    assert len(rec.incidents) >= 8
    assert {i.kind for i in rec.incidents} == set(INCIDENT_CATEGORIES)
    assert {i.category for i in rec.incidents} == CATEGORIES
    for inc in rec.incidents:
        assert inc.category == INCIDENT_CATEGORIES[inc.kind]
        assert inc.description
        assert set(inc.sensors) <= set(rec.sensors)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 7])
def test_incidents_follow_training_without_overlap(seed: int) -> None:
    rec = simulate_plant(seed=seed)
    starts = [i.start for i in rec.incidents]
    assert starts == sorted(starts)
    assert rec.incidents[0].start >= rec.train_rows
    assert rec.incidents[-1].end <= len(rec.frame)
    for before, after in zip(rec.incidents, rec.incidents[1:], strict=False):
        assert after.start - before.end >= 120  # a normal gap between incidents


@pytest.mark.parametrize("seed", [0, 7])
def test_labels_are_the_union_of_incidents(seed: int) -> None:
    rec = simulate_plant(seed=seed)
    expected = np.zeros(len(rec.frame), dtype=bool)
    for inc in rec.incidents:
        expected[inc.start : inc.end] = True
    np.testing.assert_array_equal(rec.labels, expected)
    assert not rec.labels[: rec.train_rows].any()


def test_training_covers_every_mode() -> None:
    rec = simulate_plant()
    assert rec.train_rows == 5400
    train_modes = rec.modes[: rec.train_rows]
    assert set(train_modes) == set(MODES)
    assert train_modes[0] == "startup"
    startup = np.flatnonzero(rec.modes == "startup")
    assert startup[-1] == len(startup) - 1  # start-up only at the beginning
    assert set(rec.modes) <= set(MODES)


def test_pump_coupling_in_normal_rows() -> None:
    rec = simulate_plant()
    frame = rec.frame[normal_running(rec)]
    for pump in ("pump1", "pump2", "pump3"):
        speed, flow = frame[f"{pump}.speed_rpm"], frame[f"{pump}.flow_m3h"]
        assert speed.corr(flow) > 0.9
        assert flow.corr(frame[f"{pump}.current_A"]) > 0.9
        assert flow.corr(frame[f"{pump}.power_kW"]) > 0.9
        assert speed.corr(frame[f"{pump}.outlet_pressure_bar"]) > 0.9
        assert speed.corr(frame[f"{pump}.vibration_mms"]) > 0.9
    pumps = frame[[f"pump{i}.flow_m3h" for i in (1, 2, 3)]].sum(axis=1)
    assert np.abs(frame["header.flow_m3h"] - pumps).max() < 6.0  # the header carries the pumps' flow


def test_speed_follows_the_operating_mode() -> None:
    rec = simulate_plant()
    normal = normal_running(rec)
    speed = rec.frame["pump1.speed_rpm"].to_numpy()
    medians = [np.median(speed[normal & (rec.modes == m)]) for m in MODES[1:]]
    assert medians == sorted(medians)
    assert medians[-1] - medians[0] > 400


def test_downstream_temperature_lags_upstream() -> None:
    rec = simulate_plant()
    tank = rec.frame["tank.temp_C"].to_numpy()
    hx_in = rec.frame["hx.inlet_temp_C"].to_numpy()
    tank, hx_in = tank - tank.mean(), hx_in - hx_in.mean()
    lags = range(0, 121, 5)
    best = max(lags, key=lambda k: float(np.dot(tank[: len(tank) - k], hx_in[k:])))
    assert best > 0


def test_sensor_faults_show_in_their_readings() -> None:
    rec = simulate_plant()
    by_kind = {i.kind: i for i in rec.incidents}
    dropout = by_kind["dropout"]
    readings = rec.frame[dropout.sensors[0]].to_numpy()
    assert (readings[dropout.start : dropout.end] == 0.0).all()
    assert (readings[dropout.start - 60 : dropout.start] != 0.0).all()

    stuck = by_kind["stuck_sensor"]
    readings = rec.frame[stuck.sensors[0]].to_numpy()
    assert np.ptp(readings[stuck.start : stuck.end]) == 0.0
    assert np.ptp(readings[stuck.start - 60 : stuck.start]) > 0.0

    drift = by_kind["drift"]
    readings = rec.frame[drift.sensors[0]].to_numpy()
    early, late = readings[drift.start : drift.start + 60], readings[drift.end - 60 : drift.end]
    noise = np.diff(readings[drift.start - 120 : drift.start]).std()
    assert abs(late.mean() - early.mean()) > 10 * noise

    spike = by_kind["spike"]
    readings = rec.frame[spike.sensors[0]].to_numpy()
    around = np.r_[readings[spike.start - 30 : spike.start], readings[spike.end : spike.end + 30]]
    assert np.abs(readings[spike.start : spike.end] - np.median(around)).min() > 5 * around.std()


def test_physical_incidents_move_the_process() -> None:
    rec = simulate_plant()
    frame = rec.frame
    valve = next(i for i in rec.incidents if i.kind == "valve_closing")
    pump = valve.sensors[0].split(".")[0]
    ratio = (frame[f"{pump}.flow_m3h"] / frame[f"{pump}.speed_rpm"]).to_numpy()
    before = ratio[valve.start - 120 : valve.start].mean()
    closed = ratio[valve.start + 120 : valve.start + 200].mean()  # the valve is held nearly shut
    assert closed < 0.7 * before

    for inc in (i for i in rec.incidents if i.kind == "contextual"):
        machine = inc.sensors[0].split(".")[0]
        mode = rec.modes[inc.start + inc.duration // 2]
        assert mode in {"idle", "low_load"}
        middle = slice(inc.start + 60, inc.start + 120)
        speed = frame[f"{machine}.speed_rpm"]
        full_load = speed[normal_running(rec) & (rec.modes == "full_load")].median()
        assert speed.iloc[middle].mean() > 0.95 * full_load

    wear = next(i for i in rec.incidents if i.kind == "bearing_wear")
    worn = wear.sensors[0].split(".")[0]
    others = [f"pump{k}.vibration_mms" for k in (1, 2, 3) if f"pump{k}" != worn]
    # Compared with the other pumps, which run at the same speed, the worn pump vibrates more and more.
    excess = (frame[f"{worn}.vibration_mms"] - frame[others].mean(axis=1)).to_numpy()
    assert excess[wear.start + 300 : wear.start + 420].mean() > excess[wear.start - 120 : wear.start].mean() + 1


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_short_run_is_valid(seed: int) -> None:
    rec = simulate_plant(hours=1.0, seed=seed)
    assert rec.frame.shape == (3600, 61)
    assert rec.train_rows == 1350
    assert {i.category for i in rec.incidents} == CATEGORIES
    assert rec.incidents[0].start >= rec.train_rows
    assert set(rec.modes[: rec.train_rows]) == set(MODES)
    assert np.isfinite(rec.frame.to_numpy()).all()


def test_train_hours_is_honoured() -> None:
    rec = simulate_plant(hours=2.0, train_hours=1.0)
    assert rec.train_rows == 3600
    assert rec.incidents[0].start >= 3600


@pytest.mark.parametrize("hours", [0.1, 0.3, 0.6])
def test_too_short_runs_are_rejected(hours: float) -> None:
    with pytest.raises(InvalidInputError, match="too short"):
        simulate_plant(hours=hours)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hours": -1.0}, "hours must be a positive"),
        ({"hours": math.nan}, "hours must be a positive"),
        ({"hours": True}, "hours must be a positive"),
        ({"train_hours": 0.0}, "train_hours must be a positive"),
        ({"hours": 2.0, "train_hours": 2.0}, "must be shorter"),
        ({"hours": 2.0, "train_hours": 0.1}, "too short"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"start": "not a time"}, "start"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        simulate_plant(**kwargs)  # type: ignore[arg-type]


def test_recording_arrays_are_read_only() -> None:
    rec = simulate_plant(hours=1.0)
    with pytest.raises(ValueError, match="read-only"):
        rec.labels[0] = True
    with pytest.raises(ValueError, match="read-only"):
        rec.modes[0] = "idle"
    with pytest.raises(TypeError):
        rec.machines["pump1"] = ()  # type: ignore[index]


def test_recording_helpers() -> None:
    rec = simulate_plant(hours=1.0)
    assert len(rec.train_frame) == rec.train_rows
    assert len(rec.test_frame) == len(rec.frame) - rec.train_rows
    assert rec.sensors == tuple(rec.frame.columns)


def test_incident_checks_its_fields() -> None:
    with pytest.raises(InvalidInputError, match="unknown incident kind"):
        Incident("meltdown", "point", 0, 1, ("a.b_C",), "")
    with pytest.raises(InvalidInputError, match="category"):
        Incident("spike", "collective", 0, 1, ("a.b_C",), "")
    with pytest.raises(InvalidInputError, match="start < end"):
        Incident("spike", "point", 5, 5, ("a.b_C",), "")
    with pytest.raises(InvalidInputError, match="names no sensor"):
        Incident("spike", "point", 5, 6, (), "")


def test_default_run_is_fast() -> None:
    started = time.perf_counter()
    simulate_plant()
    assert time.perf_counter() - started < 5.0
