"""Benchmark loaders: official protocols and the counts verified in each data set's MANIFEST.md."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.data.benchmarks import BENCHMARKS, load_benchmark, natural_key, resolve_data_dir
from vigil.data.skab import SKAB_SENSORS, load_skab
from vigil.data.smd import SMD_COLUMNS, load_smd, parse_interpretation
from vigil.data.ton_iot import TON_IOT_DEVICES, load_ton_iot
from vigil.errors import DatasetNotFoundError, InvalidInputError


@pytest.fixture
def data_dir() -> Path:
    value = os.environ.get("VIGIL_DATA_DIR")
    if not value:
        pytest.skip("VIGIL_DATA_DIR is not set: point it at the folder holding skab/, smd/, ton_iot_telemetry/")
    return Path(value)


# --- no data needed -------------------------------------------------------------------------------


def test_no_data_dir_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match="VIGIL_DATA_DIR") as info:
        resolve_data_dir()
    assert "--data-dir" in str(info.value)


def test_data_dir_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("VIGIL_DATA_DIR", str(missing))
    with pytest.raises(DatasetNotFoundError) as info:
        resolve_data_dir()
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("skab", "skab"), ("smd", "smd"), ("ton-iot", os.path.join("ton_iot_telemetry", "v1_train_test_no_ts"))],
)
def test_missing_data_set_names_expected_path(tmp_path: Path, name: str, expected: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_benchmark(name, tmp_path)
    message = str(info.value)
    assert str(tmp_path / expected) in message
    assert "VIGIL_DATA_DIR" in message and "--data-dir" in message


def test_unknown_benchmark() -> None:
    with pytest.raises(InvalidInputError, match="unknown benchmark 'nab'; available: skab, smd, ton-iot"):
        load_benchmark("nab")
    assert BENCHMARKS == ("skab", "smd", "ton-iot")


def test_natural_order_of_machines() -> None:
    names = ["machine-3-10", "machine-2-1", "machine-1-8", "machine-3-2", "machine-1-2"]
    assert sorted(names, key=natural_key) == [
        "machine-1-2",
        "machine-1-8",
        "machine-2-1",
        "machine-3-2",
        "machine-3-10",
    ]


def test_parse_interpretation() -> None:
    text = "15849-16368:1,9,10,12\n\n16963-17517:1,2,3,4,6,7,9\n"
    assert parse_interpretation(text, source="m.txt", n_rows=20000) == [
        (15849, 16368, [1, 9, 10, 12]),
        (16963, 17517, [1, 2, 3, 4, 6, 7, 9]),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1-5:1\nfoo\n", "line 2: expected 'start-end:dim,dim,...', got 'foo'"),
        ("1-5:0\n", "line 1: dimensions [0] are outside 1..38"),
        ("1-5:39\n", "line 1: dimensions [39] are outside 1..38"),
        ("5-5:1\n", "line 1: empty range 5-5"),
        ("1-11:1\n", "line 1: range 1-11 ends after the 10 test rows"),
    ],
)
def test_parse_interpretation_rejects(text: str, problem: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_interpretation(text, source="m.txt", n_rows=10)
    assert str(info.value).startswith(f"m.txt: {problem}")


def test_unknown_part_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "smd" / "train").mkdir(parents=True)
    (tmp_path / "smd" / "test").mkdir()
    with pytest.raises(InvalidInputError, match=r"unknown SMD machines with train/test values \['machine-1-1'\]"):
        load_smd(tmp_path, machines=["machine-1-1"])


# --- real data --------------------------------------------------------------------------------------


@pytest.mark.data
def test_skab_official_split(data_dir: Path) -> None:
    bench = load_benchmark("skab", data_dir)
    assert bench.name == "skab"
    assert "first 400 rows" in bench.protocol
    assert len(bench.parts) == 34
    names = [p.name for p in bench.parts]
    assert names[:3] == ["other/1", "other/2", "other/3"]
    assert names[-1] == "valve2/3"
    assert Counter(n.split("/")[0] for n in names) == {"valve1": 16, "valve2": 4, "other": 14}
    assert all(len(p.X_train) == 400 for p in bench.parts)
    assert sum(len(p.X_test) for p in bench.parts) == 23_801
    assert sum(int(p.y_test.sum()) for p in bench.parts) == 12_771
    assert sum(int(p.extra["y_train"].sum()) for p in bench.parts) == 296
    assert int(bench.parts[1].extra["y_train"].sum()) == 296  # all in other/2
    for part in bench.parts:
        assert list(part.X_train.columns) == list(SKAB_SENSORS) == list(part.X_test.columns)
        assert (part.X_test.dtypes == np.float64).all()
        assert part.y_test.dtype == np.bool_ and len(part.y_test) == len(part.X_test)
        assert isinstance(part.time_test, pd.DatetimeIndex) and len(part.time_test) == len(part.X_test)
        assert part.time_test.is_monotonic_increasing


@pytest.mark.data
def test_skab_subset_keeps_rows_in_file_order(data_dir: Path) -> None:
    (part,) = load_skab(data_dir, files=["valve1/0"]).parts
    raw = pd.read_csv(data_dir / "skab" / "valve1" / "0.csv", sep=";")
    np.testing.assert_array_equal(part.X_test.to_numpy(), raw[list(SKAB_SENSORS)].to_numpy()[400:])
    np.testing.assert_array_equal(part.y_test, raw["anomaly"].to_numpy()[400:] != 0)


@pytest.mark.data
def test_smd_subset_and_interpretation(data_dir: Path) -> None:
    bench = load_smd(data_dir, machines=["machine-3-10", "machine-1-2"])
    assert [p.name for p in bench.parts] == ["machine-1-2", "machine-3-10"]
    m12 = bench.parts[0]
    assert m12.X_train.shape == (23_694, 38) and m12.X_test.shape == (23_694, 38)
    assert list(m12.X_test.columns) == list(SMD_COLUMNS)
    assert SMD_COLUMNS[0] == "m01" and SMD_COLUMNS[-1] == "m38"
    assert int(m12.y_test.sum()) == 542
    assert m12.time_test is None
    ranges = m12.extra["interpretation"]
    assert len(ranges) == 10
    assert ranges[0] == (4629, 4688, [9, 10, 11, 13, 15, 18])
    for start, end, dims in ranges:
        assert m12.y_test[start:end].all()
        assert all(1 <= d <= 38 for d in dims)
    assert int(bench.parts[1].y_test.sum()) == 1_047


@pytest.mark.data
def test_smd_all_machines_totals(data_dir: Path) -> None:
    bench = load_benchmark("smd", data_dir)
    names = [p.name for p in bench.parts]
    assert len(names) == 19
    assert names[:7] == [f"machine-1-{k}" for k in range(2, 9)]
    assert names[-1] == "machine-3-10"
    assert "machine-1-1" not in names
    assert sum(len(p.X_test) for p in bench.parts) == 450_232
    assert sum(int(p.y_test.sum()) for p in bench.parts) == 20_763
    assert all(23_687 <= len(p.X_train) <= 23_706 for p in bench.parts)
    assert all(np.isfinite(p.X_train.to_numpy()).all() for p in bench.parts)


@pytest.mark.data
def test_ton_iot_devices_and_labels(data_dir: Path) -> None:
    bench = load_benchmark("ton-iot", data_dir)
    assert [p.name for p in bench.parts] == list(TON_IOT_DEVICES)
    assert len(bench.parts) == 7
    assert "date" in bench.protocol and "70%" in bench.protocol
    attacks = {
        "fridge": 24_944,
        "gps_tracker": 23_960,
        "garage_door": 24_587,
        "modbus": 16_106,
        "motion_light": 24_488,
        "thermostat": 17_774,
        "weather": 24_260,
    }
    for part in bench.parts:
        columns = set(part.X_train.columns)
        assert not columns & {"date", "time", "ts", "label", "type"}
        assert list(part.X_train.columns) == list(part.X_test.columns)
        assert (part.X_test.dtypes == np.float64).all()
        assert part.time_test is None
        assert len(part.X_train) == 10_500  # 70 % of the 15,000 normal rows
        kinds = part.extra["attack_type_test"]
        assert len(kinds) == len(part.X_test) == len(part.y_test) == len(part.extra["line_test"])
        np.testing.assert_array_equal(part.y_test, kinds != "normal")
        assert int((~part.y_test).sum()) == 4_500
        assert int(part.y_test.sum()) == attacks[part.name]
    fridge = bench.parts[0]
    assert set(fridge.X_train["temp_condition"].unique()) <= {0.0, 1.0}
    assert Counter(fridge.extra["attack_type_test"])["xss"] == 2_042


@pytest.mark.data
def test_ton_iot_test_rows_follow_training_rows_in_time(data_dir: Path) -> None:
    (part,) = load_ton_iot(data_dir, devices=["thermostat"]).parts
    raw = pd.read_csv(
        data_dir / "ton_iot_telemetry" / "v1_train_test_no_ts" / TON_IOT_DEVICES["thermostat"],
        encoding="utf-8-sig",
    )
    stamps = pd.to_datetime(
        raw["date"].str.strip() + " " + raw["time"].str.strip(), format="%d-%b-%y %H:%M:%S"
    ).to_numpy()
    test_stamps = stamps[part.extra["line_test"] - 2]
    assert (np.diff(test_stamps.astype("int64")) >= 0).all()
    normal = raw["label"].to_numpy() == 0
    test_normal = test_stamps[~part.y_test]
    train_rows = np.setdiff1d(np.flatnonzero(normal), part.extra["line_test"] - 2)
    assert len(train_rows) == len(part.X_train)
    assert stamps[train_rows].max() <= test_normal.min()


def _write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))


def test_smd_bad_value_is_located(tmp_path: Path) -> None:
    row = ",".join(["0.5"] * 38)
    bad = ",".join(["0.5"] * 37 + ["oops"])
    _write_gz(tmp_path / "smd" / "train" / "machine-9-1.txt.gz", f"{row}\n{row}\n")
    _write_gz(tmp_path / "smd" / "test" / "machine-9-1.txt.gz", f"{row}\n{bad}\n")
    with pytest.raises(InvalidInputError) as info:
        load_smd(tmp_path)
    path = tmp_path / "smd" / "test" / "machine-9-1.txt.gz"
    assert str(info.value) == f"{path}: line 2, column 'm38' is not a number: 'oops'"


def test_smd_tiny_machine(tmp_path: Path) -> None:
    row = ",".join(["0.5"] * 38)
    _write_gz(tmp_path / "smd" / "train" / "machine-9-1.txt.gz", f"{row}\n{row}\n")
    _write_gz(tmp_path / "smd" / "test" / "machine-9-1.txt.gz", f"{row}\n{row}\n{row}\n")
    (tmp_path / "smd" / "test_label").mkdir()
    (tmp_path / "smd" / "test_label" / "machine-9-1.txt").write_text("0\n1\n1\n")
    (tmp_path / "smd" / "interpretation_label").mkdir()
    (tmp_path / "smd" / "interpretation_label" / "machine-9-1.txt").write_text("1-3:38,2\n")
    (part,) = load_benchmark("smd", tmp_path).parts
    assert part.y_test.tolist() == [False, True, True]
    assert part.extra["interpretation"] == [(1, 3, [38, 2])]
    assert part.X_train.shape == (2, 38)
