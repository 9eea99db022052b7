"""A forecaster + distance ensemble under the alarm rules: its combination chosen on development runs only.

    VIGIL_DATA_DIR=../shared/data nice -n 10 python benchmarks/alarm_ensemble.py \
        --json benchmarks/results/alarms/skab/ensemble-variants.json

Members: ``mahalanobis`` and ``tcn-forecaster`` with ``relative_drift=1.0`` (the ``tcn-forecaster-drift``
entry). Variants: the normalisation (``robust`` median/IQR, ``tail`` -log10 tail p-value, ``quantile``:
the score divided by the member's 0.99 quantile) × the combination (``mean``, ``max``), every one with the
normalisation fitted on held-out rows (``holdout=0.25``: members fitted on the first 75 % of the rows the
ensemble is given, normalised on their scores of the last 25 %). The members are the same in every variant,
so each pipeline is fitted once and every variant re-combines the same members' scores; each variant gets
its own 1 %-target-FAR threshold from the pipeline's held-out calibration rows, exactly as `vigil bench`.

Development evidence (no benchmark test row): the development runs of ``benchmarks/alarm_dev.py`` (SKAB's
anomaly-free run in 8 segments, three incident-free simulator runs, each scored period once untouched and
once with three long synthetic faults), decided by the ``recommended`` rule. Choice rule A (stated before
any test score was computed): among the variants whose untouched development runs raise at most 6
false-alarm events per hour on average, the highest mean F1 on the faulty runs; variants within 0.005 F1
are tied and the tie goes to the lowest false-alarm rate on the untouched runs. Rule B: the same with the
untouched runs' false-alarm rate also at most 12 %. Then SKAB's official protocol (34 files, each fitted on
its first 400 rows) is decided by every variant under both named rules; the chosen variant is the figure to
quote, the others are reported beside it.
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

from alarm_dev import _faulty, plant_segments, skab_segments
from alarm_variants import choose, judge_dev, judge_test

MEMBERS = ("mahalanobis", "tcn-forecaster")
MEMBER_PARAMS = ({}, {"relative_drift": 1.0})
VARIANTS = [(n, c) for n in ("robust", "tail", "quantile") for c in ("mean", "max")]
RULES = {
    "plain": {"name": "plain", "plain": True},
    # alarm_variants' spelling of the recommended rule: 3 of 5, off-delay 10, baseline 1,200, bypass 2x, guard 0.2
    "recommended": {"name": "recommended", "adapt": "baseline1200", "off_delay": 10, "clear": None},
}


def _pipeline(holdout: float):
    from vigil.calibration.thresholds import TargetFARThreshold
    from vigil.detectors.ensemble import EnsembleDetector
    from vigil.pipeline import Pipeline

    detector = EnsembleDetector(
        members=MEMBERS, member_params=MEMBER_PARAMS, holdout=holdout, tail_quantile=0.99, random_state=0
    )
    return Pipeline(detector, threshold=TargetFARThreshold(far=0.01))


def _variant_scores(pipe, train: np.ndarray, others: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per variant: the pipeline's held-out calibration scores, its 1 % target-FAR threshold, other scores."""
    from vigil.calibration.thresholds import TargetFARThreshold

    split = len(train) - round(pipe.holdout * len(train))
    out = {}
    for normalisation, combination in VARIANTS:
        pipe.detector_.normalisation, pipe.detector_.combination = normalisation, combination
        calibration = pipe.score_samples(train[max(split - pipe.context_rows, 0) :])[-(len(train) - split) :]
        threshold = float(TargetFARThreshold(far=0.01).fit(calibration).threshold_)
        scores = {key: pipe.score_samples(values) for key, values in others.items()}
        out[f"{normalisation}/{combination}"] = {"calibration": calibration, "threshold": threshold, **scores}
    return out


def development(data_dir: Path, holdout: float) -> dict[str, list[dict[str, Any]]]:
    cases: dict[str, list[dict[str, Any]]] = {f"{n}/{c}": [] for n, c in VARIANTS}
    for segments in (skab_segments(data_dir), plant_segments()):
        rng = np.random.default_rng(123)  # as alarm_dev.score_cases: the same faults as every other dev table
        for train, test in segments:
            faulty, label = _faulty(test, train.std(axis=0) + 1e-12, rng)
            pipe = _pipeline(holdout).fit(train)
            for key, scored in _variant_scores(pipe, train, {"normal": test, "faulty": faulty}).items():
                cases[key].append({**scored, "label": label})
            print(f"dev segment fitted ({len(train)} rows)", file=sys.stderr, flush=True)
    return cases


