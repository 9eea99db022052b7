"""SKAB as a deployment: train on the anomaly-free run, then stream all 34 experiments; static vs adaptive.

    VIGIL_DATA_DIR=../shared/data .venv/bin/python benchmarks/prequential_skab.py --detector pca

The adaptive model is refitted every ``--chunk`` rows on the most recent rows believed normal (operators are
simulated reviewing every alarm with the label: confirmed alarms are left out, false positives are kept);
a guard refuses updates when more than ``--guard`` of the recent rows carry confirmed alarms. Prints the
comparison and writes JSON to benchmarks/results/prequential/skab-<detector>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.data.benchmarks import load_benchmark, resolve_data_dir
from vigil.data.tables import read_table
from vigil.evaluation.prequential import prequential
from vigil.pipeline import Pipeline
from vigil.registry import make_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="pca")
    parser.add_argument("--chunk", type=int, default=300)
    parser.add_argument("--window", type=int, default=3000)
    parser.add_argument("--guard", type=float, default=0.5)
    args = parser.parse_args()

    root = resolve_data_dir()
    normal = read_table(root / "skab" / "anomaly-free" / "anomaly-free.csv", sep=";", time="datetime")
    benchmark = load_benchmark("skab")
    frames, labels = [normal.X], [np.zeros(len(normal.X), dtype=bool)]
    for part in benchmark.parts:
        frames += [part.X_train, part.X_test]
        labels += [part.extra.get("y_train", np.zeros(len(part.X_train), dtype=bool)), part.y_test]
    X = pd.concat(frames, ignore_index=True)
    y = np.concatenate(labels)

    def make() -> Pipeline:
        return Pipeline(make_detector(args.detector, random_state=0))

    result = prequential(
        X, y, make, initial_rows=len(normal.X), chunk=args.chunk, window=args.window, guard=args.guard, progress=True
    )
    made = sum(u["updated"] for u in result.updates)
    print(
        f"SKAB streamed after the anomaly-free run: {len(X) - len(normal.X)} rows, {made} updates, "
        f"{len(result.updates) - made} refused by the guard"
    )
    print("| model | F1 | FAR % | MAR % | event recall | false alarms / h |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in (("static", result.static), ("adaptive", result.adaptive)):
        print(
            f"| {name} | {m['f1']:.3f} | {100 * m['far']:.2f} | {100 * m['mar']:.2f} | {m['event_recall']:.3f} "
            f"| {m['false_alarms_per_hour']:.1f} |"
        )
    out = Path(__file__).parent / "results" / "prequential" / f"skab-{args.detector}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"static": result.static, "adaptive": result.adaptive, "updates": result.updates, "config": vars(args)},
            indent=2,
            default=float,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
