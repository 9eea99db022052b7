"""Input checks shared by every entry point: loud, early, and located.

Every public ``fit``/``score_samples``/``learn_one``/``score_one`` goes through these functions, so a
NaN, an infinity, an empty table or a wrong column is reported with its position instead of surfacing
as a traceback deep inside numpy or, worse, as a silently wrong score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.errors import InvalidInputError, NotFittedError, SchemaError

__all__ = ["check_array", "check_features", "check_fitted", "check_record", "describe_nonfinite"]


def _column_label(names: Sequence[str] | None, j: int) -> str:
    return repr(names[j]) if names is not None else str(j)


def describe_nonfinite(values: NDArray[np.float64], names: Sequence[str] | None, where: str) -> str | None:
    """Return a message locating the first NaN or infinity in a 2-D array, or None if all are finite."""
    finite = np.isfinite(values)
    if finite.all():
        return None
    rows, cols = np.nonzero(~finite)
    i, j = int(rows[0]), int(cols[0])
    kind = "NaN" if np.isnan(values[i, j]) else "infinite"
    count = int((~finite).sum())
    more = f" ({count} non-finite cells in all)" if count > 1 else ""
    return f"{where}[row {i}, column {_column_label(names, j)}] is {kind}{more}"


def _to_float_frame(X: pd.DataFrame, where: str) -> NDArray[np.float64]:
    for col in X.columns:
        dtype = X[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            converted = pd.to_numeric(X[col], errors="coerce")
            bad = converted.isna() & X[col].notna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                msg = f"{where}[row {i}, column {col!r}] is not a number: {X[col].iloc[i]!r}"
                raise InvalidInputError(msg)
            msg = f"{where} column {col!r} has dtype {dtype}, expected a numeric column"
            raise InvalidInputError(msg)
    return X.to_numpy(dtype=np.float64, copy=True)


def check_array(
    X: Any,
    *,
    where: str = "X",
    min_rows: int = 1,
    allow_nonfinite: bool = False,
) -> tuple[NDArray[np.float64], list[str] | None]:
    """Validate a 2-D numeric table and return it as a float64 copy plus its column names.

    Parameters
    ----------
    X : array-like or pandas.DataFrame of shape (n_samples, n_features)
    where : str
        Name used in error messages (for example ``"X"`` or a file name).
    min_rows : int
        Fewest rows accepted.
    allow_nonfinite : bool
        Skip the NaN/inf check (only for callers that handle them explicitly).

    Raises
    ------
    InvalidInputError
        Empty input, wrong number of dimensions, non-numeric cells, NaN or infinity.

    Examples
    --------
    >>> values, names = check_array([[1.0, 2.0], [3.0, 4.0]])
    >>> values.shape, names
    ((2, 2), None)
    >>> check_array([[1.0, float("nan")]])
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: X[row 0, column 1] is NaN
    """
    names: list[str] | None = None
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            msg = f"{where} has duplicate column names: {dupes}"
            raise SchemaError(msg)
        values = _to_float_frame(X, where)
    else:
        try:
            values = np.array(X, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as exc:
            msg = f"{where} could not be read as a numeric array: {exc}"
            raise InvalidInputError(msg) from exc
    if values.ndim != 2:
        msg = f"{where} must be 2-D (rows × features), got {values.ndim}-D with shape {values.shape}"
        raise InvalidInputError(msg)
    if values.shape[1] == 0:
        msg = f"{where} has no feature columns"
        raise InvalidInputError(msg)
    if values.shape[0] < min_rows:
        msg = f"{where} has {values.shape[0]} rows, at least {min_rows} needed"
        raise InvalidInputError(msg)
    if not allow_nonfinite:
        problem = describe_nonfinite(values, names, where)
        if problem is not None:
            raise InvalidInputError(problem)
    return values, names


def check_fitted(estimator: Any, attribute: str = "n_features_in_") -> None:
    """Raise NotFittedError if ``estimator`` lacks the learned ``attribute``."""
    if not hasattr(estimator, attribute):
        msg = f"{type(estimator).__name__} is not fitted yet: call fit() first"
        raise NotFittedError(msg)


def check_features(
    values: NDArray[np.float64],
    names: list[str] | None,
    *,
    n_features: int,
    feature_names: list[str] | None,
    where: str = "X",
) -> NDArray[np.float64]:
    """Check that a validated table matches the features seen in ``fit``; reorder named columns.

    Named columns are matched by name (order does not matter); unnamed ones by position.
    """
    if names is not None and feature_names is not None:
        missing = [n for n in feature_names if n not in names]
        extra = [n for n in names if n not in feature_names]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            msg = f"{where} columns do not match those seen in fit: {', '.join(parts)}"
            raise SchemaError(msg)
        if names != feature_names:
            order = [names.index(n) for n in feature_names]
            values = values[:, order]
        return values
    if values.shape[1] != n_features:
        msg = f"{where} has {values.shape[1]} features, but the model was fitted with {n_features}"
        raise SchemaError(msg)
    return values


def check_record(
    x: Mapping[str, Any],
    feature_names: Sequence[str],
    *,
    where: str = "x",
) -> NDArray[np.float64]:
    """Validate one record (a mapping of feature name to number); return values in ``feature_names`` order.

    Examples
    --------
    >>> check_record({"b": 2, "a": 1}, ["a", "b"])
    array([1., 2.])
    >>> check_record({"a": float("inf"), "b": 2}, ["a", "b"], where="x (device=pump-1, seq=7)")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: x['a'] is infinite (device=pump-1, seq=7)
    """
    if not isinstance(x, Mapping):
        msg = f"{where} must be a mapping of feature name to value, got {type(x).__name__}"
        raise InvalidInputError(msg)
    base, _, context = where.partition(" ")
    suffix = f" {context}" if context else ""
    missing = [n for n in feature_names if n not in x]
    extra = [k for k in x if k not in feature_names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {[str(k) for k in extra]}")
        msg = f"{base} keys do not match the model's features: {', '.join(parts)}{suffix}"
        raise SchemaError(msg)
    out = np.empty(len(feature_names), dtype=np.float64)
    for j, name in enumerate(feature_names):
        value = x[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            msg = f"{base}[{name!r}] is not a number: {value!r}{suffix}"
            raise InvalidInputError(msg)
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float64's range (about 1.8e308)
            digits = int(int(value).bit_length() * 0.30103) + 1  # str() of a huge integer would itself fail
            msg = f"{base}[{name!r}] is too large for a float: an integer of about {digits} digits{suffix}"
            raise InvalidInputError(msg) from None
        if not np.isfinite(value):
            kind = "NaN" if np.isnan(value) else "infinite"
            msg = f"{base}[{name!r}] is {kind}{suffix}"
            raise InvalidInputError(msg)
        out[j] = value
    return out
