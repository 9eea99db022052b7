"""One-hot encoding of text columns (a flow's ``proto``, a machine's ``mode``), with a bucket for the unknown.

Detectors take numbers. A text column becomes one 0/1 column per category learned on the training rows
(``proto=tcp``, ``proto=udp``…) plus one ``proto=<other>`` column for every value that was not learned: a
category first seen after training, or one of the rarest when a column has more than ``max_categories``.
The categories are saved with the pipeline, so a file scored later is encoded exactly as the training
rows were. An empty cell is refused with its row and column (never read as a category of its own).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import InvalidInputError, SchemaError

__all__ = ["OTHER", "CategoryEncoder", "detect_categorical"]

#: The name of each encoded column's bucket for values not learned in training.
OTHER = "<other>"


def _cell_text(value: Any) -> str | None:
    """The category a cell names, or None for an empty or missing cell."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def detect_categorical(frame: pd.DataFrame, *, max_categories: int = 100) -> list[str]:
    """Columns of ``frame`` whose cells are mostly text that is not a number, with at most ``max_categories``
    distinct values.

    A numeric column with a typo in a few cells is not text (it is then refused as not a number, naming the
    cell, rather than silently encoded), and a column with more distinct texts than ``max_categories`` is
    most likely an identifier.

    Examples
    --------
    >>> detect_categorical(pd.DataFrame({"bytes": ["10", "20"], "proto": ["tcp", "udp"]}))
    ['proto']
    """
    found = []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            continue
        cells = [t for t in (_cell_text(v) for v in values) if t is not None]
        words = sum(not _is_number(t) for t in cells)
        if cells and words > len(cells) / 2 and len(set(cells)) <= max_categories:
            found.append(str(column))
    return found


class CategoryEncoder:
    """Learn each text column's categories from training rows and one-hot encode frames with them.

    Parameters
    ----------
    columns : sequence of str
        The text columns; every other column must already be numeric and passes through unchanged.
    max_categories : int
        Most categories learned per column (the most frequent; ties in alphabetical order). Values beyond
        them, and values never seen in training, go to the column's ``<other>`` bucket.

    Attributes
    ----------
    categories_ : dict of str to list of str
        The learned categories of each column, in encoding order.
    feature_names_out_ : list of str
        The encoded frame's columns: the numeric ones in input order, then each text column's
        ``column=category`` columns and its ``column=<other>``.

    Examples
    --------
    >>> frame = pd.DataFrame({"bytes": [10.0, 20.0, 30.0], "proto": ["tcp", "udp", "tcp"]})
    >>> encoder = CategoryEncoder(["proto"]).fit(frame)
    >>> encoder.categories_
    {'proto': ['tcp', 'udp']}
    >>> encoder.transform(pd.DataFrame({"bytes": [5.0], "proto": ["icmp"]})).iloc[0].tolist()
    [5.0, 0.0, 0.0, 1.0]
    >>> encoder.feature_names_out_
    ['bytes', 'proto=tcp', 'proto=udp', 'proto=<other>']
    """

    def __init__(self, columns: Sequence[str], *, max_categories: int = 50) -> None:
        self.columns = [str(c) for c in columns]
        self.max_categories = max_categories

    def _check(self, frame: Any, where: str) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            msg = f"{where} must be a pandas DataFrame with the text columns {self.columns}, got {type(frame).__name__}"
            raise InvalidInputError(msg)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            msg = f"{where} has no column {missing[0]!r} (categorical columns: {', '.join(self.columns)})"
            raise SchemaError(msg)
        return frame

    def _texts(self, frame: pd.DataFrame, column: str, where: str) -> list[str]:
        texts = []
        for i, value in enumerate(frame[column].tolist()):
            text = _cell_text(value)
            if text is None:
                msg = f"{where}[row {i}, column {column!r}] is empty: a categorical cell needs a value"
                raise InvalidInputError(msg)
            texts.append(text)
        return texts

    def fit(self, frame: Any, *, where: str = "X") -> CategoryEncoder:
        if isinstance(self.max_categories, bool) or not isinstance(self.max_categories, int) or self.max_categories < 1:
            msg = f"CategoryEncoder(max_categories={self.max_categories!r}) must be a whole number ≥ 1"
            raise InvalidInputError(msg)
        if len(set(self.columns)) != len(self.columns):
            msg = f"categorical columns repeat a name: {self.columns}"
            raise InvalidInputError(msg)
        frame = self._check(frame, where)
        self.categories_ = {}
        for column in self.columns:
            counts = Counter(self._texts(frame, column, where))
            ranked = sorted(counts, key=lambda text: (-counts[text], text))[: self.max_categories]
            self.categories_[column] = sorted(ranked)
        self.numeric_columns_ = [str(c) for c in frame.columns if str(c) not in self.columns]
        self.feature_names_out_ = self.numeric_columns_ + [
            f"{column}={name}" for column in self.columns for name in (*self.categories_[column], OTHER)
        ]
        return self

    def transform(self, frame: Any, *, where: str = "X") -> pd.DataFrame:
        """The numeric columns as they are, then the one-hot blocks (float 0/1)."""
        frame = self._check(frame, where)
        blocks = [frame[self.numeric_columns_].reset_index(drop=True)]
        for column in self.columns:
            known = {name: j for j, name in enumerate(self.categories_[column])}
            other = len(known)
            codes = np.array([known.get(text, other) for text in self._texts(frame, column, where)], dtype=np.int64)
            onehot = np.zeros((len(codes), other + 1))
            onehot[np.arange(len(codes)), codes] = 1.0
            names = [f"{column}={name}" for name in (*self.categories_[column], OTHER)]
            blocks.append(pd.DataFrame(onehot, columns=names))
        return pd.concat(blocks, axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "max_categories": self.max_categories,
            "categories": self.categories_,
            "numeric_columns": self.numeric_columns_,
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> CategoryEncoder:
        encoder = cls(document["columns"], max_categories=int(document["max_categories"]))
        encoder.categories_ = {str(k): [str(v) for v in values] for k, values in document["categories"].items()}
        if set(encoder.categories_) != set(encoder.columns):
            msg = f"categories {sorted(encoder.categories_)} do not match the columns {encoder.columns}"
            raise ValueError(msg)
        encoder.numeric_columns_ = [str(c) for c in document["numeric_columns"]]
        encoder.feature_names_out_ = encoder.numeric_columns_ + [
            f"{column}={name}" for column in encoder.columns for name in (*encoder.categories_[column], OTHER)
        ]
        return encoder

    def __repr__(self) -> str:
        return f"CategoryEncoder({self.columns!r}, max_categories={self.max_categories})"
