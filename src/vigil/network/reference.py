"""The packet features computed one packet at a time in plain Python, as Kitsune's AfterImage does.

A slow, obviously-correct twin of :class:`~vigil.network.features.PacketFeatureExtractor` (same features,
same order, same rules), kept as the reference that the vectorised extractor is tested against and as the
per-packet baseline of the throughput benchmark. It never forgets keys (``idle_timeout=None``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from vigil.network.features import DEFAULT_DECAYS, DEFAULT_DST_DECAYS, GROUP_STATS
from vigil.network.packets import TCP_FLAGS, PacketTable

__all__ = ["SequentialFeatureExtractor"]


class _Stat:
    """Damped sums of a fixed number of values at several decay rates, for one key."""

    __slots__ = ("decays", "sums", "t")

    def __init__(self, decays: Sequence[float], n: int) -> None:
        self.decays = decays
        self.t = -math.inf
        self.sums = [[0.0] * n for _ in decays]

    def at(self, t: float) -> list[list[float]]:
        """Sums decayed to time ``t`` (without inserting anything)."""
        return [[v * 2.0 ** (-d * (t - self.t)) for v in row] for d, row in zip(self.decays, self.sums, strict=True)]

    def insert(self, t: float, values: Sequence[float]) -> list[list[float]]:
        if self.t > -math.inf:
            for k, d in enumerate(self.decays):
                factor = 2.0 ** (-d * (t - self.t))
                self.sums[k] = [v * factor for v in self.sums[k]]
        for row in self.sums:
            for j, x in enumerate(values):
                row[j] += x
        self.t = t
        return [list(row) for row in self.sums]


def _moments(row: Sequence[float]) -> tuple[float, float, float]:
    w = row[0]
    if w <= 0:
        return 0.0, 0.0, 0.0
    mean = row[1] / w
    return w, mean, abs(row[2] / w - mean * mean)


class SequentialFeatureExtractor:
    """Per-packet Python loop computing the features of :mod:`vigil.network.features`.

    Examples
    --------
    >>> packets = PacketTable.from_records([
    ...     {"time": 0.0, "length": 100, "src": "10.0.0.2", "dst": "10.0.0.1", "proto": 17},
    ...     {"time": 1.0, "length": 300, "src": "10.0.0.2", "dst": "10.0.0.1", "proto": 17},
    ... ])
    >>> X = SequentialFeatureExtractor(decays=(1.0,)).process(packets)
    >>> X[1, :3].round(3).tolist()
    [1.5, 233.333, 94.281]
    """

    def __init__(self, *, decays: Sequence[float] = DEFAULT_DECAYS, dst_decays: Sequence[float] = DEFAULT_DST_DECAYS):
        self.decays = tuple(float(d) for d in decays)
        self.dst_decays = tuple(float(d) for d in dst_decays if float(d) in self.decays)
        self._host: dict[tuple, _Stat] = {}
        self._dst: dict[tuple, _Stat] = {}
        self._chan: dict[tuple, _Stat] = {}
        self._sock: dict[tuple, _Stat] = {}
        self._last = -math.inf

    @property
    def n_features(self) -> int:
        per = {g: len(s) for g, s in GROUP_STATS.items()}
        return len(self.decays) * (per["host"] + per["chan"] + per["sock"]) + len(self.dst_decays) * per["dst"]

    def process(self, packets: PacketTable) -> NDArray[np.float64]:
        out = np.empty((len(packets), self.n_features))
        syn_flag, ack_flag = TCP_FLAGS["SYN"], TCP_FLAGS["ACK"]
        for i in range(len(packets)):
            t = max(float(packets.time[i]), self._last)
            self._last = t
            size = float(packets.length[i])
            src = (int(packets.src_hi[i]), int(packets.src_lo[i]))
            dst = (int(packets.dst_hi[i]), int(packets.dst_lo[i]))
            sp, dp, pr, fl = int(packets.sport[i]), int(packets.dport[i]), int(packets.proto[i]), int(packets.flags[i])
            syn = 1.0 if pr == 6 and fl & syn_flag and not fl & ack_flag else 0.0
            chan_key, sock_key = (src, dst), (src, dst, sp, dp, pr)
            new_chan = 0.0 if chan_key in self._chan else 1.0
            new_sock = 0.0 if sock_key in self._sock else 1.0
            chan = self._chan.setdefault(chan_key, _Stat(self.decays, 5))
            sock = self._sock.setdefault(sock_key, _Stat(self.decays, 3))
            rchan = self._chan.get((dst, src))
            rsock = self._sock.get((dst, src, dp, sp, pr))
            rchan_sums = rchan.at(t) if rchan is not None and rchan.t > -math.inf else None
            rsock_sums = rsock.at(t) if rsock is not None and rsock.t > -math.inf else None
            host = self._host.setdefault(src, _Stat(self.decays, 6)).insert(
                t, (1.0, size, size * size, new_chan, new_sock, syn)
            )
            dst_sums = self._dst.setdefault(dst, _Stat(self.dst_decays or (1.0,), 5)).insert(
                t, (1.0, size, size * size, new_chan, syn)
            )
            jitter = t - chan.t if chan.t > -math.inf else 0.0
            chan_sums = chan.insert(t, (1.0, size, size * size, jitter, jitter * jitter))
            sock_sums = sock.insert(t, (1.0, size, size * size))
            row: list[float] = []
            for k, decay in enumerate(self.decays):
                w, mean, var = _moments(host[k])
                row += [w, mean, math.sqrt(var), host[k][3] / w, host[k][4] / w, host[k][5] / w]
                if decay in self.dst_decays:
                    m = self.dst_decays.index(decay)
                    dw, dmean, dvar = _moments(dst_sums[m])
                    row += [dw, dmean, math.sqrt(dvar), dst_sums[m][3] / dw, dst_sums[m][4] / dw]
                for sums, rev, extra in ((chan_sums, rchan_sums, True), (sock_sums, rsock_sums, False)):
                    w, mean, var = _moments(sums[k])
                    rw, rmean, rvar = _moments(rev[k]) if rev is not None else (0.0, 0.0, 0.0)
                    row += [w, mean, math.sqrt(var), math.hypot(mean, rmean), math.sqrt(var + rvar), rw / (w + rw)]
                    if extra:
                        jmean = sums[k][3] / w
                        row += [jmean, math.sqrt(abs(sums[k][4] / w - jmean * jmean))]
            out[i] = row
        return out
