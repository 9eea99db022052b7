"""SKAB (Skoltech Anomaly Benchmark) under its official per-file protocol."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

from vigil.data.benchmarks import Benchmark, BenchmarkPart, dataset_path, natural_key, select_parts
from vigil.data.tables import read_table, split_rows
from vigil.errors import DatasetNotFoundError

__all__ = ["SKAB_FOLDERS", "SKAB_PROTOCOL", "SKAB_SENSORS", "SKAB_TRAIN_ROWS", "load_skab"]

SKAB_FOLDERS = ("other", "valve1", "valve2")
"""Folders of the labelled experiments; ``anomaly-free/`` is not part of the protocol."""

SKAB_SENSORS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)
"""The eight sensor columns used as features."""

SKAB_TRAIN_ROWS = 400

SKAB_PROTOCOL = (
    "SKAB official protocol (current leaderboard): each of the 34 labelled experiment files "
    "(valve1/0-15, valve2/0-3, other/1-14; anomaly-free.csv is not used) is its own part. Features are the "
    "8 sensor columns; the label is 'anomaly' (non-zero = anomalous); 'changepoint' is dropped. The first "
    f"{SKAB_TRAIN_ROWS} rows of each file, in file order, are the training set (fit scaler, model and "
    "threshold there; their labels are not used, and other/2 has 296 anomalous rows among them); the "
    "remaining rows of the same file are the test set. One model per file, nothing shared across files. "
    "Outlier metrics are point-wise without point-adjust, with TP/FP/FN/TN summed over the test parts of "
    "all 34 files (micro): F1, FAR = FP/(FP+TN), MAR = FN/(FN+TP). Flagging every test point already "
    "gives F1 0.698, so FAR and MAR are reported beside F1."
)


def load_skab(
    data_dir: str | PathLike[str] | None = None,
    *,
    files: Sequence[str] | None = None,
) -> Benchmark:
    """Load the 34 labelled SKAB experiments, each split into its first 400 rows and the rest.

    Each file is read with :func:`vigil.data.tables.read_table` (``sep=";"``, time ``datetime``, label
    ``anomaly``, ``changepoint`` dropped, exactly the 8 sensor columns), so any bad cell is an error
    naming the file and line. The timestamps of all 34 files are unique and strictly increasing (checked
    on the published data), so the strict time checks apply and no row is ever dropped or reordered:
    the split is positional, as in the official code. Should a future copy of the data break that, the
    load fails loudly instead of silently changing the split.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The folder holding ``skab/``; defaults to ``$VIGIL_DATA_DIR``.
    files : sequence of str, optional
        Load only these parts, named ``"<folder>/<number>"`` (for example ``"valve1/0"``).

    Returns
    -------
    Benchmark
        Parts in natural order of their names (``other/1`` ... ``other/14``, ``valve1/0`` ...
        ``valve1/15``, ``valve2/0`` ... ``valve2/3``). ``time_test`` holds the test timestamps;
        ``extra["file"]`` is the file's path within ``skab/`` and ``extra["y_train"]`` the labels of the
        training rows (for reporting contamination only; the protocol does not use them).

    Raises
    ------
    DatasetNotFoundError
        ``skab/`` or one of its experiment folders is missing.
    InvalidInputError
        A file has a bad cell, timestamp or header, or fewer than 401 rows.
    """
    root = dataset_path(data_dir, "skab")
    paths = {}
    for folder in SKAB_FOLDERS:
        if not (root / folder).is_dir():
            msg = f"SKAB folder not found: expected {root / folder}"
            raise DatasetNotFoundError(msg)
        for path in (root / folder).glob("*.csv"):
            paths[f"{folder}/{path.stem}"] = path
    names = select_parts(sorted(paths, key=natural_key), files, what="SKAB files")
    parts = []
    for name in names:
        table = read_table(
            paths[name],
            sep=";",
            label="anomaly",
            time="datetime",
            drop=("changepoint",),
            columns=SKAB_SENSORS,
        )
        train, test = split_rows(table, SKAB_TRAIN_ROWS)
        assert test.y is not None  # read with label="anomaly"
        parts.append(
            BenchmarkPart(
                name=name,
                X_train=train.X,
                X_test=test.X,
                y_test=test.y,
                time_test=test.time,
                extra={"file": f"{name}.csv", "y_train": train.y},
            )
        )
    return Benchmark(name="skab", protocol=SKAB_PROTOCOL, parts=parts)
