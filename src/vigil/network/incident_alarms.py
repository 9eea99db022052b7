"""Which typed network incidents an operator is shown: persistence per host pair, and merging per device.

A detector at a 1 % false-alarm rate flags a few benign packets every minute. Typed one episode at a time,
each stray packet would be an ``unusual_traffic`` incident, so a quiet network would flood the operator
(the synthetic README capture raised 101 of them in 19 minutes). :class:`IncidentAlarmRule` is the
annunciation policy between typed episodes and incidents, in the alarm vocabulary of ISA-18.2 that
:mod:`vigil.alarms` uses for telemetry, and with the same k-of-n implementation
(:class:`~vigil.alarms.policy.AlarmPolicy` run by :class:`~vigil.alarms.stage.AlarmStage`):

1. **Persistence (on-delay).** Each host pair (either direction) is a stream of packets; its alarm is
   raised when ``on_delay`` of its last ``window`` packets are flagged, and reset after ``max_gap`` seconds
   of silence on the pair, so a pair's DNS query of one minute and that of the next are not "in a row".
   An episode of a kind in ``persistent_kinds`` (``unusual_traffic`` and ``new_peer``: kinds that say only
   that the model found the packets odd) is an incident only when one of its packets is in such an alarm.
   The other kinds carry their own persistence in their typing rule (≥ 20 ports probed, ≥ 10 sessions,
   ≥ 20 flooding sources, ≥ 1 MB sent, a regular beacon of ≥ 6 attempts) and are annunciated at once.
2. **Warm-up.** The detector's damped statistics start empty at a capture's first packet, so every host
   pair is new and its first packets look odd. Until the slowest damped window (``warmup_seconds``,
   1/λ of the smallest decay rate of the model's features) has passed since that first packet, episodes
   of the persistent kinds are held back with that reason; the typed attacks are annunciated as ever.
3. **Re-alarm merging (hold-off).** An incident of the same kind on the same device (the address an
   operator acts on, :func:`incident_device`) that starts within ``holdoff_seconds`` of the previous one's
   end is merged into it: one attack spread over several episodes is one incident.

Nothing is dropped silently: the episodes the rule does not annunciate are returned as ``held_back``, each
with its reason in ``evidence["held_back"]`` (``vigil score`` lists them in its incidents JSON, the capture
monitor counts them), and their packets keep their scores and ``anomaly`` flags.

:data:`DEFAULT_RULE`'s on-delay was chosen on benign training traffic only (never on attack labels): the
smallest ``on_delay`` of 10 packets under which no benign development capture raised a persistent-kind
incident (``benchmarks/network_incidents.py``, ``docs/benchmarks-network.md``). The window, gap, warm-up
and hold-off are stated policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.alarms.policy import AlarmPolicy
from vigil.alarms.stage import AlarmStage, AlarmState
from vigil.errors import InvalidInputError
from vigil.network.incidents import NetworkIncident

__all__ = ["DEFAULT_RULE", "PLAIN_RULE", "IncidentAlarmRule", "IncidentAlarms", "incident_device", "pair_keys",
           "warmup_seconds"]  # fmt: skip

_TARGETED = frozenset({"flood", "port_scan", "brute_force"})


def incident_device(incident: NetworkIncident) -> str:
    """The address an operator acts on: the attacked target, or the source for what a device itself does.

    Examples
    --------
    >>> incident_device(NetworkIncident("flood", 0.0, 1.0, np.arange(3), "many (40)", "10.0.0.12"))
    '10.0.0.12'
    >>> incident_device(NetworkIncident("host_scan", 0.0, 1.0, np.arange(3), "10.0.0.7", "many (12)"))
    '10.0.0.7'
    """
    return incident.target if incident.kind in _TARGETED else incident.source


def pair_keys(metadata: pd.DataFrame) -> NDArray[np.object_]:
    """One key per packet for its host pair, the same in both directions (``"a|b"`` with ``a <= b``)."""
    src = metadata["src"].astype(str).to_numpy(dtype=object)
    dst = metadata["dst"].astype(str).to_numpy(dtype=object)
    low = np.where(src <= dst, src, dst)
    high = np.where(src <= dst, dst, src)
    return (low + "|" + high).astype(object)


def warmup_seconds(decays: Sequence[float]) -> float:
    """How long the slowest damped window takes to fill: 1/λ of the smallest decay rate.

    Examples
    --------
    >>> warmup_seconds((5.0, 3.0, 1.0, 0.1))
    10.0
    """
    return 1.0 / min(float(d) for d in decays)


@dataclass(frozen=True)
class IncidentAlarmRule:
    """The annunciation policy for typed network episodes (see the module docstring).

    Parameters
    ----------
    persistence : AlarmPolicy
        k-of-n on-delay (and off-delay) over each host pair's packets.
    max_gap : float
        Seconds of silence on a pair after which its count starts again.
    holdoff_seconds : float
        Incidents of one kind on one device closer than this merge into one; 0 merges none.
    persistent_kinds : tuple of str
        Kinds that need persistence; the others are annunciated as typed.
    warmup : bool
        Hold back persistent-kind episodes during the warm-up of the damped statistics.

    Examples
    --------
    >>> DEFAULT_RULE.persistence.on_delay, DEFAULT_RULE.persistence.window, DEFAULT_RULE.holdoff_seconds
    (3, 10, 60.0)
    >>> IncidentAlarmRule(max_gap=0)
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: IncidentAlarmRule(max_gap=0) must be a positive number of seconds
    """

    persistence: AlarmPolicy = field(default_factory=lambda: AlarmPolicy(on_delay=3, window=10, off_delay=10))
    max_gap: float = 10.0
    holdoff_seconds: float = 60.0
    persistent_kinds: tuple[str, ...] = ("unusual_traffic", "new_peer")
    warmup: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.persistence, AlarmPolicy):
            msg = f"IncidentAlarmRule(persistence={self.persistence!r}) must be an AlarmPolicy"
            raise InvalidInputError(msg)
        for name in ("max_gap", "holdoff_seconds"):
            value = getattr(self, name)
            low_ok = value > 0 if name == "max_gap" else value >= 0
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or not low_ok:
                kind = "positive" if name == "max_gap" else "non-negative"
                msg = f"IncidentAlarmRule({name}={value!r}) must be a {kind} number of seconds"
                raise InvalidInputError(msg)

    def to_dict(self) -> dict[str, Any]:
        return {
            "persistence": self.persistence.to_dict(),
            "max_gap": self.max_gap,
            "holdoff_seconds": self.holdoff_seconds,
            "persistent_kinds": list(self.persistent_kinds),
            "warmup": self.warmup,
        }


DEFAULT_RULE = IncidentAlarmRule()
"""3 of a pair's last 10 packets flagged (reset after 10 s of silence), warm-up held back; merge within 60 s."""

