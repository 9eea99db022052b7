"""Scoring SKAB without one sensor: does the false-alarm rate hold, and how much detection is lost?

A plant's sensor fails; its readings come as ``null`` (an OPC UA ``Bad`` status) and the plant file says
``on_missing = "score_without"``. A model that can (``mahalanobis``, ``online-zscore``) scores the record on
the sensors that remain, against the threshold calibrated on complete rows
(:meth:`vigil.pipeline.Pipeline.score_without`). This runs the SKAB official protocol (each of the 34 files:
fit on its first 400 rows, test on the rest; counts summed over files) once with every sensor and once per
sensor with that sensor missing from every test row, and reports F1, FAR, MAR and event recall of the static
threshold for each. Nothing is chosen here: the models are the registered defaults.

Example (what docs/sources.md quotes)::

    VIGIL_DATA_DIR=... python benchmarks/score_without.py --json benchmarks/results/sources/score-without-skab.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.data.skab import SKAB_SENSORS, load_skab
from vigil.evaluation.metrics import Counts, confusion_counts, event_recall, point_metrics
from vigil.pipeline import Pipeline
from vigil.registry import make_detector

DETECTORS = ("mahalanobis", "online-zscore")


def run(detector: str) -> dict[str, Any]:
    bench = load_skab()
    totals: dict[str, Counts] = {}
    recalls: dict[str, list[float]] = {}
    for part in bench.parts:
        pipe = Pipeline(make_detector(detector, random_state=0)).fit(part.X_train)
        X = np.asarray(part.X_test, dtype=np.float64)
        cases = {"all sensors": pipe.score_samples(X)}
        for j, sensor in enumerate(SKAB_SENSORS):
            cases[f"without {sensor}"] = pipe.score_without(X, [j])
        for case, scores in cases.items():
            flagged = scores > pipe.threshold_
            totals[case] = totals.get(case, Counts(tp=0, fp=0, fn=0, tn=0)) + confusion_counts(part.y_test, flagged)
            recalls.setdefault(case, []).append(event_recall(part.y_test, flagged))
    out = {}
    for case, counts in totals.items():
        m = point_metrics(counts)
        out[case] = {
            "f1": round(float(m["f1"]), 4),
            "far": round(float(m["far"]), 4),
            "mar": round(float(m["mar"]), 4),
            "event_recall": round(float(np.mean(recalls[case])), 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    started = time.time()
    results = {name: run(name) for name in DETECTORS}
    document = {
        "benchmark": "score_without",
        "command": "python benchmarks/score_without.py" + (f" --json {args.json}" if args.json else ""),
        "protocol": "SKAB official per-file protocol (first 400 rows train, rest test, counts summed over the "
        "34 files); static threshold of the pipeline (1 % target FAR on held-out training rows); one sensor "
        "missing from every test row at a time",
        "python": platform.python_version(),
        "seconds": round(time.time() - started, 1),
        "results": results,
    }
    for name, cases in results.items():
        print(name)
        for case, m in cases.items():
            print(
                f"  {case:32s} F1 {m['f1']:.3f}  FAR {100 * m['far']:5.2f} %  MAR {100 * m['mar']:5.2f} %  "
                f"event recall {m['event_recall']:.2f}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
