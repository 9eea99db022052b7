"""Type network alerts as incidents an operator can act on: what it looks like, the evidence, what to do.

Flagged packets are grouped into episodes (a gap of more than ``gap_seconds`` between flagged packets starts
a new one). Each episode is typed from its packets' addresses, ports, flags, sizes and rates:

==================  ===========================================================================================
kind                rule (first that matches)
==================  ===========================================================================================
``flood``           one target receives most flagged packets from ≥ ``min_sources`` sources, or at ≥
                    ``flood_pps`` with mostly bare SYNs or UDP: a (D)DoS flood
``port_scan``       one source probes ≥ ``min_ports`` ports of one target (vertical scan)
``host_scan``       one source probes ≥ ``min_hosts`` hosts (horizontal scan, as Mirai spreads)
``brute_force``     one source opens ≥ ``min_sessions`` short connections to one service of one target
                    (repeated login attempts, an unusual authentication pattern)
``exfiltration``    one source sends ≥ ``exfil_bytes`` in large packets to one destination
``new_peer``        the flagged traffic is mostly between hosts, or to a service, not seen earlier in the capture
``unusual_traffic`` none of the above, or fewer than ``min_packets`` flagged packets
==================  ===========================================================================================

Before episodes are cut, ``c2_beacon`` channels are taken out: an internal host's regular, unanswered
connection attempts to one remote host and port, with at least one of its packets flagged
(:mod:`vigil.network.beacons`; the evidence gives period, jitter, attempts and destination). Its attempts
are seconds to minutes apart, so no episode would hold more than one of them.

Each incident carries the evidence behind its type (peers, ports, rates, SYN share, bytes), the model's top
features, and a suggested action naming the device or address to act on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.network.beacons import Beacon, BeaconTracker
from vigil.network.packets import TCP_FLAGS

__all__ = ["INCIDENT_KINDS", "NetworkIncident", "type_incidents"]

INCIDENT_KINDS = ("flood", "port_scan", "host_scan", "brute_force", "exfiltration", "c2_beacon", "new_peer",
                  "unusual_traffic")  # fmt: skip
_SYN, _ACK = TCP_FLAGS["SYN"], TCP_FLAGS["ACK"]
_AUTH_PORTS = {21: "FTP", 22: "SSH", 23: "Telnet", 80: "HTTP", 443: "HTTPS", 445: "SMB", 1883: "MQTT",
               3389: "RDP", 5900: "VNC", 8080: "HTTP", 8883: "MQTT/TLS"}  # fmt: skip


@dataclass
class NetworkIncident:
    """One typed network incident.

    Attributes
    ----------
    kind : str
        One of :data:`INCIDENT_KINDS`.
    start, end : float
        Capture time (epoch seconds) of its first and last flagged packet.
    packets : numpy.ndarray of int
        Positions (rows) of its flagged packets in the scored table.
    source, target : str
        The main attacking and attacked address (``"many (N)"`` when spread).
    evidence : dict
        Rates, counts, ports and peers behind the type.
    top_features : list of (str, float)
        The detector's most contributing features over the incident, with their shares.
    action : str
        The suggested response.

    Examples
    --------
    >>> incident = NetworkIncident("port_scan", 0.0, 2.0, np.arange(40), "10.0.0.66", "10.0.0.12",
    ...                            evidence={"packets_per_second": 20.0}, action="block 10.0.0.66")
    >>> incident.summary()
    'port_scan: 10.0.0.66 → 10.0.0.12, 40 packets (20/s). block 10.0.0.66'
    """

    kind: str
    start: float
    end: float
    packets: NDArray[np.int64]
    source: str
    target: str
    evidence: dict[str, Any] = field(default_factory=dict)
    top_features: list[tuple[str, float]] = field(default_factory=list)
    action: str = ""

    def summary(self) -> str:
        """One line for a console or an alert message."""
        rate = self.evidence.get("packets_per_second", 0.0)
        return f"{self.kind}: {self.source} → {self.target}, {len(self.packets)} packets ({rate:.0f}/s). {self.action}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["packets"] = len(self.packets)
        out["top_features"] = [[n, s] for n, s in self.top_features]
        return out


def _episodes(times: NDArray[np.float64], flagged: NDArray[np.intp], gap: float) -> list[NDArray[np.intp]]:
    if len(flagged) == 0:
        return []
    t = times[flagged]
    cuts = np.flatnonzero(np.diff(t) > gap) + 1
    return np.split(flagged, cuts)


def _top(values: pd.Series) -> tuple[Any, float]:
    counts = values.value_counts()
    return counts.index[0], float(counts.iloc[0] / counts.sum())


def _main_pair(ep: pd.DataFrame) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """The busiest host pair (either direction): its initiator (the side sending bare SYNs, else the busier
    sender), its responder, and the packets each way."""
    a = ep["src"].to_numpy(dtype=object)
    b = ep["dst"].to_numpy(dtype=object)
    pairs = pd.Series([(x, y) if x <= y else (y, x) for x, y in zip(a, b, strict=True)], index=ep.index)
    first, second = pairs.value_counts().index[0]
    syn = (ep["proto"] == 6) & (ep["flags"] & _SYN > 0) & (ep["flags"] & _ACK == 0)
    forward = ep[(ep["src"] == first) & (ep["dst"] == second)]
    backward = ep[(ep["src"] == second) & (ep["dst"] == first)]
    score_f = (int(syn[forward.index].sum()), len(forward))
    score_b = (int(syn[backward.index].sum()), len(backward))
    if score_f >= score_b:
        return str(first), str(second), forward, backward
    return str(second), str(first), backward, forward


def _flood_action(to_target: pd.DataFrame, target: str, n_sources: int, pps: float) -> str:
    port = int(to_target["dport"].mode().iloc[0])
    return (
        f"rate-limit traffic to {target} port {port} (SYN cookies or upstream scrubbing); "
        f"{n_sources} sources at {pps:.0f} packets/s"
    )


class _Seen:
    """Membership in any of several collections, without copying them into one."""

    def __init__(self, *collections: Collection[Any]) -> None:
        self.collections = collections

    def __contains__(self, item: Any) -> bool:
        return any(item in c for c in self.collections)


def _classify(
    ep: pd.DataFrame, seen_pairs: _Seen, seen_services: _Seen, p: dict[str, float]
) -> tuple[str, str, str, dict]:
    duration = max(float(ep["time"].max() - ep["time"].min()), 1.0)  # rates over at least one second
    target, target_share = _top(ep["dst"])
    source, source_share = _top(ep["src"])
    syn = ((ep["proto"] == 6) & (ep["flags"] & _SYN > 0) & (ep["flags"] & _ACK == 0)).mean()
    to_target = ep[ep["dst"] == target]
    from_source = ep[ep["src"] == source]
    evidence: dict[str, Any] = {
        "packets_per_second": len(ep) / duration,
        "duration_seconds": duration,
        "bytes": int(ep["length"].sum()),
        "syn_share": float(syn),
        "udp_share": float((ep["proto"] == 17).mean()),
        "top_source": source,
        "top_source_share": source_share,
        "top_target": target,
        "top_target_share": target_share,
        "distinct_sources_to_target": int(to_target["src"].nunique()),
        "distinct_targets_of_source": int(from_source["dst"].nunique()),
    }
    initiator, responder, out, back = _main_pair(ep)
    ports = len(set(out["dport"]) | set(back["sport"]))
    sessions = len(set(out["sport"]) | set(back["dport"]))
    main_port = int(pd.concat([out["dport"], back["sport"]]).mode().iloc[0])
    source, from_source = initiator, ep[ep["src"] == initiator]
    evidence["distinct_targets_of_source"] = int(from_source["dst"].nunique())
    evidence.update({"distinct_ports_probed": ports, "sessions": sessions, "main_port": main_port})
    # peak rate toward the target: the busiest one-second bin (benign packets around a flood dilute a mean)
    target_pps = float(np.bincount(np.floor(to_target["time"] - to_target["time"].min()).astype(np.int64)).max())
    evidence["peak_packets_per_second_to_target"] = target_pps
    n_sources = evidence["distinct_sources_to_target"]
    victim = responder
    if len(ep) < p["min_packets"]:
        return "unusual_traffic", source, victim, {**evidence, "action": f"inspect traffic of {source} to {victim}"}
    if target_share >= 0.5 and n_sources >= p["min_sources"]:
        return "flood", "many", target, {**evidence, "action": _flood_action(to_target, target, n_sources, target_pps)}
    if ports >= p["min_ports"]:
        action = f"block {source} and check {victim} for exposed services ({ports} ports probed)"
        return "port_scan", source, victim, {**evidence, "action": action}
    if evidence["distinct_targets_of_source"] >= p["min_hosts"]:
        port = int(from_source["dport"].mode().iloc[0])
        return (
            "host_scan",
            source,
            f"many ({evidence['distinct_targets_of_source']})",
            {
                **evidence,
                "action": f"isolate {source} (it probes port {port} across the network, as worms like Mirai spread)",
            },
        )
    if target_share >= 0.5 and target_pps >= p["flood_pps"] and (syn >= 0.5 or evidence["udp_share"] >= 0.5):
        action = _flood_action(to_target, target, n_sources, target_pps) + f"; block {source}"
        return "flood", source, target, {**evidence, "action": action}
    if sessions >= p["min_sessions"] and ports <= 3:
        service = _AUTH_PORTS.get(main_port, f"port {main_port}")
        action = f"block {source}; lock or rotate the credentials of {service} on {victim} and rate-limit logins"
        return "brute_force", source, victim, {**evidence, "action": action}
    big = from_source[from_source["length"] >= 500]
    if int(big["length"].sum()) >= p["exfil_bytes"]:
        dest = str(big["dst"].mode().iloc[0])
        action = f"isolate device {source} and block {dest}; {int(big['length'].sum())} bytes sent"
        return "exfiltration", source, dest, {**evidence, "action": action}
    pairs = list(zip(ep["src"], ep["dst"], strict=True))
    services = list(zip(ep["dst"], ep["dport"], ep["proto"], strict=True))
    unseen = np.mean([(a not in seen_pairs) or (s not in seen_services) for a, s in zip(pairs, services, strict=True)])
    evidence["unseen_peer_or_service_share"] = float(unseen)
    if unseen >= 0.5:
        action = f"verify that {source} should talk to {target} on port {main_port}; isolate {source} if not"
        return "new_peer", source, target, {**evidence, "action": action}
    return "unusual_traffic", source, target, {**evidence, "action": f"inspect traffic of {source} to {target}"}


def type_incidents(
    metadata: pd.DataFrame,
    decisions: NDArray[np.bool_],
    *,
    contributions: NDArray[np.float64] | None = None,
    feature_names: Sequence[str] | None = None,
    gap_seconds: float = 2.0,
    min_sources: int = 20,
    flood_pps: float = 200.0,
    min_ports: int = 20,
    min_hosts: int = 10,
    min_sessions: int = 10,
    exfil_bytes: int = 1_000_000,
    min_packets: int = 10,
    known_pairs: Collection[tuple[str, str]] = (),
    known_services: Collection[tuple[str, int, int]] = (),
    beacons: BeaconTracker | None = None,
) -> list[NetworkIncident]:
    """Group flagged packets into incidents and type each (see the module docstring).

    Parameters
    ----------
    metadata : pandas.DataFrame
        One row per packet as from :meth:`~vigil.network.packets.PacketTable.metadata` (time, src, dst, sport,
        dport, proto, flags, length), in time order.
    decisions : numpy.ndarray of bool
        The detector's decision per packet.
    contributions : numpy.ndarray, optional
        Per-packet feature shares (rows summing to 1), to report each incident's top features.
    min_packets : int
        Episodes with fewer flagged packets are ``unusual_traffic`` (too little to call a flood or a scan).
    feature_names : sequence of str, optional
        Names of the contribution columns.
    known_pairs, known_services : collections of tuples, optional
        (src, dst) pairs and (dst, dport, proto) services seen *before* ``metadata`` starts (earlier batches
        of a live capture), so that ``new_peer`` means new to the capture, not to the batch.
    beacons : BeaconTracker, optional
        The channels' attempt history from earlier batches (a fresh one when ``None``); it is updated.

    Examples
    --------
    >>> from vigil.network.synthetic import make_capture
    >>> cap = make_capture(["port_scan"], train_seconds=20, gap_seconds=5, n_devices=2)
    >>> incidents = type_incidents(cap.packets.metadata(), cap.y)
    >>> [(i.kind, i.source, i.target) for i in incidents]
    [('port_scan', '10.0.0.66', '10.0.0.12')]
    >>> incidents[0].action
    'block 10.0.0.66 and check 10.0.0.12 for exposed services (1000 ports probed)'
    """
    params = {"min_sources": min_sources, "flood_pps": flood_pps, "min_ports": min_ports, "min_hosts": min_hosts,
              "min_sessions": min_sessions, "exfil_bytes": exfil_bytes, "min_packets": min_packets}  # fmt: skip
    decisions = np.asarray(decisions, dtype=bool)
    times = metadata["time"].to_numpy(dtype=np.float64)
    tracker = BeaconTracker() if beacons is None else beacons
    found = tracker.find(metadata, decisions)
    incidents = [_beacon_incident(b, contributions, feature_names) for b in found]
    remaining = decisions.copy()
    for beacon in found:
        remaining[beacon.packets] = False
    flagged = np.flatnonzero(remaining)
    for rows in _episodes(times, flagged, gap_seconds):
        first = int(rows[0])
        earlier = metadata.iloc[:first]
        seen_pairs = _Seen(set(zip(earlier["src"], earlier["dst"], strict=True)), known_pairs)
        seen_services = _Seen(set(zip(earlier["dst"], earlier["dport"], earlier["proto"], strict=True)), known_services)
        ep = metadata.iloc[rows]
        kind, source, target, evidence = _classify(ep, seen_pairs, seen_services, params)
        action = evidence.pop("action")
        incidents.append(
            NetworkIncident(
                kind=kind,
                start=float(times[rows[0]]),
                end=float(times[rows[-1]]),
                packets=rows.astype(np.int64),
                source=str(source),
                target=str(target),
                evidence=evidence,
                top_features=_top_features(rows, contributions, feature_names),
                action=action,
            )
        )
    return sorted(incidents, key=lambda i: i.start)


def _top_features(
    rows: NDArray[np.intp], contributions: NDArray[np.float64] | None, feature_names: Sequence[str] | None
) -> list[tuple[str, float]]:
    if contributions is None or feature_names is None:
        return []
    mean = contributions[rows].mean(axis=0)
    return [(str(feature_names[j]), float(mean[j])) for j in np.argsort(-mean)[:3]]


def _beacon_incident(
    beacon: Beacon, contributions: NDArray[np.float64] | None, feature_names: Sequence[str] | None
) -> NetworkIncident:
    evidence = beacon.evidence()
    span = max(float(beacon.times[-1] - beacon.times[0]), 1.0)
    evidence["packets_per_second"] = len(beacon.times) / span
    action = (
        f"isolate {beacon.source} and block {beacon.destination} port {beacon.port}: it calls out every "
        f"{beacon.period:.0f} s (jitter {100 * beacon.jitter:.0f} %) and gets no answer, the check-in of a "
        "botnet's command-and-control client"
    )
    return NetworkIncident(
        kind="c2_beacon",
        start=float(beacon.times[0]),
        end=float(beacon.times[-1]),
        packets=beacon.packets,
        source=beacon.source,
        target=beacon.destination,
        evidence=evidence,
        top_features=_top_features(beacon.packets, contributions, feature_names),
        action=action,
    )
