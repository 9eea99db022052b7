"""Packet-capture benchmarks: the Modbus/TCP SCADA files (official per-packet labels) and MQTTset.

**modbus** (Lemay & Fernandez, CSET 2016; five files, one model each). Per-packet labels come from each file's
``*_labeled.csv`` (``frame;label``), aligned by frame number; non-IP frames (ARP) are skipped and counted.
A model is trained on a file's clean prefix (the packets before its first malicious one) and scores the
whole file. Two files have almost no clean prefix (the exploit starts at frame 5, the register enumeration
at frame 3); they are trained on the clean prefix of the file with the longest one (send_a_fake_command,
4,781 packets of the same testbed and addressing), so no model ever trains on a packet of the file it scores
after that file's first attack. Threshold: 1 % target false-alarm rate on held-out training packets.
Decay rates: those whose half-life fits ten times in the training capture
(:func:`~vigil.network.features.decays_for_training`), the same rule ``vigil fit`` applies to a capture.

**mqttset** (MQTTset, reduced; plus the StopDDoS SYN flood and BACnet amplification). Train on
``benign-5mb-train.pcap``; for each of the seven attack captures, time-shift it to start 30 % into
``benign-5mb-test.pcap`` (earlier if it would run past the end), rewrite its victim address to the benign
broker 10.16.100.73 (so that an unseen victim address gives nothing away), merge by time, and score the
merged stream. Every packet of an attack capture is an attack packet. Reported per stream: event detection
(any attack packet flagged), packet recall, ROC-AUC, and the false-positive rate on the benign test packets,
overall and split into before, during and after the attack (benign packets to a broker under attack share
its disturbed statistics, so the rate during and after an attack is the harder figure).
"""

from __future__ import annotations

import ipaddress
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.calibration.thresholds import TargetFARThreshold
from vigil.data.benchmarks import dataset_path
from vigil.errors import InvalidInputError
from vigil.network.features import PacketFeatureExtractor, decays_for_training
from vigil.network.packets import PacketTable
from vigil.network.report import binary_report
from vigil.pipeline import Pipeline

__all__ = [
    "MODBUS_FILES",
    "MODBUS_PROTOCOL",
    "MQTTSET_ATTACKS",
    "MQTTSET_PROTOCOL",
    "merge_attack",
    "modbus_bench",
    "mqttset_bench",
]

MODBUS_PROTOCOL = __doc__.split("**modbus**", 1)[1].split("**mqttset**", 1)[0].strip().replace("\n", " ")
MQTTSET_PROTOCOL = __doc__.split("**mqttset**", 1)[1].strip().replace("\n", " ")

MODBUS_FILES = {
    "moving_two_files": ("moving_two_files_modbus_6RTU", "lateral file moves"),
    "exploit_ms08": ("exploit_ms08_netapi_modbus_6RTU_with_operate", "MS08-067 exploit"),
    "cnc_upload": ("CnC_uploading_exe_modbus_6RTU_with_operate", "C&C upload"),
    "characterization": ("characterization_modbus_6RTU_with_operate", "register enumeration"),
    "fake_command": ("send_a_fake_command_modbus_6RTU_with_operate", "fake Write-Coil command"),
}
_MODBUS_REFERENCE = "fake_command"
_MIN_PREFIX = 500

MQTTSET_ATTACKS = {
    "mqtt_flood": ("mqttset_reduced/flood.pcap", "10.16.100.73"),
    "bruteforce": ("mqttset_reduced/bruteforce.pcapng", "192.168.1.91"),
    "malaria_dos": ("mqttset_reduced/malariados.pcap", "192.168.1.91"),
    "malformed": ("mqttset_reduced/malformed.pcap", "192.168.1.91"),
    "slowite": ("mqttset_reduced/slowite.pcap", "10.16.120.72"),
    "syn_flood": ("stopddos_floods/pkt.TCP.synflood.spoofed.pcap", "10.10.10.10"),
    "bacnet_amplification": ("stopddos_floods/amp.UDP.bacnet.IOT.37810.pcapng", "10.10.10.1"),
}
"""Attack name → (capture under ``pcaps/``, its victim address, rewritten to the benign broker)."""
_BROKER = "10.16.100.73"


