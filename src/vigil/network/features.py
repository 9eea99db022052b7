"""Per-packet features from damped statistics per source host, destination host, host pair and socket.

For every packet, at each decay rate λ (default 5, 3, 1, 0.1 and 0.01 per second: windows from ~0.2 s to
~100 s), the extractor reports (``<group>_<stat>_L<λ>``; the ``dst`` group only at the fast rates of
``dst_decays``, default 5, 3 and 1, because a target's slow windows stay raised for minutes after a flood
and would flag all of its benign traffic long after the attack), 115 features by default:

========  =====================================================================================================
group     statistics
========  =====================================================================================================
host      source host: ``w`` (damped packet count), ``mean``/``std`` of frame size, ``new_peer`` and
          ``new_socket`` (share of its packets that opened a host pair / socket not seen before: fan-out,
          the signature of scans), ``syn`` (share of bare TCP SYNs)
dst       destination host: ``w``, ``mean``, ``std``, ``new_source`` (share of its incoming packets from a
          pair not seen before: fan-in, the signature of spoofed floods), ``syn``
chan      host pair src→dst: ``w``, ``mean``, ``std``, ``mag`` and ``radius`` (√ of the sum of the squared
          means / of the variances of both directions), ``reply`` (the reverse direction's share of the
          pair's weight), ``jit_mean``/``jit_std`` (damped inter-arrival time within the pair)
sock      socket src:port→dst:port/protocol: ``w``, ``mean``, ``std``, ``mag``, ``radius``, ``reply``
========  =====================================================================================================

The host, pair and socket groups follow Kitsune's AfterImage (Mirsky et al., NDSS 2018); the destination
group, the novelty shares and ``reply`` are additions that make floods and scans visible, and they replace
AfterImage's approximate covariance and correlation, which need a nonlinear per-packet update. All of it is
O(1) memory per key and O(1) time per packet, computed per batch by :class:`~vigil.network.damped.DampedKeyStats`.

Packets must arrive in time order; a timestamp earlier than the previous one (capture reordering) is
treated as equal to it and counted in ``n_reordered``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.errors import InvalidInputError
from vigil.network.damped import DampedKeyStats
from vigil.network.packets import TCP_FLAGS, PacketTable

__all__ = [
    "DEFAULT_DECAYS",
    "DEFAULT_DST_DECAYS",
    "GROUP_STATS",
    "PacketFeatureExtractor",
    "decays_for_training",
    "extract_features",
]

DEFAULT_DECAYS = (5.0, 3.0, 1.0, 0.1, 0.01)
DEFAULT_DST_DECAYS = (5.0, 3.0, 1.0)
GROUP_STATS = {
    "host": ("w", "mean", "std", "new_peer", "new_socket", "syn"),
    "dst": ("w", "mean", "std", "new_source", "syn"),
    "chan": ("w", "mean", "std", "mag", "radius", "reply", "jit_mean", "jit_std"),
    "sock": ("w", "mean", "std", "mag", "radius", "reply"),
}
_SYN, _ACK = TCP_FLAGS["SYN"], TCP_FLAGS["ACK"]


def decays_for_training(seconds: float, decays: Sequence[float] = DEFAULT_DECAYS, *, cycles: float = 10.0) -> tuple:
    """The decay rates whose half-life (1/λ s) fits ``cycles`` times in a training capture of ``seconds``.

    A window much longer than the training capture never reaches its steady state during training, so every
    later benign packet looks unlike the training ones; such rates are left out (the two fastest always stay).

    Examples
    --------
    >>> decays_for_training(300.0)
    (5.0, 3.0, 1.0, 0.1)
    >>> decays_for_training(5000.0)
    (5.0, 3.0, 1.0, 0.1, 0.01)
    """
    ordered = sorted((float(d) for d in decays), reverse=True)
    kept = [d for i, d in enumerate(ordered) if i < 2 or cycles / d <= seconds]
    return tuple(kept)


def _keys(columns: Sequence[NDArray[Any]]) -> tuple[list[bytes], NDArray[np.intp], NDArray[np.intp]]:
    """Unique rows of the key columns as bytes, each packet's position among them, and first occurrences."""
    stacked = np.ascontiguousarray(np.stack([np.asarray(c, dtype=np.uint64) for c in columns], axis=1))
    rows = stacked.view(np.dtype((np.void, 8 * stacked.shape[1]))).ravel()
    unique, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return [u.tobytes() for u in unique], inverse.ravel(), first


