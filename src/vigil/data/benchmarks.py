"""Benchmark data sets under their official protocols: the common shape, the data folder, the dispatcher.

Each data set has its own loader module (:mod:`vigil.data.skab`, :mod:`vigil.data.smd`,
:mod:`vigil.data.ton_iot`); this module holds what they share. The data are never downloaded: they are
read from the folder given as ``data_dir`` or, failing that, by the ``VIGIL_DATA_DIR`` environment
variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.errors import DatasetNotFoundError, InvalidInputError

__all__ = [
    "BENCHMARKS",
    "DATA_DIR_ENV",
    "Benchmark",
    "BenchmarkPart",
    "dataset_path",
    "load_benchmark",
    "natural_key",
    "resolve_data_dir",
    "select_parts",
]

DATA_DIR_ENV = "VIGIL_DATA_DIR"
"""Environment variable naming the folder that holds the benchmark data sets."""

BENCHMARKS = ("skab", "smd", "ton-iot")
"""Names accepted by :func:`load_benchmark`."""

_HOW_TO = f"set the {DATA_DIR_ENV} environment variable (or pass --data-dir) to the folder that holds it"


@dataclass(frozen=True, eq=False)
class BenchmarkPart:
    """One unit of a benchmark: a model is fitted on ``X_train`` and scored on ``X_test``.

    Attributes
    ----------
    name : str
        The part's name within its benchmark (for example ``"valve1/0"`` or ``"machine-1-2"``).
    X_train, X_test : pandas.DataFrame
        Finite float64 features with the same columns, each with a RangeIndex.
    y_test : numpy.ndarray of bool
        ``True`` for anomalous test rows.
    time_test : pandas.DatetimeIndex or None
        Timestamps of the test rows, where the protocol provides them.
    extra : dict
        Benchmark-specific additions, documented by each loader.

    Examples
    --------
    >>> part = BenchmarkPart(
    ...     name="demo",
    ...     X_train=pd.DataFrame({"a": [0.0, 0.1]}),
    ...     X_test=pd.DataFrame({"a": [0.0, 9.0]}),
    ...     y_test=np.array([False, True]),
    ... )
    >>> part.name, len(part.X_test), int(part.y_test.sum())
    ('demo', 2, 1)
    """

    name: str
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_test: NDArray[np.bool_]
    time_test: pd.DatetimeIndex | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Benchmark:
    """A benchmark data set split into parts under its official protocol.

    Attributes
    ----------
    name : str
        One of :data:`BENCHMARKS`.
    protocol : str
        One paragraph stating the split and how results are meant to be scored, for reports.
    parts : list of BenchmarkPart
        In a fixed, documented order.

    Examples
    --------
    >>> part = BenchmarkPart("p", pd.DataFrame({"a": [0.0]}), pd.DataFrame({"a": [1.0]}), np.array([True]))
    >>> bench = Benchmark(name="demo", protocol="train on p's first row, test on the rest", parts=[part])
    >>> [p.name for p in bench.parts], bench.n_test_rows
    (['p'], 1)
    """

    name: str
    protocol: str
    parts: list[BenchmarkPart]

    @property
    def n_test_rows(self) -> int:
        """Number of test rows over all parts."""
        return sum(len(p.X_test) for p in self.parts)


def resolve_data_dir(data_dir: str | PathLike[str] | None = None) -> Path:
    """Return the benchmark data folder: ``data_dir`` if given, else ``$VIGIL_DATA_DIR``.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        The folder holding ``skab/``, ``smd/``, ``ton_iot_telemetry/`` and so on.

    Raises
    ------
    DatasetNotFoundError
        Neither is set, or the folder does not exist.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> resolve_data_dir(folder).is_dir()
    True
    """
    if data_dir is None:
        env = os.environ.get(DATA_DIR_ENV, "")
        if not env:
            msg = (
                f"no benchmark data folder given: pass data_dir (--data-dir on the command line) or set "
                f"the {DATA_DIR_ENV} environment variable"
            )
            raise DatasetNotFoundError(msg)
        path, origin = Path(env).expanduser(), f"from {DATA_DIR_ENV}"
    else:
        path, origin = Path(data_dir).expanduser(), "from data_dir"
    if not path.is_dir():
        msg = f"benchmark data folder {path} ({origin}) does not exist or is not a folder; {_HOW_TO}"
        raise DatasetNotFoundError(msg)
    return path


def dataset_path(data_dir: str | PathLike[str] | None, *relative: str) -> Path:
    """Return ``<data folder>/<relative...>``, raising DatasetNotFoundError naming it if it is absent.

    Examples
    --------
    >>> import tempfile
    >>> dataset_path(tempfile.mkdtemp(), "skab")
    Traceback (most recent call last):
    ...
    vigil.errors.DatasetNotFoundError: data set not found: expected .../skab; set the VIGIL_DATA_DIR ...
    """
    path = resolve_data_dir(data_dir).joinpath(*relative)
    if not path.exists():
        msg = f"data set not found: expected {path}; {_HOW_TO}"
        raise DatasetNotFoundError(msg)
    return path


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the digit runs of ``name`` as numbers (``"1-10"`` after ``"1-9"``).

    Examples
    --------
    >>> sorted(["machine-3-10", "machine-1-2", "machine-3-2"], key=natural_key)
    ['machine-1-2', 'machine-3-2', 'machine-3-10']
    """
    return tuple((0, int(tok)) if tok.isdigit() else (1, tok) for tok in re.findall(r"\d+|\D+", name))