def _log(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _features(packets: PacketTable, decays: tuple[float, ...]) -> pd.DataFrame:
    ex = PacketFeatureExtractor(decays=decays)
    return pd.DataFrame(ex.process(packets), columns=ex.feature_names)


def _span(packets: PacketTable) -> float:
    return float(packets.time.max() - packets.time.min()) if len(packets) else 0.0


def _make_pipeline(detector: str, params: Mapping[str, Any] | None, seed: int) -> Pipeline:
    from vigil.registry import detector_class

    cls = detector_class(detector)
    kwargs = dict(params or {})
    if "random_state" in cls._param_names():
        kwargs.setdefault("random_state", seed)
    return Pipeline(cls(**kwargs), threshold=TargetFARThreshold(far=0.01))


@dataclass
class _Scored:
    y: np.ndarray
    scores: np.ndarray
    threshold: float


def _pooled(parts: dict[str, _Scored]) -> dict[str, Any]:
    y = np.concatenate([p.y for p in parts.values()])
    relative = np.concatenate([p.scores / p.threshold for p in parts.values()])
    return binary_report(y, relative > 1.0, relative)


def _read(path: Path) -> tuple[PacketTable, dict[str, Any]]:
    from vigil.network.pcap import read_capture

    packets, stats = read_capture(path)
    return packets, stats.as_dict()


def _modbus_labels(path: Path, n_frames: int) -> np.ndarray:
    table = pd.read_csv(path, sep=";", header=None, names=["frame", "label"], dtype=str)
    frames = pd.to_numeric(table["frame"].str.strip(), errors="coerce")
    labels = pd.to_numeric(table["label"].str.strip(), errors="coerce")
    if frames.isna().any() or labels.isna().any() or not labels.isin([0, 1]).all():
        msg = f"{path.name}: every line must be 'frame;label' with label 0 or 1"
        raise InvalidInputError(msg)
    if len(table) != n_frames or not (frames.to_numpy() == np.arange(1, n_frames + 1)).all():
        msg = f"{path.name}: {len(table)} labels for a capture of {n_frames} frames (expected frames 1..{n_frames})"
        raise InvalidInputError(msg)
    return labels.to_numpy(dtype=bool)


def modbus_bench(
    detector: str,
    *,
    data_dir: str | PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    quiet: bool = True,
) -> dict[str, Any]:
    """Run the five Modbus/TCP files under :data:`MODBUS_PROTOCOL`; see the module docstring."""
    folder = dataset_path(data_dir, "pcaps", "lemay_modbus_cset16")
    loaded = {}
    for name, (stem, kind) in MODBUS_FILES.items():
        packets, stats = _read(folder / f"{stem}.pcap")
        frame_labels = _modbus_labels(folder / f"{stem}_labeled.csv", stats["frames"])
        y = frame_labels[packets.index]
        first_attack = int(np.flatnonzero(y)[0]) if y.any() else len(y)
        loaded[name] = (packets, y, first_attack, stats, kind)
    reference = loaded[_MODBUS_REFERENCE]
    parts: dict[str, _Scored] = {}
    per_part: dict[str, Any] = {}
    fit_seconds = score_seconds = 0.0
    for name, (packets, y, prefix, stats, kind) in loaded.items():
        own = prefix >= _MIN_PREFIX
        train_packets = packets.take(slice(0, prefix)) if own else reference[0].take(slice(0, reference[2]))
        decays = decays_for_training(_span(train_packets))
        features = _features(packets, decays)
        train = features.iloc[:prefix] if own else _features(train_packets, decays)
        _log(quiet, f"modbus · {detector}: {name} (train {len(train)} packets, score {len(features)}) …")
        start = time.perf_counter()
        pipe = _make_pipeline(detector, params, seed).fit(train)
        fitted = time.perf_counter()
        scores = pipe.score_samples(features)
        score_seconds += time.perf_counter() - fitted
        fit_seconds += fitted - start
        parts[name] = _Scored(y, scores, pipe.threshold_)
        decisions = scores > pipe.threshold_
        report = binary_report(y, decisions, scores)
        after = np.arange(len(y)) >= prefix
        trained_on = f"own clean prefix ({prefix} packets)"
        if not own:
            trained_on = f"clean prefix of {_MODBUS_REFERENCE} ({reference[2]} packets)"
        per_part[name] = {
            "attack": kind,
            "packets": len(y),
            "attack_packets": int(y.sum()),
            "trained_on": trained_on,
            "event_detected": bool(decisions[y].any()),
            "far_after_first_attack": float(decisions[after & ~y].mean()) if (after & ~y).any() else None,
            **report,
            "threshold": pipe.threshold_,
            "decays": list(decays),
            "read_stats": stats,
        }
    pooled = _pooled(parts)
    aucs = [per_part[n]["roc_auc"] for n in per_part]
    return {
        "dataset": "modbus",
        "detector": detector,
        "protocol": MODBUS_PROTOCOL,
        **pooled,
        "roc_auc_mean": float(np.mean(aucs)),
        "event_recall": float(np.mean([per_part[n]["event_detected"] for n in per_part])),
        "per_category_recall": {per_part[n]["attack"]: per_part[n]["recall"] for n in per_part},
        "fit_seconds": fit_seconds,
        "score_seconds": score_seconds,
        "per_part": per_part,
        "params": dict(params or {}),
        "seed": seed,
    }


def _halves(address: str) -> tuple[int, int]:
    value = int(ipaddress.ip_address(address))
    if ipaddress.ip_address(address).version == 4:
        value |= 0xFFFF << 32
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


def merge_attack(
    benign: PacketTable, attack: PacketTable, *, start: float, victim: str | None = None, new_victim: str | None = None
) -> tuple[PacketTable, np.ndarray]:
    """Shift ``attack`` to begin at time ``start``, rewrite ``victim`` to ``new_victim``, merge with ``benign``.

    Returns the merged packets in time order and a mask of the attack packets.

    Examples
    --------
    >>> benign = PacketTable.from_records([{"time": t, "src": "10.0.0.2", "dst": "10.0.0.1"} for t in (0., 2., 4.)])
    >>> attack = PacketTable.from_records([{"time": 100.0, "src": "6.6.6.6", "dst": "9.9.9.9"}])
    >>> merged, is_attack = merge_attack(benign, attack, start=3.0, victim="9.9.9.9", new_victim="10.0.0.1")
    >>> merged.time.tolist(), is_attack.tolist(), merged.destination_address(2)
    ([0.0, 2.0, 3.0, 4.0], [False, False, True, False], '10.0.0.1')
    """
    columns = {name: getattr(attack, name).copy() for name in attack.__dataclass_fields__}
    columns["time"] = attack.time - attack.time.min() + start
    if victim is not None and new_victim is not None:
        old, new = _halves(victim), _halves(new_victim)
        for side in ("src", "dst"):
            hit = (columns[f"{side}_hi"] == np.uint64(old[0])) & (columns[f"{side}_lo"] == np.uint64(old[1]))
            columns[f"{side}_hi"][hit] = np.uint64(new[0])
            columns[f"{side}_lo"][hit] = np.uint64(new[1])
    shifted = PacketTable.from_columns(columns)
    merged = PacketTable.concat([benign, shifted])
    is_attack = np.concatenate([np.zeros(len(benign), dtype=bool), np.ones(len(shifted), dtype=bool)])
    order = np.argsort(merged.time, kind="stable")
    return merged.take(order), is_attack[order]


def mqttset_bench(
    detector: str,
    *,
    data_dir: str | PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    quiet: bool = True,
    attacks: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Run MQTTset (benign train/test plus seven merged attack captures); see the module docstring."""
    folder = dataset_path(data_dir, "pcaps")
    train_packets, train_stats = _read(folder / "mqttset_reduced" / "benign-5mb-train.pcap")
    test_packets, test_stats = _read(folder / "mqttset_reduced" / "benign-5mb-test.pcap")
    _log(quiet, f"mqttset · {detector}: training on {len(train_packets)} benign packets …")
    start = time.perf_counter()
    decays = decays_for_training(_span(train_packets))
    pipe = _make_pipeline(detector, params, seed).fit(_features(train_packets, decays))
    fit_seconds = time.perf_counter() - start
    t0, t1 = float(test_packets.time.min()), float(test_packets.time.max())
    parts: dict[str, _Scored] = {}
    per_part: dict[str, Any] = {}
    score_seconds = 0.0
    names = attacks or tuple(MQTTSET_ATTACKS)
    for name in names:
        path, victim = MQTTSET_ATTACKS[name]
        attack, stats = _read(folder / path)
        span = float(attack.time.max() - attack.time.min())
        begin = max(t0, min(t0 + 0.3 * (t1 - t0), t1 - span - 1.0))
        merged, y = merge_attack(test_packets, attack, start=begin, victim=victim, new_victim=_BROKER)
        _log(quiet, f"mqttset · {detector}: {name} ({len(attack)} attack packets merged) …")
        begin_scoring = time.perf_counter()
        scores = pipe.score_samples(_features(merged, decays))
        score_seconds += time.perf_counter() - begin_scoring
        decisions = scores > pipe.threshold_
        parts[name] = _Scored(y, scores, pipe.threshold_)
        before = ~y & (merged.time < begin)
        during = ~y & (merged.time >= begin) & (merged.time <= begin + span)
        per_part[name] = {
            "attack_packets": int(y.sum()),
            "benign_packets": int((~y).sum()),
            "benign_fpr_before_attack": float(decisions[before].mean()) if before.any() else None,
            "benign_fpr_during_attack": float(decisions[during].mean()) if during.any() else None,
            "benign_fpr_after_attack": float(decisions[~y & ~before & ~during].mean())
            if (~y & ~before & ~during).any()
            else None,
            "event_detected": bool(decisions[y].any()),
            "first_detection_seconds": float(merged.time[y & decisions].min() - begin) if decisions[y].any() else None,
            **binary_report(y, decisions, scores),
            "read_stats": stats,
        }
    pooled = _pooled(parts)
    fprs = [per_part[n]["far"] for n in per_part]
    return {
        "dataset": "mqttset",
        "detector": detector,
        "protocol": MQTTSET_PROTOCOL,
        **pooled,
        "event_recall": float(np.mean([per_part[n]["event_detected"] for n in per_part])),
        "benign_fpr_max": float(np.max(fprs)),
        "benign_fpr_mean": float(np.mean(fprs)),
        "benign_fpr_before_attacks": float(np.mean([per_part[n]["benign_fpr_before_attack"] for n in per_part])),
        "per_category_recall": {n: per_part[n]["recall"] for n in per_part},
        "threshold": pipe.threshold_,
        "decays": list(decays),
        "fit_seconds": fit_seconds,
        "score_seconds": score_seconds,
        "train_packets": len(train_packets),
        "per_part": per_part,
        "read_stats": {"train": train_stats, "test": test_stats},
        "params": dict(params or {}),
        "seed": seed,
    }
