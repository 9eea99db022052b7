"""TON_IoT device telemetry under attack: binary figures plus recall per attack type, per device and pooled.

The split is :data:`~vigil.data.ton_iot.TON_IOT_PROTOCOL` (chronological, normal-only training, date and
time dropped); each device gets its own pipeline (scaler, detector, 1 % target false-alarm threshold on the
last quarter of its training rows), exactly as ``vigil bench --dataset ton-iot`` fits them. What this adds is
the attack type of every test row (``extra["attack_type_test"]``): the share of each type's rows flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np

from vigil.calibration.thresholds import TargetFARThreshold
from vigil.data.ton_iot import TON_IOT_PROTOCOL, load_ton_iot
from vigil.evaluation.runner import EvaluationPart, evaluate_parts
from vigil.pipeline import Pipeline

__all__ = ["attack_type_recall", "ton_iot_bench"]


def attack_type_recall(kinds: np.ndarray, decisions: np.ndarray) -> dict[str, dict[str, float | int]]:
    """``{type: {"n", "detected", "recall"}}`` over the attack rows (every type but ``normal``).

    Examples
    --------
    >>> attack_type_recall(np.array(["normal", "ddos", "ddos", "xss"]), np.array([True, True, False, True]))
    {'ddos': {'n': 2, 'detected': 1, 'recall': 0.5}, 'xss': {'n': 1, 'detected': 1, 'recall': 1.0}}
    """
    out: dict[str, dict[str, float | int]] = {}
    for kind in sorted(set(kinds.tolist()) - {"normal"}):
        mask = kinds == kind
        detected = int(decisions[mask].sum())
        out[str(kind)] = {"n": int(mask.sum()), "detected": detected, "recall": detected / int(mask.sum())}
    return out


def ton_iot_bench(
    detector: str,
    *,
    data_dir: str | PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    quiet: bool = True,
    devices: list[str] | None = None,
) -> dict[str, Any]:
    """Run TON_IoT per device and report binary F1/FAR/recall and recall per attack type."""
    from vigil.registry import detector_class

    cls = detector_class(detector)
    kwargs = dict(params or {})
    if "random_state" in cls._param_names():
        kwargs.setdefault("random_state", seed)
    benchmark = load_ton_iot(data_dir, devices=devices)
    parts = [EvaluationPart(p.name, p.X_train, p.X_test, p.y_test, p.time_test, extra=p.extra) for p in benchmark.parts]
    kinds: dict[str, np.ndarray] = {}
    decisions: dict[str, np.ndarray] = {}

    def collect(part: EvaluationPart, pipe: Pipeline, scores: np.ndarray) -> None:
        kinds[part.name] = np.asarray(part.extra["attack_type_test"], dtype=object)
        decisions[part.name] = scores > pipe.threshold_

    def make() -> Pipeline:
        return Pipeline(cls(**kwargs), threshold=TargetFARThreshold(far=0.01))

    result = evaluate_parts(parts, make, progress=not quiet, label=f"ton-iot · {detector}", on_part=collect)
    all_kinds = np.concatenate(list(kinds.values()))
    all_decisions = np.concatenate(list(decisions.values()))
    y = all_kinds != "normal"
    per_type = attack_type_recall(all_kinds, all_decisions)
    for name in result["per_part"]:
        result["per_part"][name]["per_attack_type_recall"] = {
            k: v["recall"] for k, v in attack_type_recall(kinds[name], decisions[name]).items()
        }
    return {
        "dataset": "ton-iot",
        "detector": detector,
        "protocol": TON_IOT_PROTOCOL,
        **result,
        "accuracy": float((all_decisions == y).mean()),
        "per_category_recall": {k: v["recall"] for k, v in per_type.items()},
        "per_attack_type": per_type,
        "params": kwargs,
        "seed": seed,
    }
