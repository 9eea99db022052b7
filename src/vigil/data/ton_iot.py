"""TON_IoT device telemetry (the seven ``Train_Test`` files) under a chronological normal-only protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.data.benchmarks import Benchmark, BenchmarkPart, dataset_path, select_parts
from vigil.data.tables import to_numeric_frame
from vigil.errors import DatasetNotFoundError, InvalidInputError, SchemaError

__all__ = [
    "TON_IOT_CATEGORIES",
    "TON_IOT_DEVICES",
    "TON_IOT_PROTOCOL",
    "TON_IOT_TRAIN_FRACTION",
    "encode_categories",
    "load_ton_iot",
]

TON_IOT_DEVICES = {
    "fridge": "Train_Test_IoT_Fridge.csv",
    "gps_tracker": "Train_Test_IoT_GPS_Tracker.csv",
    "garage_door": "Train_Test_IoT_Garage_Door.csv",
    "modbus": "Train_Test_IoT_Modbus.csv",
    "motion_light": "Train_Test_IoT_Motion_Light.csv",
    "thermostat": "Train_Test_IoT_Thermostat.csv",
    "weather": "Train_Test_IoT_Weather.csv",
}
"""Part name → file in ``ton_iot_telemetry/v1_train_test_no_ts/``, in part order."""

TON_IOT_CATEGORIES: Mapping[str, Mapping[str, float]] = {
    "temp_condition": {"low": 0.0, "high": 1.0},
    "door_state": {"closed": 0.0, "open": 1.0},
    "sphone_signal": {"false": 0.0, "true": 1.0, "0": 0.0, "1": 1.0},
    "light_status": {"off": 0.0, "on": 1.0},
}
"""Text columns and their codes; values are matched after stripping spaces and lower-casing."""

TON_IOT_TRAIN_FRACTION = 0.7

_META = ("date", "time", "label", "type")

TON_IOT_PROTOCOL = (
    "TON_IoT telemetry (v1 Train_Test files, 7 devices; no official split exists, so Vigil uses a "
    "chronological normal-only one). Each device file is its own part. Cells are stripped of spaces and "
    "the text columns are coded as numbers (temp_condition low/high = 0/1, door_state closed/open = 0/1, "
    "sphone_signal false/true or 0/1 = 0/1, light_status off/on = 0/1). Rows are put in time order by a "
    "stable sort on date+time (the files are not in time order); date and time are then dropped and "
    "never given to the model, because every normal row was recorded 31 Mar-2 Apr 2019 and every attack "
    "23-29 Apr 2019, so they identify the label. The type column is kept aside as the attack type. "
    f"Train = the first {TON_IOT_TRAIN_FRACTION:.0%} (rounded down) of the normal rows in time order; "
    "test = all other rows in time order, i.e. the later normal rows followed by every attack row. The "
    "label is 'label' (1 = attack); results are reported binary (point-wise F1, FAR, MAR, AUC-PR) and per "
    "attack type (detection rate per type)."
)


def encode_categories(
    raw: pd.DataFrame,
    *,
    source: str,
    lines: NDArray[np.int64] | None = None,
    categories: Mapping[str, Mapping[str, float]] = TON_IOT_CATEGORIES,
) -> pd.DataFrame:
    """Replace the known text columns of ``raw`` by their numeric codes; other columns pass through.

    Parameters
    ----------
    raw : pandas.DataFrame
        Cells as text.
    source : str
        The file name used in error messages.
    lines : numpy.ndarray of int, optional
        The 1-based file line of each row; by default row ``i`` is line ``i + 2``.
    categories : mapping
        Column → {text value → code}; values are compared stripped and lower-cased.

    Raises
    ------
    InvalidInputError
        A cell of a coded column has a value outside its mapping; the message names line and column.

    Examples
    --------
    >>> raw = pd.DataFrame({"light_status": [" on", " off"], "motion_status": ["1", "0"]})
    >>> encode_categories(raw, source="light.csv")["light_status"].tolist()
    [1.0, 0.0]
    >>> encode_categories(pd.DataFrame({"light_status": ["dim"]}), source="light.csv")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: light.csv: line 2, column 'light_status' has 'dim', expected one of ...
    """
    lines = np.arange(2, len(raw) + 2, dtype=np.int64) if lines is None else lines
    out = raw.copy()
    for col, mapping in categories.items():
        if col not in raw.columns:
            continue
        coded = raw[col].str.strip().str.lower().map(dict(mapping))
        missing = coded.isna().to_numpy()
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            msg = (
                f"{source}: line {lines[i]}, column {col!r} has {raw[col].iloc[i]!r}, expected one of {sorted(mapping)}"
            )
            raise InvalidInputError(msg)
        out[col] = coded.astype(np.float64)
    return out


def _read_device(path: Path) -> tuple[pd.DataFrame, NDArray[np.bool_], NDArray[np.object_], pd.Series]:
    """Return features, labels, attack types and timestamps of one file, in file order."""
    where = str(path)
    if not path.is_file():
        msg = f"TON_IoT file not found: expected {path}"
        raise DatasetNotFoundError(msg)
    raw = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False, na_filter=False)
    missing = [c for c in _META if c not in raw.columns]
    if missing:
        msg = f"{where}: line 1 (header) lacks the columns {missing}; it has {list(raw.columns)}"
        raise SchemaError(msg)
    lines = np.arange(2, len(raw) + 2, dtype=np.int64)
    features = [c for c in raw.columns if c not in _META]
    X = to_numeric_frame(encode_categories(raw[features], source=where, lines=lines), source=where, lines=lines)

    label = raw["label"].str.strip()
    bad = ~label.isin(("0", "1")).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = f"{where}: line {lines[i]}, column 'label' is {raw['label'].iloc[i]!r}, expected 0 or 1"
        raise InvalidInputError(msg)
    y = (label == "1").to_numpy()
    kind = raw["type"].str.strip().str.lower()
    mismatch = (kind == "normal").to_numpy() == y
    if mismatch.any():
        i = int(np.flatnonzero(mismatch)[0])
        msg = f"{where}: line {lines[i]} has label {label.iloc[i]} but type {raw['type'].iloc[i]!r}"
        raise InvalidInputError(msg)

    stamp_text = raw["date"].str.strip() + " " + raw["time"].str.strip()
    stamps = pd.to_datetime(stamp_text, format="%d-%b-%y %H:%M:%S", errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = f"{where}: line {lines[i]}, columns 'date'/'time' are not a date like 25-Apr-19 and a time: "
        msg += f"{raw['date'].iloc[i]!r}, {raw['time'].iloc[i]!r}"
        raise InvalidInputError(msg)
    return X, y, kind.to_numpy(dtype=object), stamps


def load_ton_iot(
    data_dir: str | PathLike[str] | None = None,
    *,
    devices: Sequence[str] | None = None,
) -> Benchmark:
    """Load the seven TON_IoT device files, each split chronologically with a normal-only training set.

    The steps are those stated in :data:`TON_IOT_PROTOCOL`: strip and code the text columns, sort the
    rows by date+time with a stable sort (rows with equal timestamps keep their file order), drop date
    and time, keep ``type`` aside, then train on the first 70 % of the normal rows and test on the rest.
    Sorting by time is required because the files are concatenated blocks of rows, not a time series:
    every file starts with attack rows, and its normal rows sit in a few blocks further down.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The folder holding ``ton_iot_telemetry/``; defaults to ``$VIGIL_DATA_DIR``.
    devices : sequence of str, optional
        Load only these devices (keys of :data:`TON_IOT_DEVICES`, for example ``["fridge"]``).

    Returns
    -------
    Benchmark
        One part per device in the order of :data:`TON_IOT_DEVICES`. ``X_*`` hold only the device's
        sensor columns (never date, time, label or type). ``time_test`` is None on purpose: the
        timestamps give the label away. ``extra["attack_type_test"]`` holds the type of each test row
        (``"normal"``, ``"ddos"``, ...), ``extra["line_test"]`` each test row's line in the file (the
        header is line 1), and ``extra["file"]`` the file name.

    Raises
    ------
    DatasetNotFoundError
        The data folder or a device file is missing.
    InvalidInputError
        A cell is malformed (the message names the file, line and column), or ``label`` and ``type``
        disagree.
    """
    folder = dataset_path(data_dir, "ton_iot_telemetry", "v1_train_test_no_ts")
    names = select_parts(list(TON_IOT_DEVICES), devices, what="TON_IoT devices")
    parts = []
    for name in names:
        path = folder / TON_IOT_DEVICES[name]
        X, y, kind, stamps = _read_device(path)
        order = np.argsort(stamps.to_numpy(), kind="stable")
        normal_rows = order[~y[order]]
        n_train = int(len(normal_rows) * TON_IOT_TRAIN_FRACTION)
        if n_train == 0:
            msg = f"{path}: too few normal rows ({len(normal_rows)}) to train on"
            raise InvalidInputError(msg)
        is_train = np.zeros(len(y), dtype=bool)
        is_train[normal_rows[:n_train]] = True
        train_rows = normal_rows[:n_train]
        test_rows = order[~is_train[order]]
        parts.append(
            BenchmarkPart(
                name=name,
                X_train=X.iloc[train_rows].reset_index(drop=True),
                X_test=X.iloc[test_rows].reset_index(drop=True),
                y_test=y[test_rows],
                time_test=None,
                extra={
                    "attack_type_test": kind[test_rows],
                    "line_test": test_rows + 2,
                    "file": path.name,
                },
            )
        )
    return Benchmark(name="ton-iot", protocol=TON_IOT_PROTOCOL, parts=parts)
