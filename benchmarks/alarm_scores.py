"""Save everything an alarm rule needs from one benchmark run, so rules can be compared without refitting.

    VIGIL_DATA_DIR=../shared/data python benchmarks/alarm_scores.py --dataset skab --detector tcn-forecaster \
        --param relative_drift=1.0 -o skab-tcn-forecaster-drift.npz

The run is `vigil bench`'s (one pipeline per part, fitted as a fleet on the part's training rows, default
scaler, 1 % target-FAR threshold on the held-out last 25 % of the training rows, seed 0). Saved per part:
the held-out calibration scores and the threshold set on them (what an alarm stage is fitted on), the
scores of every training row (in-sample for the first 75 %), the test scores, their timestamps and labels.
The labels are kept for the metrics only; nothing that chooses a rule may read them
(`benchmarks/alarm_variants.py` keeps that apart).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _param(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--detector", required=True)
    parser.add_argument("--param", action="append", type=_param, default=[])
    parser.add_argument("--parts", help="comma-separated part names (default: all)")
    parser.add_argument("--data-dir", default=os.environ.get("VIGIL_DATA_DIR"))
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()

    import torch

    from vigil.alarms.rules import make_alarm_stage
    from vigil.calibration.thresholds import TargetFARThreshold
    from vigil.data.benchmarks import load_benchmark
    from vigil.evaluation.runner import EvaluationPart, evaluate_parts
    from vigil.pipeline import Pipeline
    from vigil.registry import detector_class

    torch.set_num_threads(1)
    cls = detector_class(args.detector)
    params = dict(args.param)
    if "random_state" in cls._param_names():
        params.setdefault("random_state", 0)

    def make() -> Pipeline:
        return Pipeline(cls(**params), threshold=TargetFARThreshold(far=0.01), alarm=make_alarm_stage("plain"))

    subset = args.parts.split(",") if args.parts else None
    benchmark = load_benchmark(args.dataset, data_dir=args.data_dir, parts=subset)
    parts = [EvaluationPart(p.name, p.X_train, p.X_test, p.y_test, p.time_test, extra={}) for p in benchmark.parts]
    arrays: dict[str, np.ndarray] = {}
    names: list[str] = []

    def record(part: EvaluationPart, pipe: Pipeline, scores: np.ndarray) -> None:
        i = len(names)
        names.append(part.name)
        arrays[f"calibration_{i}"] = pipe.calibration_scores_
        arrays[f"threshold_{i}"] = np.array(pipe.threshold_)
        arrays[f"train_{i}"] = pipe.score_samples(part.X_train)
        arrays[f"test_{i}"] = scores
        arrays[f"labels_{i}"] = np.asarray(part.y_test, dtype=bool)
        if part.time_test is not None:
            arrays[f"seconds_{i}"] = part.time_test.to_numpy().astype("datetime64[ns]").astype(np.int64) / 1e9

    start = time.perf_counter()
    result = evaluate_parts(parts, make, progress=False, on_part=record, fleet=True)
    seconds = time.perf_counter() - start
    command = " ".join(["benchmarks/alarm_scores.py", *sys.argv[1:]])
    meta = {
        "command": command,
        "dataset": args.dataset,
        "detector": args.detector,
        "params": params,
        "seconds": seconds,
        "plain": {k: result.get(k) for k in ("f1", "far", "mar", "false_alarms_per_hour", "far_ratio_median")},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, names=np.array(names, dtype=str), meta=np.array(json.dumps(meta)), **arrays)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
