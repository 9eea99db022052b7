"""How the deep detectors' SKAB settings were decided without SKAB's test rows: false alarms on normal data.

    VIGIL_DATA_DIR=../shared/data .venv/bin/python benchmarks/deep_dev_skab.py

SKAB's anomaly-free run (``skab/anomaly-free/anomaly-free.csv``, 9,405 rows of normal operation, which the
official protocol never tests on) is cut into 8 consecutive segments of 1,175 rows. Each segment is treated
like an experiment file: the pipeline is fitted on its first 400 rows and scores the other 775, all normal,
so every flag is a false alarm. The script prints, per configuration, the false-alarm rate over the 8
segments and the sensors that carried the false alarms (mean share of the flagged rows' contributions).
Every detector runs with ``random_state=0``, one torch thread, the default pipeline (standard scaler,
1 % target false-alarm rate on the last 25 % of the training rows) unless the row says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

# (label, detector, detector parameters, pipeline parameters)
ROWS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("pca", "pca", {}, {}),
    ("mahalanobis", "mahalanobis", {}, {}),
    ("pca, smoothing 30", "pca", {}, {"smoothing": 30}),
    ("autoencoder", "autoencoder", {}, {}),
    ("conv-ae", "conv-ae", {}, {}),
    ("lstm-ae", "lstm-ae", {}, {}),
    ("lstm-ae, drift guard", "lstm-ae", {"relative_drift": 1.0}, {}),
    ("lstm-forecaster", "lstm-forecaster", {}, {}),
    ("lstm-forecaster, drift guard", "lstm-forecaster", {"relative_drift": 1.0}, {}),
    ("tcn-forecaster", "tcn-forecaster", {}, {}),
    ("tcn-forecaster, drift guard", "tcn-forecaster", {"relative_drift": 1.0}, {}),
    ("tcn-forecaster, drift guard 0.5", "tcn-forecaster", {"relative_drift": 0.5}, {}),
    ("tcn-forecaster, drift guard, smoothing 10", "tcn-forecaster", {"relative_drift": 1.0}, {"smoothing": 10}),
    (
        "tcn-forecaster, drift guard, smoothing 10, raw calibration",
        "tcn-forecaster",
        {"relative_drift": 1.0},
        {"smoothing": 10, "calibrate": "raw"},
    ),
]


def segments(data_dir: Path, n: int = 8) -> tuple[list[np.ndarray], list[str]]:
    from vigil.data.tables import read_table

    table = read_table(data_dir / "skab" / "anomaly-free" / "anomaly-free.csv", sep=";", time="datetime")
    values = table.X.to_numpy(dtype=float)
    size = len(values) // n
    return [values[i * size : (i + 1) * size] for i in range(n)], list(table.X.columns)


def false_alarms(segs: list[np.ndarray], names: list[str], detector: str, params: dict, pipe_params: dict):
    from vigil.pipeline import Pipeline
    from vigil.registry import make_detector

    flagged = rows = 0
    shares = np.zeros(len(names))
    per_segment = []
    for seg in segs:
        pipe = Pipeline(make_detector(detector, random_state=0, **params), **pipe_params).fit(seg[:400])
        test = seg[400:]
        flags = pipe.predict(test)
        flagged += int(flags.sum())
        rows += len(test)
        per_segment.append(round(float(flags.mean()), 3))
        if flags.any():
            shares += pipe.contributions(test)[flags].sum(axis=0)
    top = sorted(zip(names, shares / max(shares.sum(), 1e-12), strict=True), key=lambda kv: -kv[1])[:3]
    return {"far": flagged / rows, "per_segment": per_segment, "top_sensors": [(n, round(v, 3)) for n, v in top]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("VIGIL_DATA_DIR"), help="default: $VIGIL_DATA_DIR")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("set VIGIL_DATA_DIR or pass --data-dir")
    import torch

    torch.set_num_threads(1)
    segs, names = segments(Path(args.data_dir))
    print("| configuration | FAR % (8 segments, all normal) | sensors carrying the false alarms | s |")
    print("|---|---:|---|---:|")
    results = {}
    for label, detector, params, pipe_params in ROWS:
        start = time.perf_counter()
        r = false_alarms(segs, names, detector, params, pipe_params)
        results[label] = r
        top = ", ".join(f"{n} {100 * v:.0f} %" for n, v in r["top_sensors"])
        print(f"| {label} | {100 * r['far']:.1f} | {top} | {time.perf_counter() - start:.1f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
