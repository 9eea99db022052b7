"""Read a user's labelled CSV into a validated numeric table, with loud, located errors.

Every problem is reported with the file, the 1-based line number in the file (the header is line 1)
and the column, and quotes the offending value. Nothing is dropped, filled or reordered silently: the
only repairs are ``drop_duplicate_times`` and ``sort_time``, both explicit.

Line numbers assume one record per line. A blank line between data lines is an error (it would
otherwise shift or hide rows); blank lines at the end of the file are ignored. A quoted field that
spans several lines shifts the numbers reported for the lines after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.errors import InvalidInputError, SchemaError

__all__ = ["Table", "read_table", "split_rows", "to_numeric_frame"]

_NAN_SPELLINGS = frozenset({"nan", "na", "n/a", "null", "none", "<na>", "nat", "-nan", "#n/a"})


@dataclass(frozen=True, eq=False)
class Table:
    """A validated table read from a file.

    Attributes
    ----------
    X : pandas.DataFrame
        The feature columns, all float64 and finite, under their original names, with a RangeIndex.
    y : numpy.ndarray of bool or None
        ``True`` where the label is non-zero (anomalous); None when no label column was named.
    time : pandas.DatetimeIndex or None
        One timestamp per row; None when no time column was named.
    source : str
        The name of the file the table was read from.
    group : numpy.ndarray of str or None
        The asset (or other group) of each row, from the ``group`` column; None when none was named.
    categorical : tuple of str
        The columns of ``X`` kept as text (``read_table(categorical=...)``); every other one is float64.

    Examples
    --------
    >>> t = Table(X=pd.DataFrame({"a": [1.0, 2.0]}), y=None, time=None, source="demo.csv")
    >>> len(t), t.source
    (2, 'demo.csv')
    """

    X: pd.DataFrame
    y: NDArray[np.bool_] | None
    time: pd.DatetimeIndex | None
    source: str
    group: NDArray[np.str_] | None = None
    categorical: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.X)


def _lines_for(n: int, lines: NDArray[np.int64] | None) -> NDArray[np.int64]:
    return np.arange(2, n + 2, dtype=np.int64) if lines is None else lines


def _describe_cell(raw: object, value: float) -> str:
    text = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw)
    stripped = text.strip()
    if stripped == "":
        return "is empty"
    if np.isinf(value):
        return f"is infinite: {text!r}"
    if stripped.lower() in _NAN_SPELLINGS:
        return f"is NaN: {text!r}"
    return f"is not a number: {text!r}"


def to_numeric_frame(
    raw: pd.DataFrame,
    *,
    source: str,
    lines: NDArray[np.int64] | None = None,
) -> pd.DataFrame:
    """Convert a frame of raw cells to finite float64 columns, or say exactly which cell is bad.

    Parameters
    ----------
    raw : pandas.DataFrame
        Cells as read from a file (strings or numbers); surrounding whitespace is allowed.
    source : str
        The file name used in error messages.
    lines : numpy.ndarray of int, optional
        The 1-based file line of each row; by default row ``i`` is line ``i + 2`` (after one header line).

    Returns
    -------
    pandas.DataFrame
        Same columns and index, float64, every value finite.

    Raises
    ------
    InvalidInputError
        A cell is empty, NaN, infinite or not a number. The message names the first such cell in file
        order (line, then column), quotes it, and counts the others.

    Examples
    --------
    >>> raw = pd.DataFrame({"temp": ["20.5", " 21 "], "rpm": ["1200", "oops"]})
    >>> to_numeric_frame(raw, source="pump.csv")["temp"].tolist()
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: pump.csv: line 3, column 'rpm' is not a number: 'oops'
    >>> to_numeric_frame(raw[["temp"]], source="pump.csv")["temp"].tolist()
    [20.5, 21.0]
    """
    lines = _lines_for(len(raw), lines)
    out: dict[object, NDArray[np.float64]] = {}
    first: tuple[int, int] | None = None  # (row, column position) of the first bad cell in file order
    n_bad = 0
    for j, col in enumerate(raw.columns):
        values = pd.to_numeric(raw[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            n_bad += int(bad.sum())
            i = int(np.flatnonzero(bad)[0])
            if first is None or i < first[0]:
                first = (i, j)
        out[col] = values
    if first is not None:
        i, j = first
        col = raw.columns[j]
        what = _describe_cell(raw[col].iloc[i], out[col][i])
        more = f" ({n_bad} bad cells in all)" if n_bad > 1 else ""
        msg = f"{source}: line {lines[i]}, column {col!r} {what}{more}"
        raise InvalidInputError(msg)
    return pd.DataFrame(out, index=raw.index, columns=raw.columns)


def _parse_label(raw: pd.Series, *, source: str, lines: NDArray[np.int64]) -> NDArray[np.bool_]:
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        text = raw.iloc[i]
        what = _describe_cell(text, values[i])
        hint = ""
        if what.startswith("is not a number"):
            hint = "; labels must be numbers (0 = normal, any other number = anomalous)"
        more = f" ({int(bad.sum())} bad labels in all)" if bad.sum() > 1 else ""
        msg = f"{source}: line {lines[i]}, label column {raw.name!r} {what}{hint}{more}"
        raise InvalidInputError(msg)
    return values != 0


def _parse_time(raw: pd.Series, *, source: str, lines: NDArray[np.int64]) -> pd.DatetimeIndex:
    name = raw.name
    stripped = raw.str.strip()
    empty = (stripped == "").to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        msg = f"{source}: line {lines[i]}, time column {name!r} is empty"
        raise InvalidInputError(msg)
    numbers = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isfinite(numbers[0]):
        # The first value decides the format: epoch seconds if it is a number, ISO 8601 otherwise.
        bad = ~np.isfinite(numbers)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            msg = (
                f"{source}: line {lines[i]}, time column {name!r} is not epoch seconds like the "
                f"first row: {raw.iloc[i]!r}"
            )
            raise InvalidInputError(msg)
        try:
            return pd.DatetimeIndex(pd.to_datetime(numbers, unit="s"), name=name)
        except (OverflowError, ValueError) as exc:
            msg = f"{source}: time column {name!r} holds epoch seconds out of range: {exc}"
            raise InvalidInputError(msg) from exc
    try:
        parsed = pd.to_datetime(stripped, format="ISO8601", errors="coerce")
    except (TypeError, ValueError) as exc:  # for example a mix of time zones
        msg = f"{source}: time column {name!r} could not be parsed: {exc}"
        raise InvalidInputError(msg) from exc
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = (
            f"{source}: line {lines[i]}, time column {name!r} is not an ISO 8601 time or epoch seconds: {raw.iloc[i]!r}"
        )
        raise InvalidInputError(msg)
    return pd.DatetimeIndex(parsed, name=name)


def _read_raw(path: Path, *, sep: str, encoding: str) -> pd.DataFrame:
    where = str(path)
    if not path.exists():
        msg = f"{where}: no such file"
        raise InvalidInputError(msg)
    if not path.is_file():
        msg = f"{where}: not a file"
        raise InvalidInputError(msg)
    try:
        header = pd.read_csv(path, sep=sep, encoding=encoding, header=None, nrows=1, dtype=str, keep_default_na=False)
        raw = pd.read_csv(
            path,
            sep=sep,
            encoding=encoding,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError as exc:
        msg = f"{where}: the file is empty (expected a header line and data rows)"
        raise InvalidInputError(msg) from exc
    except pd.errors.ParserError as exc:
        msg = f"{where}: not a valid CSV file with separator {sep!r}: {str(exc).strip()}"
        raise InvalidInputError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"{where}: not valid {encoding} text: {exc}"
        raise InvalidInputError(msg) from exc
    names = [str(v) for v in header.iloc[0].tolist()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        msg = f"{where}: line 1 (header) repeats the column names {dupes}"
        raise SchemaError(msg)
    if not isinstance(raw.index, pd.RangeIndex):  # pandas took the extra first field as an index
        msg = f"{where}: the data lines have more fields than the header (line 1) has names"
        raise SchemaError(msg)
    blank = (raw == "").all(axis=1).to_numpy()
    # Blank lines at the very end carry nothing; a blank line between data lines is an error below.
    n_rows = len(raw) - int(np.argmin(blank[::-1])) if not blank.all() else 0
    raw, blank = raw.iloc[:n_rows], blank[:n_rows]
    if n_rows == 0:
        msg = f"{where}: the file has a header but no data rows"
        raise InvalidInputError(msg)
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        msg = f"{where}: line {i + 2} is empty"
        raise InvalidInputError(msg)
    return raw


def _check_columns(
    available: list[str],
    *,
    where: str,
    label: str | None,
    time: str | None,
    drop: Sequence[str],
    columns: Sequence[str] | None,
) -> list[str]:
    named = {"label": [label] if label is not None else [], "time": [time] if time is not None else []}
    named["drop"] = list(drop)
    for role, wanted in named.items():
        missing = [c for c in wanted if c not in available]
        if missing:
            msg = f"{where}: no {role} column {missing[0]!r}; the file has the columns {available}"
            raise SchemaError(msg)
    if label is not None and label == time:
        msg = f"{where}: column {label!r} cannot be both the label and the time column"
        raise InvalidInputError(msg)
    reserved = {c for c in (label, time) if c is not None}
    if reserved & set(drop):
        msg = f"{where}: column(s) {sorted(reserved & set(drop))} are both dropped and used as label/time"
        raise InvalidInputError(msg)
    features = [c for c in available if c not in reserved and c not in set(drop)]
    if columns is not None:
        expected = list(columns)
        missing = [c for c in expected if c not in features]
        extra = [c for c in features if c not in expected]
        if missing or extra:
            msg = (
                f"{where}: line 1 (header) does not have the expected feature columns: "
                f"missing {missing}, unexpected {extra}"
            )
            raise SchemaError(msg)
        features = expected
    if not features:
        msg = f"{where}: no feature columns left after removing label, time and dropped columns"
        raise SchemaError(msg)
    return features


def _repair_time(
    time: pd.DatetimeIndex,
    lines: NDArray[np.int64],
    *,
    where: str,
    drop_duplicate_times: bool,
    sort_time: bool,
) -> NDArray[np.int64]:
    """Return the row positions to keep, in order, after the duplicate and order checks."""
    keep = np.arange(len(time))
    duplicated = time.duplicated(keep="first")
    if duplicated.any():
        if drop_duplicate_times:
            keep = keep[~duplicated]
        else:
            i = int(np.flatnonzero(duplicated)[0])
            j = int(np.flatnonzero(time == time[i])[0])
            msg = (
                f"{where}: lines {lines[j]} and {lines[i]} have the same time {time[i]} in column "
                f"{time.name!r} (--drop-duplicate-times, or drop_duplicate_times=True, keeps the first)"
            )
            raise InvalidInputError(msg)
    kept = time[keep]
    if not kept.is_monotonic_increasing:
        if sort_time:
            keep = keep[np.argsort(kept.asi8, kind="stable")]
        else:
            values = kept.asi8
            k = int(np.flatnonzero(values[1:] < values[:-1])[0]) + 1
            msg = (
                f"{where}: line {lines[keep[k]]}, time column {time.name!r} is {kept[k]}, earlier than "
                f"{kept[k - 1]} on line {lines[keep[k - 1]]} (--sort-time, or sort_time=True, sorts the rows)"
            )
            raise InvalidInputError(msg)
    return keep


def read_table(
    path: str | PathLike[str],
    *,
    label: str | None = None,
    time: str | None = None,
    drop: Sequence[str] = (),
    sep: str = ",",
    columns: Sequence[str] | None = None,
    sort_time: bool = False,
    drop_duplicate_times: bool = False,
    encoding: str = "utf-8-sig",
    group: str | None = None,
    categorical: Sequence[str] | str = (),
) -> Table:
    """Read a CSV of numeric features, with an optional label and time column, and validate every cell.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; its first line is the header.
    label : str, optional
        Column holding the label: a finite number per row, 0 = normal, any other value = anomalous.
    time : str, optional
        Column holding timestamps: ISO 8601 strings, or epoch seconds when the first value is a number.
        Timestamps must be unique and increasing unless one of the two repairs below is asked for.
    drop : sequence of str
        Columns to ignore (for example identifiers or a second label).
    group : str, optional
        Column naming each row's asset (or other group), returned as ``Table.group`` and not a feature.
        Each group is its own series: the time checks and repairs apply within a group.
    sep : str
        Field separator.
    columns : sequence of str, optional
        The expected feature columns (for example those a model was fitted with). Missing or extra
        feature columns are an error; ``X`` comes back in this order.
    sort_time : bool
        Sort rows by time with a stable sort instead of rejecting out-of-order timestamps.
    drop_duplicate_times : bool
        Drop every row whose timestamp already appeared earlier in the file (the first occurrence is
        kept) instead of rejecting duplicate timestamps. Duplicates are dropped before sorting.
    encoding : str
        Text encoding; the default also strips a UTF-8 byte-order mark.
    categorical : sequence of str or "auto"
        Feature columns kept as text (stripped) for a pipeline to one-hot encode
        (``Pipeline(categorical=...)``); an empty cell in one is an error. ``"auto"``: every feature column
        holding text that is not a number, with at most 100 distinct values
        (:func:`~vigil.features.categorical.detect_categorical`); ``Table.categorical`` says which.

    Returns
    -------
    Table
        ``X`` holds every column except label, time and ``drop`` as finite float64.

    Raises
    ------
    InvalidInputError
        No such file; an empty file or a header without rows; an empty, NaN, infinite or non-numeric
        feature or label cell; an unparseable, duplicate or out-of-order timestamp. Each message names
        the file, the line (the header is line 1) and the column, and quotes the value.
    SchemaError
        A named label, time or drop column is absent (the message lists the available ones), the
        feature columns differ from ``columns`` (it lists missing and unexpected ones), or the header
        repeats a name.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "pump.csv").write_text(
    ...     "time,temp,rpm,label\\n2024-05-01 10:00:00,20.5,1200,0\\n2024-05-01 10:00:01,80.0,900,1\\n"
    ... )
    >>> table = read_table(folder / "pump.csv", label="label", time="time")
    >>> table.X
       temp     rpm
    0  20.5  1200.0
    1  80.0   900.0
    >>> table.y
    array([False,  True])
    >>> _ = (folder / "bad.csv").write_text("temp,rpm\\n20.5,1200\\n21.0,\\n")
    >>> read_table(folder / "bad.csv")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: .../bad.csv: line 3, column 'rpm' is empty
    """
    path = Path(path)
    where = str(path)
    raw = _read_raw(path, sep=sep, encoding=encoding)
    available = [str(c) for c in raw.columns]
    _check_separator(available, sep=sep, where=where)
    ignored = [*drop, group] if group is not None else drop
    features = _check_columns(available, where=where, label=label, time=time, drop=ignored, columns=columns)
    lines = np.arange(2, len(raw) + 2, dtype=np.int64)

    texts = _categorical_columns(raw[features], categorical, where=where)
    X = to_numeric_frame(raw[[c for c in features if c not in texts]], source=where, lines=lines)
    for column in texts:
        X[column] = _text_column(raw[column], column, source=where, lines=lines)
    X = X[features]
    y = _parse_label(raw[label], source=where, lines=lines) if label is not None else None
    stamps = _parse_time(raw[time], source=where, lines=lines) if time is not None else None
    groups = _parse_group(raw[group], source=where, lines=lines) if group is not None else None

    if stamps is not None:
        repair: dict[str, Any] = {"where": where, "drop_duplicate_times": drop_duplicate_times, "sort_time": sort_time}
        if groups is None:
            keep = _repair_time(stamps, lines, **repair)
        else:
            keep = _repair_groups(stamps, lines, groups, repair)
        if len(keep) != len(raw) or (keep[1:] < keep[:-1]).any():
            X = X.iloc[keep]
            y = y[keep] if y is not None else None
            stamps = stamps[keep]
            groups = groups[keep] if groups is not None else None
    X = X.reset_index(drop=True)
    return Table(X=X, y=y, time=stamps, source=path.name, group=groups, categorical=tuple(texts))


def _repair_groups(
    stamps: pd.DatetimeIndex, lines: NDArray[np.int64], groups: NDArray[np.str_], repair: dict[str, Any]
) -> NDArray[np.int64]:
    """Rows to keep when each group (asset) is its own series: its times must be unique and increasing, not
    the table's. The file's order when nothing is repaired, else the rows group by group."""
    kept = []
    for g in dict.fromkeys(groups):
        rows = np.flatnonzero(groups == g)
        kept.append(rows[_repair_time(stamps[rows], lines[rows], **repair)])
    if sum(len(k) for k in kept) == len(groups) and all((k[1:] > k[:-1]).all() for k in kept):
        return np.arange(len(groups))
    return np.concatenate(kept)


def _parse_group(column: pd.Series, *, source: str, lines: NDArray[np.int64]) -> NDArray[np.str_]:
    """The group column as strings; an empty cell is refused (a row must belong to an asset)."""
    text = column.astype("string").str.strip()
    empty = text.isna() | (text == "")
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        msg = f"{source}: line {lines[i]}, column {column.name!r} is empty (every row needs its group)"
        raise InvalidInputError(msg)
    return text.to_numpy(dtype=str)


def _categorical_columns(raw: pd.DataFrame, categorical: Sequence[str] | str, *, where: str) -> list[str]:
    from vigil.features.categorical import detect_categorical

    if isinstance(categorical, str):
        if categorical != "auto":
            msg = f"categorical must be 'auto' or a list of column names, got {categorical!r}"
            raise InvalidInputError(msg)
        return detect_categorical(raw)
    named = [str(c) for c in categorical]
    unknown = [c for c in named if c not in raw.columns]
    if unknown:
        msg = f"{where} has no feature column {unknown[0]!r} to read as categorical; columns: {', '.join(raw.columns)}"
        raise SchemaError(msg)
    return named


def _text_column(values: pd.Series, column: str, *, source: str, lines: NDArray[np.int64]) -> pd.Series:
    text = values.astype("string").str.strip()
    empty = np.flatnonzero(text.isna().to_numpy() | (text == "").fillna(True).to_numpy())
    if len(empty):
        msg = f"{source}: line {lines[empty[0]]}, column {column!r} is empty (a categorical cell needs a value)"
        raise InvalidInputError(msg)
    return text.astype(object)


def _check_separator(header: list[str], *, sep: str, where: str) -> None:
    """A header read as one column that holds another usual separator: the file is split by that one.

    Examples
    --------
    >>> _check_separator(["time;flow;label"], sep=",", where="pump.csv")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: pump.csv: the header 'time;flow;label' reads as one column ... --sep ';' (sep=';')
    """
    if len(header) != 1:
        return
    for other in (";", "\t", "|", ","):
        if other != sep and other in header[0]:
            shown = "\\t" if other == "\t" else other
            msg = (
                f"{where}: the header {header[0]!r} reads as one column with the separator {sep!r}; the file looks "
                f"separated by {shown!r}: pass --sep '{shown}' (sep={shown!r})"
            )
            raise InvalidInputError(msg)


def split_rows(table: Table, n: int) -> tuple[Table, Table]:
    """Split a table by position: the first ``n`` rows, then the rest.

    Parameters
    ----------
    table : Table
    n : int
        Rows in the first part; both parts must keep at least one row, so ``1 <= n < len(table)``.

    Returns
    -------
    tuple of Table
        ``(head, tail)``; both have a fresh RangeIndex.

    Raises
    ------
    InvalidInputError
        ``n`` is not an integer in ``[1, len(table) - 1]``.

    Examples
    --------
    >>> t = Table(X=pd.DataFrame({"a": [1.0, 2.0, 3.0]}), y=None, time=None, source="demo.csv")
    >>> train, test = split_rows(t, 2)
    >>> len(train), test.X["a"].tolist()
    (2, [3.0])
    >>> split_rows(t, 3)
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: demo.csv: cannot split 3 rows after row 3; n must be between 1 and 2
    """
    n_rows = len(table.X)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n < n_rows:
        msg = f"{table.source}: cannot split {n_rows} rows after row {n!r}; n must be between 1 and {n_rows - 1}"
        raise InvalidInputError(msg)

    def part(rows: slice) -> Table:
        return replace(
            table,
            X=table.X.iloc[rows].reset_index(drop=True),
            y=table.y[rows] if table.y is not None else None,
            time=table.time[rows] if table.time is not None else None,
        )

    return part(slice(0, int(n))), part(slice(int(n), None))
