"""Turn flow records into model inputs: one-hot categories with an explicit unknown bucket, scaled numbers.

The encoder is fitted on training rows only. Each categorical column gets one indicator per category seen in
training plus ``<column>=__unknown__``, which is where a value never seen in training lands at transform
time; :meth:`FlowEncoder.encode` counts those values so a report can say how many there were. Numeric
columns named in ``log_columns`` go through ``log1p`` first (byte counts and durations span orders of
magnitude), then every numeric column is standardised with the training mean and standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.errors import InvalidInputError, NotFittedError, SchemaError
from vigil.persistence import FORMAT_VERSION, read_state, write_state

__all__ = ["UNKNOWN", "EncodedFlows", "FlowEncoder"]

UNKNOWN = "__unknown__"
"""The category that values unseen in training are mapped to."""


@dataclass(frozen=True, eq=False)
class EncodedFlows:
    """The result of :meth:`FlowEncoder.encode`.

    Attributes
    ----------
    X : pandas.DataFrame
        float64 model inputs, one column per numeric feature and per (column, category).
    unknown : dict of str to dict of str to int
        For each categorical column, the unseen values met and how often (empty when none).

    Examples
    --------
    >>> EncodedFlows(X=pd.DataFrame({"a": [1.0]}), unknown={"proto": {"sctp": 2}}).n_unknown
    2
    """

    X: pd.DataFrame
    unknown: dict[str, dict[str, int]]

    @property
    def n_unknown(self) -> int:
        """Number of cells that fell into an unknown bucket."""
        return sum(sum(v.values()) for v in self.unknown.values())


class FlowEncoder:
    """One-hot encode categorical flow fields (with an unknown bucket) and standardise numeric ones.

    Parameters
    ----------
    categorical : sequence of str
        Columns to one-hot encode.
    numeric : sequence of str
        Columns used as numbers.
    log_columns : sequence of str
        Numeric columns to pass through ``sign(x) * log1p(|x|)`` before standardising.

    Attributes
    ----------
    categories_ : dict of str to list of str
        The categories of each column seen in ``fit``, sorted.
    mean_, scale_ : numpy.ndarray
        Standardisation of the numeric columns (scale 1 for constant columns).
    feature_names_out_ : list of str
        Names of the output columns.

    Examples
    --------
    >>> train = pd.DataFrame({"proto": ["tcp", "udp", "tcp"], "bytes": [10.0, 1000.0, 100.0]})
    >>> enc = FlowEncoder(categorical=["proto"], numeric=["bytes"], log_columns=["bytes"]).fit(train)
    >>> enc.feature_names_out_
    ['bytes', 'proto=tcp', 'proto=udp', 'proto=__unknown__']
    >>> out = enc.encode(pd.DataFrame({"proto": ["icmp"], "bytes": [100.0]}))
    >>> out.X.iloc[0].round(3).tolist(), out.unknown
    ([0.0, 0.0, 0.0, 1.0], {'proto': {'icmp': 1}})
    """

    def __init__(
        self,
        *,
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        log_columns: Sequence[str] = (),
    ) -> None:
        self.categorical = tuple(categorical)
        self.numeric = tuple(numeric)
        self.log_columns = tuple(log_columns)

    def _check_columns(self, frame: pd.DataFrame, where: str) -> None:
        if not isinstance(frame, pd.DataFrame):
            msg = f"{where} must be a pandas DataFrame of flow fields, got {type(frame).__name__}"
            raise InvalidInputError(msg)
        missing = [c for c in (*self.numeric, *self.categorical) if c not in frame.columns]
        if missing:
            msg = f"{where} lacks the columns {missing}"
            raise SchemaError(msg)
        unknown_logs = [c for c in self.log_columns if c not in self.numeric]
        if unknown_logs:
            msg = f"log_columns {unknown_logs} are not among the numeric columns"
            raise InvalidInputError(msg)

    def _numbers(self, frame: pd.DataFrame, where: str) -> NDArray[np.float64]:
        values = np.empty((len(frame), len(self.numeric)), dtype=np.float64)
        for j, col in enumerate(self.numeric):
            try:
                column = pd.to_numeric(frame[col], errors="raise").to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as exc:
                msg = f"{where} column {col!r} is not numeric: {exc}"
                raise InvalidInputError(msg) from exc
            bad = ~np.isfinite(column)
            if bad.any():
                msg = f"{where}[row {int(np.flatnonzero(bad)[0])}, column {col!r}] is not finite"
                raise InvalidInputError(msg)
            if col in self.log_columns:
                column = np.sign(column) * np.log1p(np.abs(column))
            values[:, j] = column
        return values

    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn categories and numeric scaling from training rows."""
        self._check_columns(frame, "X")
        if len(frame) == 0:
            msg = "X has no rows to fit the flow encoder on"
            raise InvalidInputError(msg)
        numbers = self._numbers(frame, "X")
        self.mean_ = numbers.mean(axis=0)
        std = numbers.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        self.categories_ = {c: sorted(frame[c].astype(str).unique().tolist()) for c in self.categorical}
        names = list(self.numeric)
        for col in self.categorical:
            names += [f"{col}={v}" for v in self.categories_[col]] + [f"{col}={UNKNOWN}"]
        self.feature_names_out_ = names
        return self

    def encode(self, frame: pd.DataFrame) -> EncodedFlows:
        """Encode rows; unseen categories go to the unknown bucket and are counted."""
        if not hasattr(self, "categories_"):
            msg = "FlowEncoder is not fitted yet: call fit() first"
            raise NotFittedError(msg)
        self._check_columns(frame, "X")
        numbers = (self._numbers(frame, "X") - self.mean_) / self.scale_
        blocks = [numbers]
        unknown: dict[str, dict[str, int]] = {}
        for col in self.categorical:
            cats = self.categories_[col]
            values = frame[col].astype(str).to_numpy()
            index = pd.Index(cats).get_indexer(values)
            unseen = index < 0
            if unseen.any():
                found, counts = np.unique(values[unseen], return_counts=True)
                unknown[col] = {str(v): int(c) for v, c in zip(found, counts, strict=True)}
            index = np.where(unseen, len(cats), index)
            block = np.zeros((len(frame), len(cats) + 1), dtype=np.float64)
            block[np.arange(len(frame)), index] = 1.0
            blocks.append(block)
        X = pd.DataFrame(np.hstack(blocks), columns=self.feature_names_out_)
        return EncodedFlows(X=X, unknown=unknown)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Encode rows and return only the model inputs (see :meth:`encode` for the unknown counts)."""
        return self.encode(frame).X

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return (JSON-able document, arrays) describing the fitted encoder."""
        if not hasattr(self, "categories_"):
            msg = "FlowEncoder is not fitted yet: call fit() first"
            raise NotFittedError(msg)
        document = {
            "categorical": list(self.categorical),
            "numeric": list(self.numeric),
            "log_columns": list(self.log_columns),
            "categories": self.categories_,
        }
        return document, {"mean": self.mean_, "scale": self.scale_}

    @classmethod
    def from_state(cls, document: dict[str, Any], arrays: dict[str, np.ndarray]) -> FlowEncoder:
        """Rebuild an encoder from :meth:`to_state` output."""
        enc = cls(categorical=document["categorical"], numeric=document["numeric"], log_columns=document["log_columns"])
        enc.categories_ = {str(k): [str(v) for v in vs] for k, vs in document["categories"].items()}
        enc.mean_ = np.asarray(arrays["mean"], dtype=np.float64)
        enc.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
        names = list(enc.numeric)
        for col in enc.categorical:
            names += [f"{col}={v}" for v in enc.categories_[col]] + [f"{col}={UNKNOWN}"]
        enc.feature_names_out_ = names
        return enc

    def save(self, path: str | Path) -> Path:
        """Write the encoder to directory ``path`` (JSON + npz)."""
        document, arrays = self.to_state()
        directory = Path(path)
        write_state(directory, {"format": "vigil.flow_encoder", "format_version": FORMAT_VERSION, **document}, arrays)
        return directory

    @classmethod
    def load(cls, path: str | Path) -> FlowEncoder:
        """Read an encoder written by :meth:`save`."""
        document, arrays = read_state(Path(path), kind="flow_encoder")
        return cls.from_state(document, arrays)
