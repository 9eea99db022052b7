"""Benchmark tables for docs/benchmarks.md: every registered detector on one data set, official protocol.

    VIGIL_DATA_DIR=../shared/data .venv/bin/python benchmarks/tables.py --dataset skab

Each detector runs through ``vigil bench`` with its defaults (seed 0; thresholds from training rows only).
JSON results go to ``benchmarks/results/<dataset>/<detector>.json``; the Markdown table, with the
published results beside it, goes to standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

from vigil.cli import main
from vigil.registry import available_detectors

RESULTS = Path(__file__).parent / "results"

# Published figures, point-wise without point-adjust: (name, F1, FAR %, MAR %) — see ../shared/data/README.md.
PUBLISHED = {
    "skab": [
        ("Conv-AE", 0.78, 13.55, 28.02),
        ("MSET", 0.78, 39.73, 14.13),
        ("T-squared+Q (PCA)", 0.76, 26.62, 24.92),
        ("LSTM-AE", 0.74, 29.96, 25.92),
        ("T-squared", 0.66, 19.21, 42.6),
        ("Vanilla AE", 0.39, 2.59, 75.15),
        ("Isolation forest", 0.29, 2.56, 82.89),
        ("flag every point", 0.698, 100.0, 0.0),
    ],
    # Kim et al. (AAAI 2022): best F1 with an oracle threshold, no point-adjust; FAR/MAR not reported.
    "smd": [
        ("OmniAnomaly (oracle)", 0.474, None, None),
        ("USAD (oracle)", 0.426, None, None),
        ("GDN (oracle)", 0.529, None, None),
    ],
    "ton-iot": [],
}


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "—" if value is None else f"{value * scale:.{digits}f}"


def run(dataset: str, detectors: list[str] | None = None) -> int:
    folder = RESULTS / dataset
    folder.mkdir(parents=True, exist_ok=True)
    print(
        "| detector | F1 | FAR % | MAR % | precision | recall | ROC-AUC | PR-AUC | event recall "
        "| F1 point-adjusted (inflated) | oracle F1, mean per part | fit + score s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    unsupervised = [name for name, cls in available_detectors().items() if not cls.requires_y]
    for name in detectors or unsupervised:
        out = folder / f"{name}.json"
        # A path relative to the working directory keeps machine paths out of the recorded command.
        argv = [
            "bench",
            "--dataset",
            dataset,
            "--detector",
            name,
            "--json",
            os.path.relpath(out),
            "--quiet",
            "--per-part",
        ]
        with contextlib.redirect_stdout(io.StringIO()):  # keep only the table on standard output
            code = main(argv)
        if code != 0:
            return code
        r = json.loads(out.read_text())
        print(
            f"| Vigil `{name}` | {_fmt(r['f1'], digits=3)} | {_fmt(r['far'], 100)} | {_fmt(r['mar'], 100)} "
            f"| {_fmt(r['precision'], digits=3)} | {_fmt(r['recall'], digits=3)} | {_fmt(r['roc_auc'], digits=3)} "
            f"| {_fmt(r['pr_auc'], digits=3)} | {_fmt(r['event_recall'])} | {_fmt(r['f1_point_adjusted'], digits=3)} "
            f"| {_fmt(r['oracle_best_f1_mean'], digits=3)} | {r['fit_seconds'] + r['score_seconds']:.1f} |",
            flush=True,
        )
    for name, f1, far, mar in PUBLISHED[dataset]:
        oracle = "(oracle)" in name
        f1_cell = "" if oracle else _fmt(f1, digits=3)
        oracle_cell = _fmt(f1, digits=3) if oracle else ""
        print(f"| published: {name} | {f1_cell} | {_fmt(far)} | {_fmt(mar)} | | | | | | | {oracle_cell} | |")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(PUBLISHED))
    parser.add_argument("--detectors", nargs="+", help="registered detector names (default: all)")
    args = parser.parse_args()
    sys.exit(run(args.dataset, args.detectors))
