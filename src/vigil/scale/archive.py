"""Partitioned Parquet archives: what a telemetry archive holds, checked before any cluster work starts.

An archive is a directory of Parquet files, usually Hive-partitioned (``plant=p1/day=2024-05-01/part-0.parquet``),
each row one reading with the model's sensor columns; any other columns (time, device, the partition keys)
are carried into the output beside the scores. Rows with missing or non-finite readings are not repaired:
scoring stops with an error that names the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vigil.errors import InvalidInputError, SchemaError
from vigil.scale._optional import require

__all__ = ["ArchiveInfo", "describe_archive", "feature_columns"]


@dataclass(frozen=True)
class ArchiveInfo:
    """What :func:`describe_archive` found.

    Attributes
    ----------
    root : Path
    files : tuple of str
    rows : int
        From the Parquet footers; nothing is read.
    columns : tuple of str
        Every column, partition keys included.
    passthrough : tuple of str
        The columns that are not features: carried into the output unchanged.
    partition_keys : tuple of str
        Columns that come from the directory names (``key=value``).
    bytes : int
        Uncompressed size of the row groups.
    row_group_rows : tuple of tuple of int
        Rows of each row group, per file (in the order of ``files``).
    """

    root: Path
    files: tuple[str, ...]
    rows: int
    columns: tuple[str, ...]
    passthrough: tuple[str, ...]
    partition_keys: tuple[str, ...]
    bytes: int
    row_group_rows: tuple[tuple[int, ...], ...] = ()


def describe_archive(path: str | Path, *, features: Sequence[str] = ()) -> ArchiveInfo:
    """Read the archive's layout and row count from metadata only, and check it holds ``features``.

    Parameters
    ----------
    path : str or Path
        A directory of Parquet files (Hive partitioning is recognised), or one Parquet file.
    features : sequence of str
        Columns every file must have (the model's sensors).

    Raises
    ------
    InvalidInputError
        The path does not exist or holds no Parquet file.
    SchemaError
        A feature column is missing.
    """
    ds = require("pyarrow.dataset", purpose="Parquet archives")
    root = Path(path)
    if not root.exists():
        msg = f"the archive {root} does not exist"
        raise InvalidInputError(msg)
    try:
        dataset = ds.dataset(str(root), format="parquet", partitioning="hive")
    except Exception as exc:  # pyarrow raises several kinds for unreadable files
        msg = f"{root} is not a readable Parquet archive: {exc}"
        raise InvalidInputError(msg) from exc
    files = tuple(dataset.files)
    if not files:
        msg = f"the archive {root} holds no Parquet file"
        raise InvalidInputError(msg)
    names = list(dataset.schema.names)
    missing = [name for name in features if name not in names]
    if missing:
        msg = f"the archive {root} lacks the model's columns {missing} (it has {names})"
        raise SchemaError(msg)
    rows = 0
    size = 0
    groups = {}
    for fragment in dataset.get_fragments():
        metadata = fragment.metadata
        rows += metadata.num_rows
        size += sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        groups[fragment.path] = tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    partition_keys = tuple(n for n in names if n not in fragment.physical_schema.names)
    feature_set = set(features)
    return ArchiveInfo(
        root=root,
        files=files,
        rows=rows,
        columns=tuple(names),
        passthrough=tuple(n for n in names if n not in feature_set),
        partition_keys=partition_keys,
        bytes=size,
        row_group_rows=tuple(groups[path] for path in files),
    )


def feature_columns(path: str | Path, *, exclude: Sequence[str] = ()) -> list[str]:
    """The archive's numeric columns, in file order, less partition keys and ``exclude`` (time, label…).

    Raises
    ------
    InvalidInputError
        The archive is unreadable or has no numeric column left.
    """
    pa = require("pyarrow", purpose="Parquet archives")
    info = describe_archive(path)
    ds = require("pyarrow.dataset", purpose="Parquet archives")
    schema = ds.dataset(str(info.root), format="parquet", partitioning="hive").schema
    skip = set(exclude) | set(info.partition_keys)
    names = [
        f.name for f in schema if f.name not in skip and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
    ]
    if not names:
        msg = f"the archive {info.root} has no numeric column besides {sorted(skip)}"
        raise InvalidInputError(msg)
    return names
