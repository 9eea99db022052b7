"""Reading a user's CSV: every bad input is rejected with the file, the line and the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.data.tables import Table, read_table, split_rows, to_numeric_frame
from vigil.errors import InvalidInputError, SchemaError

GOOD = (
    "time,temp,rpm,label\n"
    "2024-05-01 10:00:00,20.5,1200,0\n"
    "2024-05-01 10:00:01,21.0,1210,0\n"
    "2024-05-01 10:00:02,80.0,900,1\n"
)


def write(tmp_path: Path, text: str, name: str = "sensors.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_features_label_and_time(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, GOOD), label="label", time="time")
    assert table.source == "sensors.csv"
    assert list(table.X.columns) == ["temp", "rpm"]
    assert (table.X.dtypes == np.float64).all()
    assert table.y.dtype == np.bool_
    assert table.y.tolist() == [False, False, True]
    assert isinstance(table.time, pd.DatetimeIndex)
    assert table.time[0] == pd.Timestamp("2024-05-01 10:00:00")
    assert len(table) == 3


def test_without_label_or_time_every_column_is_a_feature(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "a,b\n1,2\n3,4\n"))
    assert table.y is None and table.time is None
    assert table.X.to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_label_nonzero_is_anomalous(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "a,y\n1,0\n2,2\n3,-1\n4,0.0\n"), label="y")
    assert table.y.tolist() == [False, True, True, False]


def test_semicolon_separator_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa;b\r\n1;2\r\n".encode())
    table = read_table(path, sep=";")
    assert list(table.X.columns) == ["a", "b"]


def test_epoch_seconds_time(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, "ts,a\n1700000000,1\n1700000001.5,2\n"), time="ts")
    assert table.time[1] == pd.Timestamp("2023-11-14 22:13:21.5")


def test_drop_and_columns_reorder(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, GOOD), label="label", drop=("time",), columns=["rpm", "temp"])
    assert list(table.X.columns) == ["rpm", "temp"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"nothere\.csv: no such file"):
        read_table(tmp_path / "nothere.csv")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"empty\.csv: the file is empty"):
        read_table(write(tmp_path, "", "empty.csv"))


def test_header_only(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"header\.csv: the file has a header but no data rows"):
        read_table(write(tmp_path, "a,b\n", "header.csv"))


@pytest.mark.parametrize("role", ["label", "time", "drop"])
def test_missing_named_column_lists_available(tmp_path: Path, role: str) -> None:
    kwargs = {"drop": ("nope",)} if role == "drop" else {role: "nope"}
    with pytest.raises(SchemaError) as info:
        read_table(write(tmp_path, GOOD), **kwargs)
    message = str(info.value)
    assert "sensors.csv" in message
    assert f"no {role} column 'nope'" in message
    assert "['time', 'temp', 'rpm', 'label']" in message


def test_columns_mismatch_lists_missing_and_extra(tmp_path: Path) -> None:
    with pytest.raises(SchemaError) as info:
        read_table(write(tmp_path, GOOD), label="label", time="time", columns=["temp", "pressure"])
    message = str(info.value)
    assert "sensors.csv: line 1 (header)" in message
    assert "missing ['pressure']" in message
    assert "unexpected ['rpm']" in message


def test_repeated_header_name(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"line 1 \(header\) repeats the column names \['a'\]"):
        read_table(write(tmp_path, "a,b,a\n1,2,3\n"))


def test_more_fields_than_header(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="more fields than the header"):
        read_table(write(tmp_path, "a,b\n0,1,2\n1,3,4\n"))


def test_ragged_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"sensors\.csv: not a valid CSV.*line 3"):
        read_table(write(tmp_path, "a,b\n1,2\n3,4,5,6\n"))


def test_non_numeric_cell(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("21.0,1210", "21.0,fast"))
    with pytest.raises(InvalidInputError) as info:
        read_table(path, label="label", time="time")
    assert str(info.value) == f"{path}: line 3, column 'rpm' is not a number: 'fast'"


@pytest.mark.parametrize(
    ("cell", "what"),
    [("", "is empty"), ("nan", "is NaN: 'nan'"), ("NA", "is NaN: 'NA'")],
)
def test_nan_or_empty_cell(tmp_path: Path, cell: str, what: str) -> None:
    path = write(tmp_path, GOOD.replace("80.0,900", f"{cell},900"))
    with pytest.raises(InvalidInputError) as info:
        read_table(path, label="label", time="time")
    assert str(info.value) == f"{path}: line 4, column 'temp' {what}"


@pytest.mark.parametrize("cell", ["inf", "-inf", "1e999"])
def test_infinite_cell(tmp_path: Path, cell: str) -> None:
    path = write(tmp_path, GOOD.replace("21.0,1210", f"21.0,{cell}"))
    with pytest.raises(InvalidInputError) as info:
        read_table(path, label="label", time="time")
    assert str(info.value) == f"{path}: line 3, column 'rpm' is infinite: {cell!r}"


def test_first_bad_cell_in_file_order_and_count(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1,2\n3,x\ny,4\n")
    with pytest.raises(InvalidInputError) as info:
        read_table(path)
    assert str(info.value) == f"{path}: line 3, column 'b' is not a number: 'x' (2 bad cells in all)"


def test_blank_line_between_rows(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"sensors\.csv: line 3 is empty"):
        read_table(write(tmp_path, "a,b\n1,2\n\n3,4\n"))


def test_blank_lines_at_end_are_ignored(tmp_path: Path) -> None:
    assert len(read_table(write(tmp_path, "a,b\n1,2\n3,4\n\n\n"))) == 2


def test_label_with_text_values(tmp_path: Path) -> None:
    path = write(tmp_path, "a,label\n1,0\n2,attack\n")
    with pytest.raises(InvalidInputError) as info:
        read_table(path, label="label")
    message = str(info.value)
    assert message.startswith(f"{path}: line 3, label column 'label' is not a number: 'attack'")
    assert "labels must be numbers" in message


@pytest.mark.parametrize(("cell", "what"), [("", "is empty"), ("inf", "is infinite")])
def test_label_empty_or_infinite(tmp_path: Path, cell: str, what: str) -> None:
    with pytest.raises(InvalidInputError, match=f"line 3, label column 'y' {what}"):
        read_table(write(tmp_path, f"a,y\n1,0\n2,{cell}\n"), label="y")


def test_unparseable_time(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("2024-05-01 10:00:01", "yesterday"))
    with pytest.raises(InvalidInputError) as info:
        read_table(path, label="label", time="time")
    assert str(info.value) == (
        f"{path}: line 3, time column 'time' is not an ISO 8601 time or epoch seconds: 'yesterday'"
    )


def test_empty_time(tmp_path: Path) -> None:
    text = GOOD.replace("2024-05-01 10:00:02", "")
    with pytest.raises(InvalidInputError, match="line 4, time column 'time' is empty"):
        read_table(write(tmp_path, text), time="time")


def test_text_in_epoch_time(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="line 3, time column 'ts' is not epoch seconds"):
        read_table(write(tmp_path, "ts,a\n1700000000,1\nnoon,2\n"), time="ts")


DUPLICATED = "time,a\n2024-05-01 10:00:00,1\n2024-05-01 10:00:01,2\n2024-05-01 10:00:01,3\n2024-05-01 10:00:02,4\n"


def test_duplicate_times_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, DUPLICATED)
    with pytest.raises(InvalidInputError) as info:
        read_table(path, time="time")
    message = str(info.value)
    assert message.startswith(f"{path}: lines 3 and 4 have the same time 2024-05-01 10:00:01")
    assert "drop_duplicate_times=True" in message


def test_duplicate_times_dropped_on_request_keep_first(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, DUPLICATED), time="time", drop_duplicate_times=True)
    assert table.X["a"].tolist() == [1.0, 2.0, 4.0]
    assert table.time.is_unique
    assert table.X.index.tolist() == [0, 1, 2]


UNSORTED = "time,a,y\n2024-05-01 10:00:00,1,0\n2024-05-01 10:00:02,2,1\n2024-05-01 10:00:01,3,0\n"


def test_unsorted_times_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, UNSORTED)
    with pytest.raises(InvalidInputError) as info:
        read_table(path, time="time", label="y")
    message = str(info.value)
    assert message.startswith(f"{path}: line 4, time column 'time' is 2024-05-01 10:00:01")
    assert "on line 3" in message
    assert "sort_time=True" in message


def test_unsorted_times_sorted_on_request_with_labels(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, UNSORTED), time="time", label="y", sort_time=True)
    assert table.X["a"].tolist() == [1.0, 3.0, 2.0]
    assert table.y.tolist() == [False, False, True]
    assert table.time.is_monotonic_increasing
    assert table.X.index.tolist() == [0, 1, 2]


def test_duplicates_dropped_before_sorting(tmp_path: Path) -> None:
    text = "time,a\n2024-05-01 10:00:02,1\n2024-05-01 10:00:01,2\n2024-05-01 10:00:02,3\n"
    table = read_table(write(tmp_path, text), time="time", drop_duplicate_times=True, sort_time=True)
    assert table.X["a"].tolist() == [2.0, 1.0]


def test_split_rows(tmp_path: Path) -> None:
    table = read_table(write(tmp_path, GOOD), label="label", time="time")
    train, test = split_rows(table, 2)
    assert len(train) == 2 and len(test) == 1
    assert test.X.index.tolist() == [0]
    assert test.y.tolist() == [True]
    assert test.time[0] == pd.Timestamp("2024-05-01 10:00:02")
    assert train.source == test.source == "sensors.csv"


@pytest.mark.parametrize("n", [0, 3, -1, 10, 1.5, True])
def test_split_rows_out_of_range(tmp_path: Path, n: object) -> None:
    table = read_table(write(tmp_path, GOOD), label="label", time="time")
    with pytest.raises(InvalidInputError, match=r"sensors\.csv: cannot split 3 rows .* between 1 and 2"):
        split_rows(table, n)  # type: ignore[arg-type]


def test_table_is_frozen() -> None:
    table = Table(X=pd.DataFrame({"a": [1.0]}), y=None, time=None, source="x.csv")
    with pytest.raises(AttributeError):
        table.source = "y.csv"  # type: ignore[misc]


def test_to_numeric_frame_uses_given_lines() -> None:
    raw = pd.DataFrame({"a": ["1", "oops"]})
    with pytest.raises(InvalidInputError, match=r"f\.txt: line 11, column 'a' is not a number: 'oops'"):
        to_numeric_frame(raw, source="f.txt", lines=np.array([10, 11]))