PLAIN_RULE = IncidentAlarmRule(persistence=AlarmPolicy(), holdoff_seconds=0.0, warmup=False)
"""Every typed episode is an incident (what Vigil did before the rule)."""


class IncidentAlarms:
    """Run an :class:`IncidentAlarmRule` over a capture, batch after batch, remembering each pair's count.

    Parameters
    ----------
    rule : IncidentAlarmRule
    threshold : float
        The detector's threshold: a packet above it is flagged.
    warmup_seconds : float
        Seconds from the capture's first packet during which the damped statistics warm up (see
        :func:`warmup_seconds`); 0 for none.

    Examples
    --------
    >>> meta = pd.DataFrame({"time": np.arange(12.0), "src": ["10.0.0.5"] * 12, "dst": ["10.0.0.9"] * 12})
    >>> alarms = IncidentAlarms(IncidentAlarmRule(persistence=AlarmPolicy(on_delay=3, window=4)), threshold=1.0)
    >>> alarms.pair_alarms(meta, np.array([2, 0, 0, 2, 0, 0, 2, 2, 2, 0, 0, 0.0])).astype(int).tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    """

    def __init__(
        self, rule: IncidentAlarmRule = DEFAULT_RULE, *, threshold: float, warmup_seconds: float = 0.0
    ) -> None:
        if not isinstance(rule, IncidentAlarmRule):
            msg = f"IncidentAlarms(rule={rule!r}) must be an IncidentAlarmRule"
            raise InvalidInputError(msg)
        self.rule = rule
        self._stage = AlarmStage(policy=rule.persistence, max_gap=rule.max_gap).fit([threshold, threshold], threshold)
        self._states: dict[str, AlarmState] = {}
        self.warmup_seconds = float(warmup_seconds) if rule.warmup else 0.0
        self._first_time: float | None = None

    @property
    def tracked_pairs(self) -> int:
        """Host pairs whose count is remembered (those with a flagged packet among their last ones)."""
        return len(self._states)

    def pair_alarms(self, metadata: pd.DataFrame, scores: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Per packet: whether its host pair is in alarm (the persistence rule) at that packet.

        Packets are taken in the order given (capture order); each pair continues its count from earlier
        calls.
        """
        scores = np.asarray(scores, dtype=np.float64)
        if len(scores) != len(metadata):
            msg = f"pair_alarms: {len(scores)} scores for {len(metadata)} packets"
            raise InvalidInputError(msg)
        active = np.zeros(len(scores), dtype=bool)
        if not len(scores):
            return active
        keys = pair_keys(metadata)
        times = metadata["time"].to_numpy(dtype=np.float64)
        if self._first_time is None:
            self._first_time = float(times[0])
        flagged = scores > self._stage.base_
        for key, rows in pd.Series(np.arange(len(keys))).groupby(keys, sort=False).indices.items():
            state = self._states.get(key)
            # A pair with no flagged packet and no remembered count cannot reach the on-delay: skip it.
            if state is None and not flagged[rows].any():
                continue
            state = self._stage.start() if state is None else state
            run = self._stage.run(scores[rows], state, timestamps=times[rows])
            active[rows] = run.active
            # A quiet pair's state equals a fresh one: forget it, so memory follows the pairs in alarm.
            if not state.active and not any(state.recent):
                self._states.pop(key, None)
            else:
                self._states[key] = state
        return active

    def annunciate(
        self, incidents: Sequence[NetworkIncident], pair_active: NDArray[np.bool_]
    ) -> tuple[list[NetworkIncident], list[NetworkIncident]]:
        """(incidents to show, episodes held back): persistence for the persistent kinds, then merging."""
        shown: list[NetworkIncident] = []
        held: list[NetworkIncident] = []
        warm_until = (self._first_time or 0.0) + self.warmup_seconds
        for incident in incidents:
            reason = None
            if incident.kind in self.rule.persistent_kinds:
                if self.warmup_seconds > 0 and incident.start < warm_until:
                    reason = f"warm-up: within {self.warmup_seconds:g} s of the capture's first packet"
                elif not self.rule.persistence.is_plain and not pair_active[incident.packets].any():
                    p = self.rule.persistence
                    reason = f"not persistent: no host pair had {p.on_delay} of its last {p.window} packets flagged"
            if reason is None:
                shown.append(incident)
            else:
                held.append(replace(incident, evidence={**incident.evidence, "held_back": reason}))
        return merge_incidents(shown, self.rule.holdoff_seconds), held


def merge_incidents(incidents: Sequence[NetworkIncident], holdoff_seconds: float) -> list[NetworkIncident]:
    """Merge each incident into the previous one of its kind and device when it starts within the hold-off.

    The merged incident keeps the evidence of its largest episode, spans all of them and counts them in
    ``evidence["episodes"]``.

    Examples
    --------
    >>> a = NetworkIncident("port_scan", 0.0, 2.0, np.arange(30), "10.0.0.66", "10.0.0.12")
    >>> b = NetworkIncident("port_scan", 10.0, 12.0, np.arange(30, 80), "10.0.0.66", "10.0.0.12")
    >>> [(i.start, i.end, len(i.packets), i.evidence["episodes"]) for i in merge_incidents([a, b], 30.0)]
    [(0.0, 12.0, 80, 2)]
    """
    if holdoff_seconds <= 0:
        return list(incidents)
    merged: list[NetworkIncident] = []
    open_: dict[tuple[str, str], int] = {}
    for incident in sorted(incidents, key=lambda i: i.start):
        key = (incident.kind, incident_device(incident))
        at = open_.get(key)
        if at is not None and incident.start - merged[at].end <= holdoff_seconds:
            merged[at] = _join(merged[at], incident)
            continue
        open_[key] = len(merged)
        merged.append(replace(incident, evidence={**incident.evidence, "episodes": 1}))
    return merged


def _join(first: NetworkIncident, other: NetworkIncident) -> NetworkIncident:
    main = first if len(first.packets) >= len(other.packets) else other
    episodes = int(first.evidence.get("episodes", 1)) + int(other.evidence.get("episodes", 1))
    return replace(
        main,
        start=min(first.start, other.start),
        end=max(first.end, other.end),
        packets=np.union1d(first.packets, other.packets).astype(np.int64),
        evidence={**main.evidence, "episodes": episodes},
    )