def _mean_std(sums: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(w, mean, variance) from sums whose first three value columns are 1, x and x²."""
    w = sums[..., 0]
    safe = np.where(w > 0, w, 1.0)
    mean = np.where(w > 0, sums[..., 1] / safe, 0.0)
    var = np.where(w > 0, np.abs(sums[..., 2] / safe - mean**2), 0.0)
    return w, mean, var


class PacketFeatureExtractor:
    """Stateful extractor of damped per-packet statistics (see the module docstring for the features).

    Parameters
    ----------
    decays : tuple of float
        Decay rates λ per second.
    idle_timeout : float or None
        Seconds after which a key that saw no packet is forgotten (bounds memory on long captures and
        spoofed floods); None never forgets.
    dst_decays : tuple of float
        The decay rates at which the destination-host group is reported.
    batch_size : int
        Packets processed per vectorised step by :meth:`process`.

    Attributes
    ----------
    n_packets : int
        Packets processed so far.
    n_reordered : int
        Packets whose timestamp went backwards and was raised to the previous one.

    Examples
    --------
    Two packets from one host 1 s apart, λ = 1: the host's damped count is 1 then 2^−1 + 1.

    >>> packets = PacketTable.from_records([
    ...     {"time": 0.0, "length": 100, "src": "10.0.0.2", "dst": "10.0.0.1", "proto": 17},
    ...     {"time": 1.0, "length": 300, "src": "10.0.0.2", "dst": "10.0.0.1", "proto": 17},
    ... ])
    >>> X = PacketFeatureExtractor(decays=(1.0,)).process(packets)
    >>> names = PacketFeatureExtractor(decays=(1.0,)).feature_names
    >>> dict(zip(names[:3], X[1, :3].round(3).tolist()))
    {'host_w_L1': 1.5, 'host_mean_L1': 233.333, 'host_std_L1': 94.281}
    """

    def __init__(
        self,
        *,
        decays: Sequence[float] = DEFAULT_DECAYS,
        dst_decays: Sequence[float] = DEFAULT_DST_DECAYS,
        idle_timeout: float | None = 600.0,
        batch_size: int = 8192,
    ) -> None:
        self.decays = tuple(float(d) for d in decays)
        if not self.decays or any(not np.isfinite(d) or d <= 0 for d in self.decays):
            msg = f"decays must be positive rates per second, got {decays!r}"
            raise InvalidInputError(msg)
        self.dst_decays = tuple(float(d) for d in dst_decays if float(d) in self.decays)
        self.idle_timeout = idle_timeout
        self.batch_size = int(batch_size)
        kwargs: dict[str, Any] = {"decays": self.decays, "idle_timeout": idle_timeout}
        self._host = DampedKeyStats(n_values=6, **kwargs)  # 1, size, size², new pair, new socket, syn
        self._dst = DampedKeyStats(n_values=5, decays=self.dst_decays or (1.0,), idle_timeout=idle_timeout)
        self._chan = DampedKeyStats(n_values=5, **kwargs)  # 1, size, size², jitter, jitter²
        self._sock = DampedKeyStats(n_values=3, **kwargs)  # 1, size, size²
        self._last_time = -np.inf
        self.n_packets = 0
        self.n_reordered = 0

    @classmethod
    def from_feature_names(cls, names: Sequence[str], **params: Any) -> PacketFeatureExtractor:
        """An extractor producing exactly ``names`` (as saved with a fitted pipeline), or an error.

        Examples
        --------
        >>> names = PacketFeatureExtractor(decays=(5.0, 1.0), dst_decays=(5.0,)).feature_names
        >>> PacketFeatureExtractor.from_feature_names(names).decays
        (5.0, 1.0)
        """
        decays: list[float] = []
        dst: list[float] = []
        for name in names:
            tag = name.rsplit("_L", 1)[-1]
            try:
                value = float(tag)
            except ValueError:
                value = None
            if value is None or not name.startswith(tuple(GROUP_STATS)):
                msg = f"{name!r} is not a packet feature name (like 'host_w_L5')"
                raise InvalidInputError(msg)
            if value not in decays:
                decays.append(value)
            if name.startswith("dst_") and value not in dst:
                dst.append(value)
        extractor = cls(decays=decays, dst_decays=dst, **params)
        if extractor.feature_names != list(names):
            msg = "the feature names do not match the packet features of any extractor configuration"
            raise InvalidInputError(msg)
        return extractor

    @property
    def feature_names(self) -> list[str]:
        """Output column names, in order: for each λ, the host, dst, chan and sock statistics."""
        names = []
        for decay in self.decays:
            tag = f"L{decay:g}"
            for group, stats in GROUP_STATS.items():
                if group != "dst" or decay in self.dst_decays:
                    names += [f"{group}_{stat}_{tag}" for stat in stats]
        return names

    @property
    def n_keys(self) -> dict[str, int]:
        """Keys currently held per group."""
        return {
            "host": self._host.n_keys,
            "dst": self._dst.n_keys,
            "chan": self._chan.n_keys,
            "sock": self._sock.n_keys,
        }

    def process(self, packets: PacketTable) -> NDArray[np.float64]:
        """Update the statistics with ``packets`` (in time order) and return their features, shape (n, F)."""
        out = [
            self._batch(packets.take(slice(i, i + self.batch_size))) for i in range(0, len(packets), self.batch_size)
        ]
        if not out:
            return np.zeros((0, len(self.feature_names)))
        return np.concatenate(out)

    def _times(self, raw: NDArray[np.float64]) -> NDArray[np.float64]:
        if not np.isfinite(raw).all():
            msg = "packet timestamps must be finite"
            raise InvalidInputError(msg)
        t = np.maximum.accumulate(np.concatenate(([self._last_time], raw)))[1:]
        self.n_reordered += int((t > raw).sum())
        self._last_time = float(t[-1])
        return t

    def _reverse(
        self,
        stats: DampedKeyStats,
        slots: NDArray[np.int64],
        rev_slots: NDArray[np.int64],
        before: tuple[NDArray[np.float64], NDArray[np.float64]],
        sums: NDArray[np.float64],
        t: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Sums (w, x, x²) of each packet's reverse key as they stood at the packet's time."""
        n = len(slots)
        decays = stats.decays
        result = np.zeros((n, len(decays), 3))
        order = np.lexsort((np.arange(n), slots))
        combined = slots[order] * n + order
        query = np.where(rev_slots >= 0, rev_slots * n + np.arange(n), -1)
        pos = np.searchsorted(combined, query, side="left") - 1
        valid = (rev_slots >= 0) & (pos >= 0)
        found = np.zeros(n, dtype=bool)
        found[valid] = slots[order[pos[valid]]] == rev_slots[valid]
        j = order[pos[found]]
        factor = np.exp2(-(t[found] - t[j])[:, None] * decays[None, :])
        result[found] = sums[j, :, :3] * factor[:, :, None]
        carried = (rev_slots >= 0) & ~found
        last_t, last_sums = before
        held = carried & np.isfinite(last_t)
        factor = np.exp2(-(t[held] - last_t[held])[:, None] * decays[None, :])
        result[held] = last_sums[held][:, :, :3] * factor[:, :, None]
        return result

    def _batch(self, p: PacketTable) -> NDArray[np.float64]:
        n = len(p)
        if n == 0:
            return np.zeros((0, len(self.feature_names)))
        t = self._times(p.time)
        size = p.length.astype(np.float64)
        ones = np.ones(n)
        syn = ((p.proto == 6) & (p.flags & _SYN > 0) & (p.flags & _ACK == 0)).astype(np.float64)
        ports = (p.sport.astype(np.uint64) << np.uint64(24)) | (p.dport.astype(np.uint64) << np.uint64(8))
        ports = ports | p.proto.astype(np.uint64)
        rports = (p.dport.astype(np.uint64) << np.uint64(24)) | (p.sport.astype(np.uint64) << np.uint64(8))
        rports = rports | p.proto.astype(np.uint64)

        # host pairs and sockets first: whether a packet opens a new one feeds the host statistics
        chan_keys, chan_inv, chan_first = _keys((p.src_hi, p.src_lo, p.dst_hi, p.dst_lo))
        chan_slot_u, chan_new_u = self._chan.assign(chan_keys)
        chan_slots = chan_slot_u[chan_inv]
        new_chan = np.zeros(n)
        new_chan[chan_first[chan_new_u]] = 1.0
        rchan_keys, rchan_inv, _ = _keys((p.dst_hi, p.dst_lo, p.src_hi, p.src_lo))
        rchan_slots = self._chan.lookup(rchan_keys)[rchan_inv]

        sock_keys, sock_inv, sock_first = _keys((p.src_hi, p.src_lo, p.dst_hi, p.dst_lo, ports))
        sock_slot_u, sock_new_u = self._sock.assign(sock_keys)
        sock_slots = sock_slot_u[sock_inv]
        new_sock = np.zeros(n)
        new_sock[sock_first[sock_new_u]] = 1.0
        rsock_keys, rsock_inv, _ = _keys((p.dst_hi, p.dst_lo, p.src_hi, p.src_lo, rports))
        rsock_slots = self._sock.lookup(rsock_keys)[rsock_inv]

        host_keys, host_inv, _ = _keys((p.src_hi, p.src_lo))
        host_slots = self._host.assign(host_keys)[0][host_inv]
        host = self._host.update(host_slots, t, np.column_stack([ones, size, size**2, new_chan, new_sock, syn]))
        dst_keys, dst_inv, _ = _keys((p.dst_hi, p.dst_lo))
        dst_slots = self._dst.assign(dst_keys)[0][dst_inv]
        dst = self._dst.update(dst_slots, t, np.column_stack([ones, size, size**2, new_chan, syn]))

        jitter = self._jitter(chan_slots, t)
        chan_before = self._chan.snapshot(np.maximum(rchan_slots, 0))
        chan = self._chan.update(chan_slots, t, np.column_stack([ones, size, size**2, jitter, jitter**2]))
        chan_rev = self._reverse(self._chan, chan_slots, rchan_slots, chan_before, chan, t)
        sock_before = self._sock.snapshot(np.maximum(rsock_slots, 0))
        sock = self._sock.update(sock_slots, t, np.column_stack([ones, size, size**2]))
        sock_rev = self._reverse(self._sock, sock_slots, rsock_slots, sock_before, sock, t)

        self.n_packets += n
        for stats in (self._host, self._dst, self._chan, self._sock):
            stats.prune(float(t[-1]))
        return self._assemble(host, dst, chan, chan_rev, sock, sock_rev)

    def _jitter(self, slots: NDArray[np.int64], t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Time since the previous packet of the same host pair (0 for a pair's first packet)."""
        order = np.argsort(slots, kind="stable")
        s_slots, s_t = slots[order], t[order]
        previous = np.empty(len(t))
        previous[1:] = s_t[:-1]
        first = np.ones(len(t), dtype=bool)
        first[1:] = s_slots[1:] != s_slots[:-1]
        carried, _ = self._chan.snapshot(s_slots[first])
        previous[first] = np.where(np.isfinite(carried), carried, s_t[first])
        out = np.empty(len(t))
        out[order] = s_t - previous
        return out

    def _assemble(self, host, dst, chan, chan_rev, sock, sock_rev) -> NDArray[np.float64]:
        columns: list[NDArray[np.float64]] = []
        hw, hmean, hvar = _mean_std(host)
        dw, dmean, dvar = _mean_std(dst)
        cw, cmean, cvar = _mean_std(chan)
        rw, rmean, rvar = _mean_std(chan_rev)
        sw, smean, svar = _mean_std(sock)
        qw, qmean, qvar = _mean_std(sock_rev)
        jit_mean = chan[..., 3] / cw
        jit_var = np.abs(chan[..., 4] / cw - jit_mean**2)
        for k, decay in enumerate(self.decays):
            columns += [hw[:, k], hmean[:, k], np.sqrt(hvar[:, k])]
            columns += [host[:, k, 3] / hw[:, k], host[:, k, 4] / hw[:, k], host[:, k, 5] / hw[:, k]]
            if decay in self.dst_decays:
                m = self.dst_decays.index(decay)
                columns += [
                    dw[:, m],
                    dmean[:, m],
                    np.sqrt(dvar[:, m]),
                    dst[:, m, 3] / dw[:, m],
                    dst[:, m, 4] / dw[:, m],
                ]
            columns += [cw[:, k], cmean[:, k], np.sqrt(cvar[:, k])]
            columns += [np.hypot(cmean[:, k], rmean[:, k]), np.sqrt(cvar[:, k] + rvar[:, k])]
            columns += [rw[:, k] / (cw[:, k] + rw[:, k]), jit_mean[:, k], np.sqrt(jit_var[:, k])]
            columns += [sw[:, k], smean[:, k], np.sqrt(svar[:, k])]
            columns += [np.hypot(smean[:, k], qmean[:, k]), np.sqrt(svar[:, k] + qvar[:, k])]
            columns += [qw[:, k] / (sw[:, k] + qw[:, k])]
        return np.column_stack(columns)


def extract_features(packets: PacketTable, **params: Any) -> pd.DataFrame:
    """Features of a whole capture with a fresh :class:`PacketFeatureExtractor`, one row per packet.

    Examples
    --------
    >>> packets = PacketTable.from_records([{"time": 0.0, "length": 60, "src": "10.0.0.2", "dst": "10.0.0.1"}])
    >>> extract_features(packets, decays=(1.0,)).shape
    (1, 25)
    >>> extract_features(packets).shape
    (1, 115)
    """
    extractor = PacketFeatureExtractor(**params)
    return pd.DataFrame(extractor.process(packets), columns=extractor.feature_names)
