"""How the deep detectors' SKAB settings were decided without SKAB's test rows: false alarms on normal data.

    VIGIL_DATA_DIR=../shared/data .venv/bin/python benchmarks/deep_dev_skab.py

SKAB's anomaly-free run (``skab/anomaly-free/anomaly-free.csv``, 9,405 rows of normal operation, which the
official protocol never tests on) is cut into 8 consecutive segments of 1,175 rows. Each segment is treated
like an experiment file: the pipeline is fitted on its first 400 rows and scores the other 775, all normal,
so every flag is a false alarm. The script prints, per configuration, the false-alarm rate over the 8
segments and the sensors that carried the false alarms (mean share of the flagged rows' contributions).
Every detector runs with ``random_state=0``, one torch thread, the default pipeline (standard scaler,
1 % target false-alarm rate on the last 25 % of the training rows) unless the row says otherwise.

    VIGIL_DATA_DIR=../shared/data .venv/bin/python benchmarks/deep_dev_skab.py --sequence

chose the settings of ``tcn-sequence``. Normal data alone cannot say what a setting costs in missed
anomalies, so each segment's scored rows also get three synthetic anomalies (a level shift of 3 training
standard deviations, a ramp to 4, or a noise burst of 3, on one or two random sensors, 30 to 89 rows each;
fixed seed): the table gives their ROC-AUC, F1, FAR and MAR beside the FAR on the untouched normal rows,
for a grid of settings and the windowed ``tcn-forecaster`` as the reference.
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
    ("tcn-sequence, drift guard", "tcn-sequence", {"relative_drift": 1.0}, {}),
    ("tcn-forecaster, drift guard, smoothing 10", "tcn-forecaster", {"relative_drift": 1.0}, {"smoothing": 10}),
    (
        "tcn-forecaster, drift guard, smoothing 10, raw calibration",
        "tcn-forecaster",
        {"relative_drift": 1.0},
        {"smoothing": 10, "calibrate": "raw"},
    ),
]


# (label, detector, parameters) for the tcn-sequence table, each with the drift guard. The defaults came
# from the first eight rows; the other rows were added after them (docs/benchmarks-deep.md).
SEQUENCE_GRID: list[tuple[str, str, dict[str, Any]]] = [
    ("tcn-forecaster (windowed), for reference", "tcn-forecaster", {}),
    (
        "filters 32, learning rate 3e-3, patience 20",
        "tcn-sequence",
        {"filters": 32, "learning_rate": 3e-3, "patience": 20},
    ),
    ("filters 32, learning rate 1e-2, patience 10", "tcn-sequence", {"filters": 32}),
    ("filters 16, learning rate 1e-2, patience 10 (the defaults)", "tcn-sequence", {}),
    ("filters 16, learning rate 1e-2, patience 5", "tcn-sequence", {"patience": 5}),
    ("filters 16, window 16", "tcn-sequence", {"window": 16}),
    ("filters 16, learning rate 2e-2", "tcn-sequence", {"learning_rate": 2e-2}),
    (
        "filters 16, learning rate 2e-2, patience 5",
        "tcn-sequence",
        {"learning_rate": 2e-2, "patience": 5},
    ),
    (
        "filters 16, kernel 4, dilations 1, 4, 16",
        "tcn-sequence",
        {"kernel_size": 4, "dilation_base": 4},
    ),
    (
        "filters 16, kernel 6, dilations 1, 6",
        "tcn-sequence",
        {"kernel_size": 6, "dilation_base": 6},
    ),
    ("filters 16, seed 1", "tcn-sequence", {"random_state": 1}),
    ("filters 16, seed 2", "tcn-sequence", {"random_state": 2}),
    ("persistence term", "tcn-sequence", {"persistence": True}),
    ("persistence term, seed 1", "tcn-sequence", {"persistence": True, "random_state": 1}),
    ("persistence term, seed 2", "tcn-sequence", {"persistence": True, "random_state": 2}),
    ("persistence term, filters 32", "tcn-sequence", {"persistence": True, "filters": 32}),
    ("persistence term, patience 5", "tcn-sequence", {"persistence": True, "patience": 5}),
    ("persistence term, learning rate 2e-2", "tcn-sequence", {"persistence": True, "learning_rate": 2e-2}),
    ("persistence term, window 16", "tcn-sequence", {"persistence": True, "window": 16}),
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
        pipe = Pipeline(make_detector(detector, **{"random_state": 0, **params}), **pipe_params).fit(seg[:400])
        test = seg[400:]
        flags = pipe.predict(test)
        flagged += int(flags.sum())
        rows += len(test)
        per_segment.append(round(float(flags.mean()), 3))
        if flags.any():
            shares += pipe.contributions(test)[flags].sum(axis=0)
    top = sorted(zip(names, shares / max(shares.sum(), 1e-12), strict=True), key=lambda kv: -kv[1])[:3]
    return {"far": flagged / rows, "per_segment": per_segment, "top_sensors": [(n, round(v, 3)) for n, v in top]}


def synthetic_cases(segs: list[np.ndarray], seed: int = 123):
    """(training rows, scored rows with three injected anomalies, their labels) for each segment."""
    rng = np.random.default_rng(seed)
    cases = []
    for seg in segs:
        train, test = seg[:400], seg[400:].copy()
        spread = train.std(axis=0)
        label = np.zeros(len(test), dtype=bool)
        for start in (100, 350, 600):
            length = int(rng.integers(30, 90))
            cols = rng.choice(seg.shape[1], size=int(rng.integers(1, 3)), replace=False)
            rows = slice(start, start + length)
            kind = int(rng.integers(3))
            if kind == 0:  # level shift
                test[rows, cols] += 3 * spread[cols] * rng.choice([-1, 1])
            elif kind == 1:  # ramp
                test[rows, cols] += np.linspace(0, 4, length)[:, None] * spread[cols]
            else:  # noise burst
                test[rows, cols] += rng.normal(size=(length, len(cols))) * 3 * spread[cols]
            label[rows] = True
        cases.append((train, test, label))
    return cases


def synthetic_detection(cases, detector: str, params: dict) -> dict[str, float]:
    """ROC-AUC (mean over segments), and pooled F1, FAR and MAR at the calibrated threshold."""
    from sklearn.metrics import roc_auc_score

    from vigil.pipeline import Pipeline
    from vigil.registry import make_detector

    aucs, tp, fp, fn, tn = [], 0, 0, 0, 0
    for train, test, label in cases:
        pipe = Pipeline(make_detector(detector, **{"random_state": 0, **params})).fit(train)
        scores = pipe.score_samples(test)
        flags = scores > pipe.threshold_
        aucs.append(roc_auc_score(label, scores))
        tp += int((flags & label).sum())
        fp += int((flags & ~label).sum())
        fn += int((~flags & label).sum())
        tn += int((~flags & ~label).sum())
    return {
        "roc_auc": float(np.mean(aucs)),
        "f1": tp / (tp + (fp + fn) / 2),
        "far": fp / (fp + tn),
        "mar": fn / (fn + tp),
    }


def sequence_table(segs: list[np.ndarray], names: list[str]) -> dict[str, Any]:
    print(
        "| tcn-sequence, drift guard | synthetic ROC-AUC | synthetic F1 | synthetic FAR % | synthetic MAR % "
        "| FAR % on normal data | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    cases = synthetic_cases(segs)
    results = {}
    for label, detector, params in SEQUENCE_GRID:
        params = {"relative_drift": 1.0, **params}
        start = time.perf_counter()
        r = synthetic_detection(cases, detector, params)
        r["normal_far"] = false_alarms(segs, names, detector, params, {})["far"]
        results[label] = r
        print(
            f"| {label} | {r['roc_auc']:.3f} | {r['f1']:.3f} | {100 * r['far']:.1f} | {100 * r['mar']:.1f} "
            f"| {100 * r['normal_far']:.1f} | {time.perf_counter() - start:.1f} |",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("VIGIL_DATA_DIR"), help="default: $VIGIL_DATA_DIR")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--sequence", action="store_true", help="the tcn-sequence settings table (see above)")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("set VIGIL_DATA_DIR or pass --data-dir")
    import torch

    torch.set_num_threads(1)
    segs, names = segments(Path(args.data_dir))
    if args.sequence:
        results = sequence_table(segs, names)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        return
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
