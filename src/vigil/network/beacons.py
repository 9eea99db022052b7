"""Command-and-control beacons: an internal host calling one remote host and port at a regular period, unanswered.

An IoT bot checks in with its controller on a timer: a connection attempt (a TCP SYN, or a UDP datagram) to
a fixed address and port every few seconds to minutes, and while the controller is quiet or gone the
attempts are refused, ignored or answered with no data. Each attempt is one or two packets, so episode
typing sees only stray odd packets; the pattern is in the channel's history. :class:`BeaconTracker` keeps,
per channel (internal source, destination, destination port, protocol), the times of its last attempts and
whether each was answered, across the batches of a live capture, and calls a channel a beacon when

- it has at least ``min_attempts`` attempts (retransmissions within ``retransmit_seconds`` count once);
- the median interval between them (the period) is at least ``min_period`` seconds, and the jitter, the
  median absolute deviation of the intervals over their median, is at most ``max_jitter`` (a robust
  measure: one missed beat doubles one interval and leaves it unchanged);
- at least ``min_silent_share`` of the attempts are *silent*: no packet carrying more than ``tiny_bytes``
  of payload came back from the destination port to the attempt's source port within ``answer_seconds``
  (a refusal, a bare handshake, or nothing). A DNS or NTP exchange is periodic too, but answered;
- and the detector flagged at least one of the channel's packets in the batch (a beacon the model finds
  normal is not an alert).

Replies are looked for within the batch that holds the attempt, so an attempt at the very end of a batch
whose reply arrives in the next counts as silent; the silent share tolerates that.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.errors import InvalidInputError
from vigil.network.packets import TCP_FLAGS

__all__ = ["BeaconRule", "BeaconTracker", "is_internal"]

_SYN, _ACK = TCP_FLAGS["SYN"], TCP_FLAGS["ACK"]


_INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "fc00::/7",
              "fe80::/10", "::1/128")
)  # fmt: skip


def is_internal(address: str) -> bool:
    """True for RFC 1918, unique-local, loopback and link-local addresses (the plant's own hosts).

    Examples
    --------
    >>> is_internal("10.0.0.14"), is_internal("203.0.113.9"), is_internal("not an address")
    (True, False, False)
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in _INTERNAL)