def skab_test(data_dir: Path, holdout: float) -> dict[str, list[dict[str, Any]]]:
    from vigil.data.benchmarks import load_benchmark

    parts: dict[str, list[dict[str, Any]]] = {f"{n}/{c}": [] for n, c in VARIANTS}
    for part in load_benchmark("skab", data_dir=data_dir).parts:
        train = part.X_train.to_numpy(dtype=float) if hasattr(part.X_train, "to_numpy") else part.X_train
        test = part.X_test.to_numpy(dtype=float) if hasattr(part.X_test, "to_numpy") else part.X_test
        seconds = part.time_test.to_numpy().astype("datetime64[ns]").astype(np.int64) / 1e9
        pipe = _pipeline(holdout).fit(train)
        for key, scored in _variant_scores(pipe, train, {"test": test}).items():
            parts[key].append(
                {**scored, "name": part.name, "labels": np.asarray(part.y_test, dtype=bool), "seconds": seconds}
            )
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("VIGIL_DATA_DIR"))
    parser.add_argument("--holdout", type=float, default=0.25, help="the ensemble's normalisation holdout")
    parser.add_argument("--dev-only", action="store_true", help="stop after the development table and the choice")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit("set VIGIL_DATA_DIR or --data-dir")
    import torch

    torch.set_num_threads(1)
    load_start, start = [round(v, 2) for v in os.getloadavg()], time.perf_counter()
    dev_cases = development(Path(args.data_dir), args.holdout)
    rows = []
    for key, cases in dev_cases.items():
        rows.append({"name": key, "dev": judge_dev(cases, RULES["recommended"])})
    chosen, chosen_b = choose(rows), choose(rows, far_cap=0.12)
    dev_seconds = time.perf_counter() - start
    print(f"development: {dev_seconds:.0f} s; chosen (A) {chosen['name']}, (B) {chosen_b['name']}", file=sys.stderr)
    print("| variant (recommended rule) | dev F1 | dev events/h | dev FAR % | dev event recall |")
    for row in rows:
        d = row["dev"]
        mark = (" **chosen (A)**" if row is chosen else "") + (" **chosen (B)**" if row is chosen_b else "")
        print(
            f"| {row['name']}{mark} | {d['f1']:.3f} | {d['normal_events_per_hour']:.1f} | "
            f"{100 * d['normal_far']:.2f} | {d['event_recall']:.2f} |"
        )
    if not args.dev_only:
        tests = skab_test(Path(args.data_dir), args.holdout)
        print("| variant | rule | F1 | FAR % | MAR % | event recall | events/h | FAR ratio | floods |")
        for row in rows:
            row["test"] = {rule: judge_test(tests[row["name"]], spec) for rule, spec in RULES.items()}
            for rule, t in row["test"].items():
                print(
                    f"| {row['name']} | {rule} | {t['f1']:.3f} | {100 * t['far']:.2f} | {100 * t['mar']:.2f} | "
                    f"{t['event_recall']:.2f} | {t['false_alarms_per_hour']:.1f} | {t['far_ratio_median']:.2f} | "
                    f"{t['alarm_floods']} |"
                )
    if args.json:
        document = {
            "command": " ".join(["benchmarks/alarm_ensemble.py", *sys.argv[1:]]),
            "members": MEMBERS,
            "member_params": MEMBER_PARAMS,
            "holdout": args.holdout,
            "choice_rule": "under the recommended rule: dev events/h <= 6, then highest dev F1 (ties within 0.005 "
            "to the lowest dev FAR); stated before any test score was computed",
            "chosen": chosen["name"],
            "choice_rule_b": "as the choice rule, and dev FAR on the untouched runs <= 12 %",
            "chosen_b": chosen_b["name"],
            "development_seconds": round(dev_seconds, 1),
            "seconds": round(time.perf_counter() - start, 1),
            "load_average_1_5_15min_at_start": load_start,
            "load_average_1_5_15min_at_end": [round(v, 2) for v in os.getloadavg()],
            "cpu_count": os.cpu_count(),
            "rows": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=1, default=float))


if __name__ == "__main__":
    main()
