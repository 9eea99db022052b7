"""Damped (exponentially decaying) incremental statistics per key, updated for a whole batch at once.

For a key (a host, a host pair, a socket) receiving values ``x_1, x_2, …`` at times ``t_1 ≤ t_2 ≤ …``, the
damped sum at packet ``i`` with decay rate λ is

    S_i = 2^(−λ (t_i − t_{i−1})) · S_{i−1} + x_i,

so a value's weight halves every ``1/λ`` seconds. Keeping ``w = S[1]``, ``LS = S[x]`` and ``SS = S[x²]`` per
key gives a damped mean and standard deviation in O(1) memory per key and O(1) time per packet, the
incremental statistics Kitsune's AfterImage popularised (Mirsky et al., NDSS 2018).

Processing packets one at a time in Python would cost microseconds each. Here a batch of packets is sorted
by key, and the recurrence — a first-order linear scan ``S_i = a_i S_{i−1} + b_i`` — is evaluated for all
keys at once by a Hillis–Steele parallel prefix scan (log₂ of the longest run of one key steps, each a few
vectorised numpy operations). Setting ``a = 0`` at each key's first packet in the batch, after folding the
key's carried state into ``b``, keeps keys apart without any per-key loop. The scan multiplies only by decay
factors in [0, 1] and adds, so it is as accurate as the sequential loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["DampedKeyStats", "linear_scan"]


def linear_scan(a: NDArray[np.float64], b: NDArray[np.float64], max_run: int | None = None) -> NDArray[np.float64]:
    """Evaluate ``S_i = a_i · S_{i−1} + b_i`` (``S_{−1} = 0``) along axis 0 with a parallel prefix scan.

    Parameters
    ----------
    a : numpy.ndarray of shape (n, ...)
        Multipliers; broadcast against ``b``'s trailing axes (shape (n, L) with ``b`` of shape (n, L, C)).
    b : numpy.ndarray of shape (n, ...)
    max_run : int, optional
        An upper bound on the distance over which terms can still contribute (the longest run between two
        zeros of ``a``); fewer steps when given.

    Examples
    --------
    >>> a = np.array([0.0, 0.5, 0.5, 0.0, 1.0])
    >>> b = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    >>> linear_scan(a, b).tolist()
    [1.0, 1.5, 1.75, 2.0, 4.0]
    """
    A = np.array(a, dtype=np.float64, copy=True)
    B = np.array(b, dtype=np.float64, copy=True)
    n = A.shape[0]
    limit = n if max_run is None else min(n, max_run)
    extra = (slice(None),) * A.ndim + (None,) * (B.ndim - A.ndim)
    step = 1
    while step < limit:
        B[step:] += A[step:][extra] * B[:-step]
        A[step:] *= A[:-step]
        step *= 2
    return B


def _longest_run(sorted_slots: NDArray[np.int64]) -> int:
    if len(sorted_slots) == 0:
        return 0
    change = np.flatnonzero(np.diff(sorted_slots)) + 1
    bounds = np.concatenate(([0], change, [len(sorted_slots)]))
    return int(np.diff(bounds).max())


class DampedKeyStats:
    """Damped sums of several values per key, at several decay rates, with the state carried across batches.

    Parameters
    ----------
    decays : sequence of float
        Decay rates λ (per second); a value's weight halves every ``1/λ`` seconds.
    n_values : int
        Number of value columns summed per key (the caller puts 1 in a column to get the weight ``w``).
    idle_timeout : float or None
        Forget keys not seen for this many seconds (checked once per batch); None keeps every key.

    Attributes
    ----------
    n_keys : int
        Keys currently held.

    Examples
    --------
    Two packets of one key one second apart with λ = 1: the weight is 2^−1 + 1.

    >>> stats = DampedKeyStats(decays=(1.0,), n_values=2)
    >>> slots, new = stats.assign([b"a", b"a"])
    >>> S = stats.update(slots, np.array([0.0, 1.0]), np.array([[1.0, 10.0], [1.0, 20.0]]))
    >>> S[:, 0, :].tolist()
    [[1.0, 10.0], [1.5, 25.0]]
    >>> new.tolist()
    [True, False]
    """

    def __init__(self, *, decays: Sequence[float], n_values: int, idle_timeout: float | None = None) -> None:
        self.decays = np.asarray(decays, dtype=np.float64)
        self.n_values = int(n_values)
        self.idle_timeout = idle_timeout
        self._index: dict[bytes, int] = {}
        self._keys: list[bytes | None] = []
        self._free: list[int] = []
        self._last_t = np.zeros(0, dtype=np.float64)
        self._sums = np.zeros((0, len(self.decays), self.n_values), dtype=np.float64)
        self.n_pruned = 0

    @property
    def n_keys(self) -> int:
        return len(self._index)

    def _grow(self, needed: int) -> None:
        capacity = len(self._last_t)
        if needed <= capacity:
            return
        new = max(needed, 2 * capacity, 64)
        self._last_t = np.concatenate([self._last_t, np.zeros(new - capacity)])
        pad = np.zeros((new - capacity, len(self.decays), self.n_values))
        self._sums = np.concatenate([self._sums, pad])
        self._keys.extend([None] * (new - capacity))

    def lookup(self, keys: Sequence[bytes]) -> NDArray[np.int64]:
        """Slots of ``keys`` (−1 for keys not held); nothing is created."""
        get = self._index.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def assign(self, keys: Sequence[bytes]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Slots of ``keys``, creating missing ones; also whether each entry is the first of a new key."""
        slots = np.empty(len(keys), dtype=np.int64)
        new = np.zeros(len(keys), dtype=bool)
        index = self._index
        for i, key in enumerate(keys):
            slot = index.get(key)
            if slot is None:
                if self._free:
                    slot = self._free.pop()
                else:
                    slot = len(index) + len(self._free)
                    self._grow(slot + 1)
                index[key] = slot
                self._keys[slot] = key
                self._sums[slot] = 0.0
                self._last_t[slot] = -np.inf
                new[i] = True
            slots[i] = slot
        return slots, new

    def snapshot(self, slots: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(last time, sums) of ``slots`` as held now (before :meth:`update` of the current batch)."""
        return self._last_t[slots].copy(), self._sums[slots].copy()

    def update(self, slots: NDArray[np.int64], t: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray:
        """Insert one value row per packet and return every packet's sums right after its own insertion.

        Parameters
        ----------
        slots : numpy.ndarray of int, shape (n,)
            From :meth:`assign`.
        t : numpy.ndarray of float, shape (n,)
            Non-decreasing times in seconds.
        values : numpy.ndarray, shape (n, n_values)

        Returns
        -------
        numpy.ndarray of shape (n, n_decays, n_values), in the packets' order.
        """
        n = len(slots)
        if n == 0:
            return np.zeros((0, len(self.decays), self.n_values))
        order = np.argsort(slots, kind="stable")
        s_slots, s_t = slots[order], t[order]
        first = np.ones(n, dtype=bool)
        first[1:] = s_slots[1:] != s_slots[:-1]
        previous_t = np.empty(n)
        previous_t[1:] = s_t[:-1]
        previous_t[first] = self._last_t[s_slots[first]]
        gap = np.where(np.isfinite(previous_t), s_t - previous_t, np.inf)
        a = np.exp2(-np.maximum(gap, 0.0)[:, None] * self.decays[None, :])  # (n, L)
        b = np.repeat(values[order][:, None, :], len(self.decays), axis=1)  # (n, L, C)
        carried = self._sums[s_slots[first]] * a[first][:, :, None]
        b[first] += carried
        a[first] = 0.0
        sums = linear_scan(a, b, max_run=_longest_run(s_slots))
        last = np.ones(n, dtype=bool)
        last[:-1] = s_slots[1:] != s_slots[:-1]
        self._sums[s_slots[last]] = sums[last]
        self._last_t[s_slots[last]] = s_t[last]
        out = np.empty_like(sums)
        out[order] = sums
        return out

    def prune(self, now: float) -> int:
        """Forget keys idle for more than ``idle_timeout`` seconds at time ``now``; return how many."""
        if self.idle_timeout is None or not self._index:
            return 0
        held = np.fromiter(self._index.values(), dtype=np.int64, count=len(self._index))
        stale = held[self._last_t[held] < now - self.idle_timeout]
        for slot in stale.tolist():
            key = self._keys[slot]
            assert key is not None
            del self._index[key]
            self._keys[slot] = None
            self._free.append(slot)
        self.n_pruned += len(stale)
        return len(stale)