@dataclass(frozen=True)
class BeaconRule:
    """When a channel is a command-and-control beacon (see the module docstring)."""

    min_attempts: int = 6
    min_period: float = 2.0
    max_jitter: float = 0.2
    tiny_bytes: int = 16
    answer_seconds: float = 5.0
    min_silent_share: float = 0.8
    retransmit_seconds: float = 1.5
    max_history: int = 64

    def __post_init__(self) -> None:
        for name in ("min_attempts", "max_history"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 3:
                msg = f"BeaconRule({name}={value!r}) must be a whole number ≥ 3"
                raise InvalidInputError(msg)
        for name in ("min_period", "max_jitter", "answer_seconds", "min_silent_share", "retransmit_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
                msg = f"BeaconRule({name}={value!r}) must be a finite number ≥ 0"
                raise InvalidInputError(msg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _keys(*columns: NDArray[Any]) -> NDArray[np.object_]:
    out = columns[0].astype(str).astype(object)
    for column in columns[1:]:
        out = out + "|" + column.astype(str).astype(object)
    return out


@dataclass
class Beacon:
    """One channel found beaconing: its attempts and the evidence behind the type."""

    source: str
    destination: str
    port: int
    proto: int
    times: NDArray[np.float64]
    period: float
    jitter: float
    silent_share: float
    packets: NDArray[np.int64]

    def evidence(self) -> dict[str, Any]:
        return {
            "period_seconds": self.period,
            "jitter": self.jitter,
            "attempts": len(self.times),
            "destination": f"{self.destination}:{self.port}",
            "protocol": {6: "tcp", 17: "udp"}.get(self.proto, str(self.proto)),
            "silent_share": self.silent_share,
            "first_attempt": float(self.times[0]),
            "last_attempt": float(self.times[-1]),
        }


class BeaconTracker:
    """Per-channel attempt history across the batches of a capture, and the beacons in it.

    Parameters
    ----------
    rule : BeaconRule
    max_channels : int
        Channels remembered at most; past it, the one seen least recently is forgotten (a host scan opens
        one channel per address).

    Examples
    --------
    >>> t = np.arange(12) * 30.0 + np.array([0.0, 0.4, -0.3, 0.2, 0.0, -0.5, 0.3, 0.1, -0.2, 0.4, 0.0, -0.1])
    >>> meta = pd.DataFrame({"time": t, "src": "10.0.0.14", "dst": "198.51.100.23", "sport": 40000 + np.arange(12),
    ...                      "dport": 4444, "proto": 6, "flags": 0x02, "payload": 0})
    >>> [(b.destination, b.port, round(b.period), len(b.times)) for b in BeaconTracker().find(meta, np.ones(12, bool))]
    [('198.51.100.23', 4444, 30, 12)]
    """

    def __init__(self, rule: BeaconRule | None = None, *, max_channels: int = 100_000) -> None:
        self.rule = BeaconRule() if rule is None else rule
        self.max_channels = max_channels
        self._history: OrderedDict[tuple[str, str, int, int], tuple[list[float], list[bool]]] = OrderedDict()
        self._internal: dict[str, bool] = {}

    @property
    def channels(self) -> int:
        return len(self._history)

    def _attempts(self, meta: pd.DataFrame) -> pd.DataFrame:
        rule = self.rule
        src = meta["src"].to_numpy(dtype=object)
        for address in set(src) - self._internal.keys():
            self._internal[address] = is_internal(str(address))
        internal = np.fromiter((self._internal[a] for a in src), dtype=bool, count=len(src))
        proto, flags = meta["proto"].to_numpy(), meta["flags"].to_numpy()
        syn = (proto == 6) & (flags & _SYN > 0) & (flags & _ACK == 0)
        udp = proto == 17
        frame = pd.DataFrame(
            {
                "row": np.arange(len(meta)),
                "time": meta["time"].to_numpy(dtype=np.float64),
                "key": _keys(
                    src, meta["sport"].to_numpy(), meta["dst"].to_numpy(dtype=object), meta["dport"].to_numpy()
                ),
                "back": _keys(
                    meta["dst"].to_numpy(dtype=object), meta["dport"].to_numpy(), src, meta["sport"].to_numpy()
                ),
            }
        )
        candidates = frame[internal & (syn | udp)]
        if not len(candidates):
            return candidates.assign(silent=np.zeros(0, dtype=bool))
        # A UDP datagram that answers one sent to it just before is a reply, not an attempt.
        earlier = pd.merge_asof(
            candidates[["time", "back"]].rename(columns={"back": "key"}).reset_index(),
            frame[["time", "key"]].assign(seen=frame["time"]),
            on="time",
            by="key",
            direction="backward",
            tolerance=rule.answer_seconds,
            allow_exact_matches=False,
        ).set_index("index")
        reply = earlier["seen"].notna().to_numpy() & udp[candidates["row"].to_numpy()]
        candidates = candidates[~reply]
        payload = meta["payload"].to_numpy() if "payload" in meta else np.zeros(len(meta), dtype=np.int64)
        data = frame[payload > rule.tiny_bytes]
        answered = pd.merge_asof(
            candidates[["time", "back"]].rename(columns={"back": "key"}).reset_index(),
            data[["time", "key"]].assign(seen=data["time"]),
            on="time",
            by="key",
            direction="forward",
            tolerance=rule.answer_seconds,
            allow_exact_matches=False,
        ).set_index("index")
        return candidates.assign(silent=answered["seen"].isna().to_numpy())

    def find(self, metadata: pd.DataFrame, decisions: NDArray[np.bool_]) -> list[Beacon]:
        """Add this batch's attempts to the history and return the channels beaconing in it.

        ``metadata`` as for :func:`~vigil.network.incidents.type_incidents` (in time order), with a
        ``payload`` column when known (without it, every reply counts as carrying no data).
        """
        rule = self.rule
        decisions = np.asarray(decisions, dtype=bool)
        if len(decisions) != len(metadata):
            msg = f"BeaconTracker.find: {len(decisions)} decisions for {len(metadata)} packets"
            raise InvalidInputError(msg)
        if not len(metadata):
            return []
        attempts = self._attempts(metadata)
        rows = attempts["row"].to_numpy()
        src = metadata["src"].to_numpy(dtype=object)[rows]
        dst = metadata["dst"].to_numpy(dtype=object)[rows]
        dport = metadata["dport"].to_numpy()[rows]
        proto = metadata["proto"].to_numpy()[rows]
        times = attempts["time"].to_numpy()
        silent = attempts["silent"].to_numpy()
        touched = []
        groups = pd.Series(np.arange(len(rows))).groupby(_keys(src, dst, dport, proto), sort=False).indices
        for at in groups.values():
            first = at[0]
            channel = (str(src[first]), str(dst[first]), int(dport[first]), int(proto[first]))
            past_times, past_silent = self._history.pop(channel, ([], []))
            for i in at:
                if past_times and times[i] - past_times[-1] <= rule.retransmit_seconds:
                    past_silent[-1] = past_silent[-1] and bool(silent[i])
                    continue
                past_times.append(float(times[i]))
                past_silent.append(bool(silent[i]))
            del past_times[: -rule.max_history], past_silent[: -rule.max_history]
            self._history[channel] = (past_times, past_silent)
            touched.append(channel)
        while len(self._history) > self.max_channels:
            self._history.popitem(last=False)
        return [b for channel in touched if (b := self._beacon(channel, metadata, decisions)) is not None]

    def _beacon(self, channel: tuple[str, str, int, int], meta: pd.DataFrame, decisions: NDArray[np.bool_]):
        rule = self.rule
        if channel not in self._history:
            return None
        past_times, past_silent = self._history[channel]
        if len(past_times) < rule.min_attempts:
            return None
        t = np.asarray(past_times)
        gaps = np.diff(t)
        period = float(np.median(gaps))
        if period < rule.min_period or period <= 0:
            return None
        jitter = float(np.median(np.abs(gaps - period)) / period)
        share = float(np.mean(past_silent))
        if jitter > rule.max_jitter or share < rule.min_silent_share:
            return None
        source, destination, port, proto = channel
        src, dst = meta["src"].to_numpy(dtype=object), meta["dst"].to_numpy(dtype=object)
        out = (src == source) & (dst == destination) & (meta["dport"].to_numpy() == port)
        back = (src == destination) & (dst == source) & (meta["sport"].to_numpy() == port)
        mine = (out | back) & (meta["proto"].to_numpy() == proto)
        flagged = np.flatnonzero(mine & decisions)
        if not len(flagged):
            return None
        return Beacon(source, destination, port, proto, t, period, jitter, share, flagged.astype(np.int64))
