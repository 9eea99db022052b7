"""Captures as data: per-packet feature tables for ``vigil fit``/``vigil score``, and a live capture scorer.

:func:`read_packets_as_table` turns a pcap/pcapng file into one feature row per IP packet (the damped
statistics of :mod:`vigil.network.features`) plus a metadata table (packet number, time, addresses, ports),
so any registered detector and the :class:`~vigil.pipeline.Pipeline` work on captures as on any table.
:func:`score_capture` scores a capture with a fitted pipeline and types the alerts as incidents;
:class:`CaptureScorer` does the same batch by batch for a capture being written (``vigil watch``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from threading import Event
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from vigil.errors import InvalidInputError
from vigil.network.beacons import BeaconTracker
from vigil.network.features import PacketFeatureExtractor, decays_for_training
from vigil.network.incident_alarms import DEFAULT_RULE, IncidentAlarmRule, IncidentAlarms, warmup_seconds
from vigil.network.incidents import NetworkIncident, type_incidents
from vigil.network.packets import PacketTable
from vigil.pipeline import Pipeline, top_features

__all__ = ["CaptureScorer", "ScoredCapture", "incident_alarms", "read_packets_as_table", "score_capture",
           "score_packets"]  # fmt: skip


def read_packets_as_table(
    path: str | PathLike[str] | BinaryIO,
    *,
    feature_names: Sequence[str] | None = None,
    max_packets: int | None = None,
    **extractor: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a capture and return (per-packet features, per-packet metadata), row-aligned.

    For training (``feature_names`` None) the decay rates are chosen from the capture's duration with
    :func:`~vigil.network.features.decays_for_training` unless ``decays`` is given. For scoring, pass the
    fitted pipeline's ``feature_names_in_`` so the capture gets exactly the features the model knows.

    The metadata's ``attrs["read_stats"]`` holds the reader's counters (frames, skipped non-IP and
    malformed frames, IPv6, fragments) and ``attrs["n_reordered"]`` the packets whose time went backwards.

    Raises
    ------
    ImportError
        dpkt is not installed (``pip install 'vigil[network]'``).
    DatasetNotFoundError, InvalidInputError
        Missing file; not a capture, unsupported link type, corrupt record header.
    """
    from vigil.network.pcap import read_capture

    packets, stats = read_capture(path, max_packets=max_packets)
    if not len(packets):
        msg = f"{path}: the capture holds no IP packet ({stats.frames} frames in all)"
        raise InvalidInputError(msg)
    if feature_names is not None:
        ex = PacketFeatureExtractor.from_feature_names(feature_names, **extractor)
    else:
        if "decays" not in extractor and len(packets):
            extractor["decays"] = decays_for_training(float(packets.time.max() - packets.time.min()))
        ex = PacketFeatureExtractor(**extractor)
    features, metadata = _features(packets, extractor=ex)
    metadata.attrs["read_stats"] = stats.as_dict()
    return features, metadata