def select_parts(available: Sequence[str], wanted: Sequence[str] | None, *, what: str) -> list[str]:
    """Return ``wanted`` (or all of ``available``) in the order of ``available``; unknown names are an error.

    Examples
    --------
    >>> select_parts(["a", "b", "c"], ["c", "a"], what="machines")
    ['a', 'c']
    >>> select_parts(["a", "b"], ["z"], what="machines")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: unknown machines ['z']; available: ['a', 'b']
    """
    if wanted is None:
        return list(available)
    if isinstance(wanted, str):
        wanted = [wanted]
    unknown = [w for w in wanted if w not in available]
    if unknown:
        msg = f"unknown {what} {unknown}; available: {list(available)}"
        raise InvalidInputError(msg)
    return [a for a in available if a in set(wanted)]


def load_benchmark(
    name: str,
    data_dir: str | PathLike[str] | None = None,
    *,
    parts: Sequence[str] | None = None,
) -> Benchmark:
    """Load a benchmark by name under its official protocol.

    Parameters
    ----------
    name : {"skab", "smd", "ton-iot"}
        See :func:`vigil.data.skab.load_skab`, :func:`vigil.data.smd.load_smd` and
        :func:`vigil.data.ton_iot.load_ton_iot` for each protocol.
    data_dir : str or os.PathLike, optional
        The folder holding the data sets; defaults to ``$VIGIL_DATA_DIR``.
    parts : sequence of str, optional
        Load only these parts (SKAB files such as ``"valve1/0"``, SMD machines, TON_IoT devices).

    Raises
    ------
    InvalidInputError
        Unknown benchmark or part name.
    DatasetNotFoundError
        The data set is not under the data folder.

    Examples
    --------
    >>> load_benchmark("kdd99")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: unknown benchmark 'kdd99'; available: skab, smd, ton-iot
    """
    if name not in BENCHMARKS:
        msg = f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}"
        raise InvalidInputError(msg)
    # Imported here because the loader modules import the shared types from this module.
    from vigil.data.skab import load_skab
    from vigil.data.smd import load_smd
    from vigil.data.ton_iot import load_ton_iot

    if name == "skab":
        return load_skab(data_dir, files=parts)
    if name == "smd":
        return load_smd(data_dir, machines=parts)
    return load_ton_iot(data_dir, devices=parts)
