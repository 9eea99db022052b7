"""Sliding windows over time-ordered rows, and how window scores map back to rows."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError

__all__ = ["causal_mean", "rows_from_windows", "sliding_windows"]


def sliding_windows(values: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Return the (n − window + 1, window, d) view of every window of ``window`` consecutive rows.

    The view shares memory with ``values``: copy it before writing.

    Examples
    --------
    >>> import numpy as np
    >>> sliding_windows(np.arange(8.0).reshape(4, 2), 3).shape
    (2, 3, 2)
    """
    n = values.shape[0]
    if window < 1:
        msg = f"window must be at least 1, got {window}"
        raise InvalidInputError(msg)
    if n < window:
        msg = f"{n} rows are fewer than one window of {window} rows"
        raise InvalidInputError(msg)
    return np.lib.stride_tricks.sliding_window_view(values, window, axis=0).transpose(0, 2, 1)


def rows_from_windows(window_values: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Give each row the value of the window that ends at it; the first ``window − 1`` rows, which end no
    full window, take the value of the first window (the earliest evidence about them).

    Works on arrays of shape (n_windows,) or (n_windows, k).

    Examples
    --------
    >>> import numpy as np
    >>> rows_from_windows(np.array([5.0, 6.0, 7.0]), 3)
    array([5., 5., 5., 6., 7.])
    """
    if window <= 1:
        return window_values
    head = np.repeat(window_values[:1], window - 1, axis=0)
    return np.concatenate([head, window_values], axis=0)


def causal_mean(values: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Causal rolling mean over ``k`` rows along axis 0 (the first rows average what there is), summed in the
    same order wherever the series starts, so that streamed and batch scores agree exactly.

    Examples
    --------
    >>> import numpy as np
    >>> causal_mean(np.array([1.0, 3.0, 5.0, 7.0]), 2)
    array([1., 2., 4., 6.])
    """
    if k <= 1 or len(values) == 0:
        return values
    out = np.empty_like(values)
    m = min(k - 1, len(values))
    out[:m] = np.cumsum(values[:m], axis=0) / np.arange(1, m + 1).reshape((-1,) + (1,) * (values.ndim - 1))
    if len(values) >= k:
        out[k - 1 :] = np.lib.stride_tricks.sliding_window_view(values, k, axis=0).mean(axis=-1)
    return out