def _features(
    packets: PacketTable, *, extractor: PacketFeatureExtractor | None = None, **params: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    ex = extractor if extractor is not None else PacketFeatureExtractor(**params)
    features = pd.DataFrame(ex.process(packets), columns=ex.feature_names)
    metadata = packets.metadata()
    metadata.attrs["n_reordered"] = ex.n_reordered
    return features, metadata


@dataclass
class ScoredCapture:
    """Per-packet scores and decisions of a capture, with its typed incidents.

    ``rows`` has one row per packet: ``packet`` (number in the file, 0-based), ``time`` (ISO 8601, UTC, µs),
    ``score``, ``threshold``, ``anomaly``, ``incident`` (the kind of the incident the packet belongs to,
    empty when not flagged or held back), ``src``, ``dst``, ``dport`` and ``top_features``.

    ``incidents`` are those the :class:`~vigil.network.incident_alarms.IncidentAlarmRule` annunciates;
    ``held_back`` the typed episodes it did not (not persistent enough), kept so that nothing is dropped
    silently.

    Examples
    --------
    >>> ScoredCapture(rows=pd.DataFrame({"packet": [0], "anomaly": [False]})).incidents
    []
    """

    rows: pd.DataFrame
    incidents: list[NetworkIncident] = field(default_factory=list)
    held_back: list[NetworkIncident] = field(default_factory=list)
    read_stats: dict[str, Any] = field(default_factory=dict)


def score_packets(
    pipe: Pipeline,
    features: pd.DataFrame,
    metadata: pd.DataFrame,
    *,
    top_k: int = 3,
    alarms: IncidentAlarms | None = None,
    **typing: Any,
) -> ScoredCapture:
    """Score packet features with a fitted pipeline, type the flagged packets and apply the alarm rule.

    ``alarms`` carries the rule and each host pair's count from earlier batches (a fresh
    :func:`incident_alarms` with the default rule when ``None``);
    ``typing`` goes to :func:`~vigil.network.incidents.type_incidents` (``known_pairs``, ...).
    """
    scored = pipe.score_with_contributions(features)
    scores = scored.scores
    decisions = scores > pipe.threshold_
    shares = np.zeros((len(features), features.shape[1]))
    flagged = np.flatnonzero(decisions)
    if len(flagged):
        shares[flagged] = scored.contributions(flagged)
    episodes = type_incidents(metadata, decisions, contributions=shares, feature_names=pipe.feature_names_in_, **typing)
    alarms = incident_alarms(pipe) if alarms is None else alarms
    incidents, held = alarms.annunciate(episodes, alarms.pair_alarms(metadata, scores))
    kind = np.full(len(features), "", dtype=object)
    for incident in incidents:
        kind[incident.packets] = incident.kind
    ranked = top_features(shares[flagged], pipe.feature_names_in_, top_k=top_k) if len(flagged) else []
    text = np.full(len(features), "", dtype=object)
    for row, items in zip(flagged, ranked, strict=True):
        text[row] = ";".join(f"{name}={share:.3f}" for name, share in items)
    rows = pd.DataFrame(
        {
            "packet": metadata["packet"].to_numpy(),
            "time": pd.to_datetime(metadata["time"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "score": scores,
            "threshold": pipe.threshold_,
            "anomaly": decisions,
            "incident": kind,
            "src": metadata["src"].to_numpy(),
            "dst": metadata["dst"].to_numpy(),
            "dport": metadata["dport"].to_numpy(),
            "top_features": text,
        }
    )
    return ScoredCapture(
        rows=rows, incidents=incidents, held_back=held, read_stats=dict(metadata.attrs.get("read_stats", {}))
    )


def score_capture(
    pipe: Pipeline,
    path: str | PathLike[str] | BinaryIO,
    *,
    top_k: int = 3,
    rule: IncidentAlarmRule = DEFAULT_RULE,
) -> ScoredCapture:
    """Read, featurise and score a capture with a fitted pipeline; see :class:`ScoredCapture`."""
    features, metadata = read_packets_as_table(path, feature_names=pipe.feature_names_in_)
    return score_packets(pipe, features, metadata, top_k=top_k, alarms=incident_alarms(pipe, rule))


def incident_alarms(pipe: Pipeline, rule: IncidentAlarmRule = DEFAULT_RULE) -> IncidentAlarms:
    """The alarm rule's state for a fresh capture scored by ``pipe``, its warm-up from the model's features."""
    decays = PacketFeatureExtractor.from_feature_names(pipe.feature_names_in_).decays
    return IncidentAlarms(rule, threshold=pipe.threshold_, warmup_seconds=warmup_seconds(decays))


class CaptureScorer:
    """Score a live capture batch by batch, keeping the damped statistics across batches.

    Incidents are typed per batch, so one that spans two batches is reported in both; the alarm rule's
    per-pair counts (:class:`~vigil.network.incident_alarms.IncidentAlarms`) carry over from batch to batch.

    Parameters
    ----------
    pipe : Pipeline
        Fitted on packet features; the extractor is rebuilt from its feature names.
    rule : IncidentAlarmRule
        Which typed episodes are annunciated (default :data:`~vigil.network.incident_alarms.DEFAULT_RULE`).
    extractor : dict
        Other :class:`~vigil.network.features.PacketFeatureExtractor` parameters (``idle_timeout``, ...).

    Examples
    --------
    >>> from vigil.network.synthetic import make_capture
    >>> from vigil.network.kitnet import KitNETDetector
    >>> cap = make_capture(["port_scan"], train_seconds=120, gap_seconds=20, n_devices=3)
    >>> train, test, _ = cap.split()
    >>> features, _ = _features(train)
    >>> pipe = Pipeline(KitNETDetector(epochs=3, random_state=0)).fit(features)
    >>> scorer = CaptureScorer(pipe)
    >>> _ = scorer.score(train)  # carry the benign state forward
    >>> [i.kind for i in scorer.score(test).incidents]
    ['port_scan']
    """

    def __init__(
        self, pipe: Pipeline, *, max_known: int = 1_000_000, rule: IncidentAlarmRule = DEFAULT_RULE, **extractor: Any
    ) -> None:
        self.pipe = pipe
        self.alarms = incident_alarms(pipe, rule)
        self.beacons = BeaconTracker()
        self.extractor = PacketFeatureExtractor.from_feature_names(pipe.feature_names_in_, **extractor)
        self.max_known = max_known
        self.known_pairs: set[tuple[str, str]] = set()
        self.known_services: set[tuple[str, int, int]] = set()

    def score(self, packets: PacketTable, *, top_k: int = 3) -> ScoredCapture:
        features = pd.DataFrame(self.extractor.process(packets), columns=self.extractor.feature_names)
        metadata = packets.metadata()
        scored = score_packets(
            self.pipe,
            features,
            metadata,
            top_k=top_k,
            alarms=self.alarms,
            beacons=self.beacons,
            known_pairs=self.known_pairs,
            known_services=self.known_services,
        )
        self._remember(metadata)
        return scored

    def _remember(self, metadata: pd.DataFrame) -> None:
        # Peers and services seen so far, for "new peer" typing across batches. Bounded: a spoofed flood
        # brings millions of one-off sources; past ``max_known`` entries nothing more is added, so later
        # peers may be called new once more (never missed as known).
        if len(self.known_pairs) < self.max_known:
            self.known_pairs.update(zip(metadata["src"], metadata["dst"], strict=True))
        if len(self.known_services) < self.max_known:
            self.known_services.update(zip(metadata["dst"], metadata["dport"], metadata["proto"], strict=True))

    def follow(
        self,
        source: str | PathLike[str] | BinaryIO,
        *,
        batch_size: int = 2048,
        follow: bool = True,
        poll_seconds: float = 0.5,
        stop: Event | None = None,
    ) -> Iterator[ScoredCapture]:
        """Yield one :class:`ScoredCapture` per batch read from ``source`` (``"-"``: standard input).

        A batch ends after ``batch_size`` packets or when the writer falls idle; ``stop`` ends a followed
        capture at its next idle moment.
        """
        from vigil.network.pcap import ReadStats, iter_capture

        stats = ReadStats()
        batches = iter_capture(
            source, batch_size=batch_size, follow=follow, poll_seconds=poll_seconds, stats=stats, stop=stop
        )
        for batch in batches:
            scored = self.score(batch)
            scored.read_stats = stats.as_dict()
            yield scored
