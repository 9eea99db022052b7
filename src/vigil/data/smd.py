"""SMD (Server Machine Dataset) under its official per-machine protocol, with root-cause labels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.data.benchmarks import Benchmark, BenchmarkPart, dataset_path, natural_key, select_parts
from vigil.data.tables import to_numeric_frame
from vigil.errors import DatasetNotFoundError, InvalidInputError, SchemaError

__all__ = ["SMD_COLUMNS", "SMD_PROTOCOL", "load_smd", "parse_interpretation", "smd_machines"]

SMD_COLUMNS = tuple(f"m{k:02d}" for k in range(1, 39))
"""Names of the 38 metrics, 1-based (``m01`` ... ``m38``) like the dimensions of the root-cause labels."""

SMD_PROTOCOL = (
    "SMD (OmniAnomaly) official protocol: each machine is its own part; only the 19 machines whose "
    "train/test values are available are used (machine-1-1, 2-6, 2-9, 3-1, 3-6, 3-7, 3-8, 3-9, 3-11 "
    "have labels only). Features are the 38 metrics m01..m38, min-max normalised by the publishers, "
    "at 1-minute steps. Train on the first half of each machine's series (train/<machine>, unlabelled, "
    "mostly but not certainly normal) and score the second half (test/<machine>) against "
    "test_label/<machine>. Results are point-wise without point-adjust (F1, AUC-PR, VUS-PR), either per "
    "machine and averaged or over the concatenated test parts; point-adjusted F1 is inflated (a random "
    "score reaches 0.80). Root-cause ground truth (interpretation_label/<machine>: test-row ranges "
    "[start, end) with 1-based metric numbers) is scored with HitRate@100% and @150%."
)

_INTERPRETATION_LINE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*:\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*$")


def smd_machines(data_dir: str | PathLike[str] | None = None) -> list[str]:
    """Return the machines that have both train and test values, in natural order.

    Raises
    ------
    DatasetNotFoundError
        ``smd/`` is not under the data folder.
    """
    return _machines(dataset_path(data_dir, "smd"))


def _machines(root: Path) -> list[str]:
    suffix = ".txt.gz"
    train = {p.name[: -len(suffix)] for p in (root / "train").glob(f"*{suffix}")}
    test = {p.name[: -len(suffix)] for p in (root / "test").glob(f"*{suffix}")}
    return sorted(train & test, key=natural_key)


def parse_interpretation(
    text: str,
    *,
    source: str,
    n_rows: int | None = None,
    n_dims: int = len(SMD_COLUMNS),
) -> list[tuple[int, int, list[int]]]:
    """Parse root-cause labels: one ``start-end:d1,d2,...`` per line, ``end`` exclusive, 1-based dims.

    Parameters
    ----------
    text : str
        The file's contents; blank lines are skipped.
    source : str
        The file name used in error messages.
    n_rows : int, optional
        Number of test rows; ranges must lie within it.
    n_dims : int
        Number of metrics; dimensions must lie in ``1..n_dims``.

    Returns
    -------
    list of (int, int, list of int)
        ``(start, end, dims)`` per line, in file order, dims as written.

    Raises
    ------
    InvalidInputError
        A line is malformed, a range is empty or out of bounds, or a dimension is out of range.

    Examples
    --------
    >>> parse_interpretation("15849-16368:1,9,10\\n16963-17517:1,2\\n", source="machine-1-2.txt")
    [(15849, 16368, [1, 9, 10]), (16963, 17517, [1, 2])]
    >>> parse_interpretation("10-5:1\\n", source="m.txt")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: m.txt: line 1: empty range 10-5 (start must be below end)
    """
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _INTERPRETATION_LINE.match(line)
        if match is None:
            msg = f"{source}: line {number}: expected 'start-end:dim,dim,...', got {line!r}"
            raise InvalidInputError(msg)
        start, end = int(match[1]), int(match[2])
        dims = [int(d) for d in match[3].split(",")]
        if start >= end:
            msg = f"{source}: line {number}: empty range {start}-{end} (start must be below end)"
            raise InvalidInputError(msg)
        if n_rows is not None and end > n_rows:
            msg = f"{source}: line {number}: range {start}-{end} ends after the {n_rows} test rows"
            raise InvalidInputError(msg)
        bad = [d for d in dims if not 1 <= d <= n_dims]
        if bad:
            msg = f"{source}: line {number}: dimensions {bad} are outside 1..{n_dims}"
            raise InvalidInputError(msg)
        out.append((start, end, dims))
    return out


def _require(path: Path) -> Path:
    if not path.is_file():
        msg = f"SMD file not found: expected {path}"
        raise DatasetNotFoundError(msg)
    return path


def _read_values(path: Path) -> pd.DataFrame:
    where = str(path)
    try:
        frame = pd.read_csv(path, header=None, dtype=np.float64, engine="c")
    except pd.errors.ParserError as exc:
        msg = f"{where}: not a valid comma-separated file: {str(exc).strip()}"
        raise InvalidInputError(msg) from exc
    except ValueError:
        # A cell that is not a number: read the text again to say which one.
        raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, na_filter=False)
        raw.columns = list(SMD_COLUMNS[: raw.shape[1]]) + [f"extra{k}" for k in range(raw.shape[1] - 38)]
        to_numeric_frame(raw, source=where, lines=np.arange(1, len(raw) + 1))
        raise
    if frame.shape[1] != len(SMD_COLUMNS):
        msg = f"{where}: expected {len(SMD_COLUMNS)} comma-separated values per line, found {frame.shape[1]}"
        raise SchemaError(msg)
    frame.columns = list(SMD_COLUMNS)
    values = frame.to_numpy()
    if not np.isfinite(values).all():
        to_numeric_frame(frame, source=where, lines=np.arange(1, len(frame) + 1))  # raises, located
    return frame


def _read_labels(path: Path, n_rows: int) -> NDArray[np.bool_]:
    values = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, na_filter=False)
    if values.shape[1] != 1:
        msg = f"{path}: expected one label per line, found {values.shape[1]} fields"
        raise SchemaError(msg)
    raw = values[0]
    labels = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = f"{path}: line {i + 1} is {raw.iloc[i]!r}, expected 0 or 1"
        raise InvalidInputError(msg)
    if len(labels) != n_rows:
        msg = f"{path}: {len(labels)} labels for {n_rows} test rows"
        raise InvalidInputError(msg)
    return labels == 1.0


def load_smd(
    data_dir: str | PathLike[str] | None = None,
    *,
    machines: Sequence[str] | None = None,
) -> Benchmark:
    """Load the SMD machines that have values, each as train half / test half, with root causes.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The folder holding ``smd/``; defaults to ``$VIGIL_DATA_DIR``.
    machines : sequence of str, optional
        Load only these machines (for example ``["machine-1-2"]``).

    Returns
    -------
    Benchmark
        One part per machine, in natural order (``machine-1-2`` ... ``machine-1-8``, ``machine-2-1`` ...,
        ``machine-3-10`` last). Columns are ``m01`` ... ``m38``. ``time_test`` is None (the files carry no
        timestamps; rows are 1-minute steps). ``extra["interpretation"]`` lists the root-cause labels as
        ``(start, end, dims)``: test rows ``start:end`` (end exclusive) and 1-based metric numbers, so
        metric ``d`` is column ``f"m{d:02d}"``.

    Raises
    ------
    DatasetNotFoundError
        ``smd/`` or a file of a requested machine is missing.
    InvalidInputError
        A value is not a finite number, a label is not 0/1, the label count differs from the test rows,
        or a root-cause line is malformed.
    """
    root = dataset_path(data_dir, "smd")
    names = select_parts(_machines(root), machines, what="SMD machines with train/test values")
    parts = []
    for name in names:
        X_train = _read_values(_require(root / "train" / f"{name}.txt.gz"))
        X_test = _read_values(_require(root / "test" / f"{name}.txt.gz"))
        y_test = _read_labels(_require(root / "test_label" / f"{name}.txt"), len(X_test))
        interpretation_path = _require(root / "interpretation_label" / f"{name}.txt")
        interpretation = parse_interpretation(
            interpretation_path.read_text(encoding="utf-8"),
            source=str(interpretation_path),
            n_rows=len(X_test),
        )
        parts.append(
            BenchmarkPart(
                name=name,
                X_train=X_train,
                X_test=X_test,
                y_test=y_test,
                time_test=None,
                extra={"interpretation": interpretation},
            )
        )
    return Benchmark(name="smd", protocol=SMD_PROTOCOL, parts=parts)
