"""How the alarm stage's defaults were chosen without any benchmark's test rows: normal runs plus synthetic faults.

    VIGIL_DATA_DIR=../shared/data .venv/bin/python benchmarks/alarm_dev.py --json benchmarks/results/alarms/dev.json

Two development sets, both made of normal operation only, neither part of any test protocol:

* SKAB's anomaly-free run (``skab/anomaly-free/anomaly-free.csv``), cut into 8 segments of 1,175 rows; each
  is treated like an experiment file (fit on the first 400 rows, score the other 775);
* the plant simulator's normal operation (``vigil.data.simulator``: the incident-free training period of
  three 4-hour recordings with seeds other than the demo's), fit on the first hour, score the next two.

Into every scored period go three long synthetic faults (a level shift, a ramp or a noise burst of 2-4
training standard deviations on one or two sensors, 60-240 rows; fixed seed), so a rule can be judged on
what it misses as well as on what it raises. Each detector is fitted once per segment; every candidate
alarm stage (annunciation policy × adaptive set level) then decides the same scores. The chosen stage is
the one with the best mean F1 over detectors and both sets among those whose false-alarm rate on the
untouched normal rows stays at or below ``--far-budget`` (default 2 %) and whose event recall stays 1.0,
ties broken towards the simpler rule. Nothing here reads a labelled benchmark file.
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

from vigil.alarms import AlarmPolicy, AlarmStage
from vigil.calibration.online import make_online_threshold
from vigil.evaluation.metrics import evaluate_groups

DETECTORS: list[tuple[str, str, dict[str, Any]]] = [
    ("pca", "pca", {}),
    ("mahalanobis", "mahalanobis", {}),
    ("tcn-sequence-drift", "tcn-sequence", {"relative_drift": 1.0}),
    ("tcn-forecaster-drift", "tcn-forecaster", {"relative_drift": 1.0}),
]

POLICIES: list[dict[str, Any]] = [
    {},
    {"on_delay": 3, "window": 5},
    {"on_delay": 3, "window": 5, "off_delay": 10},
    {"on_delay": 5, "window": 10, "off_delay": 10},
    {"on_delay": 5, "window": 10, "off_delay": 30},
    {"on_delay": 10, "window": 20, "off_delay": 10},
    {"on_delay": 10, "window": 20, "off_delay": 30},
    {"on_delay": 5, "window": 10, "off_delay": 10, "deadband": 0.3},
    {"on_delay": 10, "window": 20, "off_delay": 30, "deadband": 0.3},
]

ADAPTATIONS: list[tuple[str, dict[str, Any]]] = [
    ("fixed", {}),
    ("baseline", {"memory": 300}),
    ("baseline", {"memory": 1200}),
    ("conformal", {"alpha": 0.01, "gamma": 0.005}),
    ("spot", {"risk": 1e-3, "level": 0.9}),
    ("spot", {"risk": 1e-3, "level": 0.9, "depth": 30}),
]


def _faulty(test: np.ndarray, spread: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    out = test.copy()
    label = np.zeros(len(test), dtype=bool)
    slot = len(test) // 3
    for k in range(3):
        length = int(rng.integers(60, min(240, slot - 10)))
        start = k * slot + int(rng.integers(5, slot - length - 5))
        cols = rng.choice(test.shape[1], size=int(rng.integers(1, 3)), replace=False)
        rows = slice(start, start + length)
        size = float(rng.uniform(2.0, 4.0))
        kind = int(rng.integers(3))
        if kind == 0:
            out[rows, cols] += size * spread[cols] * rng.choice([-1, 1])
        elif kind == 1:
            out[rows, cols] += np.linspace(0, size, length)[:, None] * spread[cols]
        else:
            out[rows, cols] += rng.normal(size=(length, len(cols))) * size * spread[cols]
        label[rows] = True
    return out, label


def skab_segments(data_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from vigil.data.tables import read_table

    table = read_table(data_dir / "skab" / "anomaly-free" / "anomaly-free.csv", sep=";", time="datetime")
    values = table.X.to_numpy(dtype=float)
    size = len(values) // 8
    return [(values[i * size : i * size + 400], values[i * size + 400 : (i + 1) * size]) for i in range(8)]


def plant_segments() -> list[tuple[np.ndarray, np.ndarray]]:
    from vigil.data.simulator import simulate_plant

    segments = []
    for seed in (101, 102, 103):  # the demo uses seed 7
        normal = simulate_plant(hours=4.0, train_hours=3.0, seed=seed).train_frame.to_numpy(dtype=float)
        segments.append((normal[:3600], normal[3600:]))
    return segments


def score_cases(segments, detector: str, params: dict[str, Any], seed: int = 123):
    """Fit once per segment; keep what every candidate stage needs: calibration scores, threshold, test."""
    from vigil.pipeline import Pipeline
    from vigil.registry import detector_class, make_detector

    rng = np.random.default_rng(seed)
    cases = []
    for train, test in segments:
        p = dict(params)
        if "random_state" in detector_class(detector)._param_names():
            p.setdefault("random_state", 0)
        pipe = Pipeline(make_detector(detector, **p)).fit(train)
        split = len(train) - round(0.25 * len(train))
        context = pipe.context_rows
        calibration = pipe.score_samples(train[max(split - context, 0) :])[-(len(train) - split) :]
        faulty, label = _faulty(test, train.std(axis=0) + 1e-12, rng)
        cases.append(
            {
                "calibration": calibration,
                "threshold": pipe.threshold_,
                "normal": pipe.score_samples(test),
                "faulty": pipe.score_samples(faulty),
                "label": label,
            }
        )
    return cases


def judge(cases, policy: dict[str, Any], kind: str, params: dict[str, Any]) -> dict[str, float]:
    stage = AlarmStage(threshold=make_online_threshold(kind, **params), policy=AlarmPolicy(**policy))
    normal_flagged = normal_rows = 0
    groups = {}
    for i, case in enumerate(cases):
        fitted = stage.clone().fit(case["calibration"], case["threshold"])
        normal_flagged += int(fitted.run(case["normal"]).active.sum())
        normal_rows += len(case["normal"])
        groups[str(i)] = (case["label"], fitted.run(case["faulty"]).active, None)
    pooled = evaluate_groups(groups)["pooled"]
    return {
        "normal_far": normal_flagged / normal_rows,
        "f1": pooled["f1"],
        "far": pooled["far"],
        "mar": pooled["mar"],
        "event_recall": pooled["event_recall"],
        "detection_delay_median": pooled["detection_delay_median"],
        "false_alarm_events": pooled["false_alarm_events"],
    }


def _complexity(policy: dict[str, Any], kind: str) -> tuple[int, int]:
    return (0 if kind == "fixed" else 1, sum(1 for v in policy.values() if v))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("VIGIL_DATA_DIR"))
    parser.add_argument("--far-budget", type=float, default=0.02)
    parser.add_argument("--json", help="write the grid and the choice here")
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit("set VIGIL_DATA_DIR or --data-dir")
    import torch

    torch.set_num_threads(1)
    sets = {"skab-anomaly-free": skab_segments(Path(args.data_dir)), "plant-simulator": plant_segments()}
    grid: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    for set_name, segments in sets.items():
        for label, detector, params in DETECTORS:
            cases = score_cases(segments, detector, params)
            for policy in POLICIES:
                for kind, kparams in ADAPTATIONS:
                    key = json.dumps({"policy": policy, "adapt": kind, "params": kparams}, sort_keys=True)
                    grid.setdefault(key, {})[f"{set_name}/{label}"] = judge(cases, policy, kind, kparams)
            print(f"{set_name} · {label}: scored ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    rows = []
    for key, results in grid.items():
        config = json.loads(key)
        rows.append(
            {
                **config,
                "mean_f1": float(np.mean([r["f1"] for r in results.values()])),
                "max_normal_far": float(max(r["normal_far"] for r in results.values())),
                "mean_normal_far": float(np.mean([r["normal_far"] for r in results.values()])),
                "min_event_recall": float(min(r["event_recall"] for r in results.values())),
                "results": results,
            }
        )
    eligible = [r for r in rows if r["mean_normal_far"] <= args.far_budget and r["min_event_recall"] >= 1.0]
    eligible.sort(key=lambda r: (-round(r["mean_f1"], 3), _complexity(r["policy"], r["adapt"])))
    chosen = eligible[0] if eligible else None
    print("| policy | adaptive set level | mean F1 | mean FAR on normal % | max FAR on normal % | min event recall |")
    print("|---|---|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: -r["mean_f1"])[:25]:
        mark = " **chosen**" if r is chosen else ""
        print(
            f"| {r['policy'] or 'plain'} | {r['adapt']} {r['params'] or ''} | {r['mean_f1']:.3f}{mark} "
            f"| {100 * r['mean_normal_far']:.2f} | {100 * r['max_normal_far']:.2f} | {r['min_event_recall']:.2f} |"
        )
    if args.json:
        document = {
            "command": " ".join(["benchmarks/alarm_dev.py", *sys.argv[1:]]),
            "far_budget": args.far_budget,
            "chosen": None if chosen is None else {k: chosen[k] for k in ("policy", "adapt", "params", "mean_f1")},
            "rows": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
