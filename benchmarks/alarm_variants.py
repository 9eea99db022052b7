"""Alarm-rule variants for one detector: chosen on development runs, then measured once on saved test scores.

    VIGIL_DATA_DIR=../shared/data python benchmarks/alarm_variants.py --detector tcn-forecaster \
        --param relative_drift=1.0 --scores skab-tcn-forecaster-drift.npz \
        --json benchmarks/results/alarms/skab/variants-tcn-forecaster-drift.json

Development evidence (no benchmark test row): the detector fitted on the development segments of
``benchmarks/alarm_dev.py`` (SKAB's anomaly-free run in 8 segments, three incident-free simulator runs),
each scored period once untouched and once with three long synthetic faults. Every variant decides the same
scores. The choice rule, fixed before the test scores were read: among the variants whose untouched
development runs raise at most 6 false-alarm events per hour on average (EEMUA 191), the highest mean F1 on
the faulty runs; variants within 0.005 F1 of it are tied and the tie goes to the lowest false-alarm rate on
the untouched runs (rule A). Rule B, stated after the development table was seen and before any test score
was decided, adds that the untouched runs' false-alarm rate be at most 12 %.

Variants (all with the recommended rule's 3-of-5 on-delay and bypass at 2 × the set level unless named):
the off-delay (1, 3, 5, 10 readings), a clear level (none; a fixed deadband of 20 %; or per asset, the
``clear_quantile`` of that asset's own held-out training scores, so an alarm clears once the score is back
among normal training scores), and the adaptive set level (fixed, baseline 1,200, conformal, SPOT).

The test scores (``benchmarks/alarm_scores.py``) are then decided by every variant, and the chosen one is
the figure to quote; the other rows are there to show what the choice cost or gained, read after the fact.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alarm_dev import plant_segments, score_cases, skab_segments
from alarm_scores import _param

from vigil.alarms import AlarmPolicy, AlarmStage
from vigil.calibration.online import make_online_threshold
from vigil.evaluation.alarm_metrics import alarm_floods
from vigil.evaluation.metrics import evaluate_groups

ADAPT: dict[str, tuple[str, dict[str, Any]]] = {
    "fixed": ("fixed", {}),
    "baseline1200": ("baseline", {"memory": 1200}),
    "conformal": ("conformal", {"alpha": 0.01, "gamma": 0.005}),
    "spot": ("spot", {"risk": 1e-3, "level": 0.9, "depth": 30}),
}
OFF_DELAYS = (1, 3, 5, 10)
CLEARS: tuple[str | float | None, ...] = (None, 0.2, "q0.9", "q0.5")


def variants() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "plain", "plain": True}]
    for adapt in ADAPT:
        for off in OFF_DELAYS:
            for clear in CLEARS:
                name = f"{adapt} off{off} clear={clear}"
                out.append({"name": name, "adapt": adapt, "off_delay": off, "clear": clear})
    return out


def make_stage(variant: dict[str, Any], calibration: np.ndarray, threshold: float) -> AlarmStage:
    if variant.get("plain"):
        return AlarmStage().fit(calibration, threshold)
    clear = variant["clear"]
    deadband = 0.0
    if isinstance(clear, float):
        deadband = clear
    elif isinstance(clear, str):
        # Per asset: the clear level is a quantile of the asset's own held-out training scores.
        level = float(np.quantile(calibration, float(clear[1:])))
        if threshold > 0 and level < threshold:
            deadband = min(max(1.0 - level / threshold, 0.0), 0.99)
    kind, params = ADAPT[variant["adapt"]]
    policy = AlarmPolicy(on_delay=3, window=5, off_delay=variant["off_delay"], deadband=deadband, bypass=2.0)
    return AlarmStage(threshold=make_online_threshold(kind, **params), policy=policy, guard=0.2).fit(
        calibration, threshold
    )


def judge_dev(cases: list[dict[str, Any]], variant: dict[str, Any]) -> dict[str, float]:
    rows = events = flagged = 0
    groups = {}
    for i, case in enumerate(cases):
        normal = make_stage(variant, case["calibration"], case["threshold"]).run(case["normal"])
        rows += len(case["normal"])
        events += int(normal.raised.sum())
        flagged += int(normal.active.sum())
        faulty = make_stage(variant, case["calibration"], case["threshold"]).run(case["faulty"])
        groups[str(i)] = (case["label"], faulty.active, None)
    pooled = evaluate_groups(groups)["pooled"]
    return {
        "f1": pooled["f1"],
        "event_recall": pooled["event_recall"],
        "normal_far": flagged / rows,
        "normal_events_per_hour": events / (rows / 3600.0),
    }


def judge_test(parts: list[dict[str, Any]], variant: dict[str, Any]) -> dict[str, Any]:
    groups = {}
    floods = intervals = 0
    for part in parts:
        run = make_stage(variant, part["calibration"], part["threshold"]).run(part["test"], timestamps=part["seconds"])
        groups[part["name"]] = (part["labels"], run.active, None, part["seconds"])
        flood = alarm_floods(run.raised, part["seconds"])
        floods += flood["alarm_floods"]
        intervals += flood["flood_intervals"]
    report = evaluate_groups(groups)
    pooled = report["pooled"]
    ratios = [p["far"] / 0.01 for p in report["per_part"].values() if np.isfinite(p["far"])]
    return {
        "f1": pooled["f1"],
        "far": pooled["far"],
        "mar": pooled["mar"],
        "event_recall": pooled["event_recall"],
        "false_alarms_per_hour": pooled["false_alarms_per_hour"],
        "far_ratio_median": float(np.median(ratios)),
        "macro_f1": report["macro"]["f1"],
        "alarm_floods": floods,
        "flood_intervals": intervals,
        "detection_delay_median": pooled["detection_delay_median"],
    }


def read_parts(path: str) -> list[dict[str, Any]]:
    parts = []
    with np.load(path, allow_pickle=False) as npz:
        for i, name in enumerate(str(n) for n in npz["names"]):
            parts.append(
                {
                    "name": name,
                    "calibration": npz[f"calibration_{i}"],
                    "threshold": float(npz[f"threshold_{i}"]),
                    "test": npz[f"test_{i}"],
                    "labels": npz[f"labels_{i}"],
                    "seconds": npz[f"seconds_{i}"] if f"seconds_{i}" in npz else None,
                }
            )
    return parts


def choose(rows: list[dict[str, Any]], far_cap: float | None = None) -> dict[str, Any]:
    within = [
        r
        for r in rows
        if r["dev"]["normal_events_per_hour"] <= 6.0 and (far_cap is None or r["dev"]["normal_far"] <= far_cap)
    ] or rows
    best = max(r["dev"]["f1"] for r in within)
    tied = [r for r in within if r["dev"]["f1"] >= best - 0.005]
    return min(tied, key=lambda r: r["dev"]["normal_far"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", required=True)
    parser.add_argument("--param", action="append", type=_param, default=[])
    parser.add_argument("--scores", nargs="+", default=[], help="npz files of benchmarks/alarm_scores.py")
    parser.add_argument("--data-dir", default=os.environ.get("VIGIL_DATA_DIR"))
    parser.add_argument("--dev-cache", help="npz cache of the development scores")
    parser.add_argument("--json")
    parser.add_argument(
        "--test-only", help="decide the test scores only with the chosen variants and these (comma-separated names)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    cache = Path(args.dev_cache) if args.dev_cache else None
    if cache is not None and cache.exists():
        cases = [dict(c) for c in np.load(cache, allow_pickle=True)["cases"]]
    else:
        cases = []
        for segments in (skab_segments(Path(args.data_dir)), plant_segments()):
            cases += score_cases(segments, args.detector, dict(args.param))
        if cache is not None:
            np.savez(cache, cases=np.array(cases, dtype=object))
    print(f"development scores: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    rows = [{**v, "dev": judge_dev(cases, v)} for v in variants()]
    chosen = choose(rows)
    # Rule B, stated after the development table was seen and before any test score was decided: the same,
    # with the untouched development runs also at most at the 12 % false-alarm rate (rule A's pick
    # holds alarms long enough to reach 22.5 % there).
    chosen_b = choose(rows, far_cap=0.12)
    tests = {path: read_parts(path) for path in args.scores}
    named = None if args.test_only is None else {*args.test_only.split(","), chosen["name"], chosen_b["name"]}
    for row in rows:
        if named is not None and row["name"] not in named:
            row["test"] = {}
            continue
        row["test"] = {Path(path).name: judge_test(parts, row) for path, parts in tests.items()}
    heads = " | ".join(f"{Path(p).name} F1/FAR/MAR/ev-h/ratio" for p in tests)
    print(f"| variant | dev F1 | dev events/h | dev FAR % | {heads} |")
    for row in sorted(rows, key=lambda r: -r["dev"]["f1"]):
        mark = (" **chosen (A)**" if row is chosen else "") + (" **chosen (B)**" if row is chosen_b else "")
        cells = " | ".join(
            f"{t['f1']:.3f} / {100 * t['far']:.2f} / {100 * t['mar']:.2f} / {t['false_alarms_per_hour']:.1f} / "
            f"{t['far_ratio_median']:.2f}"
            for t in row["test"].values()
        )
        d = row["dev"]
        dev = f"{d['f1']:.3f} | {d['normal_events_per_hour']:.1f} | {100 * d['normal_far']:.2f}"
        print(f"| {row['name']}{mark} | {dev} | {cells} |")
    if args.json:
        document = {
            "command": " ".join(["benchmarks/alarm_variants.py", *sys.argv[1:]]),
            "choice_rule": "dev events/h <= 6, then highest dev F1 (ties within 0.005 to the lowest dev FAR)",
            "chosen": chosen["name"],
            "choice_rule_b": "as the choice rule, and dev FAR on the untouched runs <= 12 % (stated after the dev "
            "table was seen, before any test score was decided)",
            "chosen_b": chosen_b["name"],
            "rows": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=1, default=float))


if __name__ == "__main__":
    main()
