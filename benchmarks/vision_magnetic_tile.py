"""Magnetic-tile benchmark tables for the image detectors: every detector × split × seed, one JSON each.

Run from the repository root with the data folder in VIGIL_DATA_DIR::

    .venv/bin/python benchmarks/vision_magnetic_tile.py --out benchmarks/results/vision
    .venv/bin/python benchmarks/vision_magnetic_tile.py --only patch-gauss --splits grouped differnet
    .venv/bin/python benchmarks/vision_magnetic_tile.py --only defect-seg --seeds 0 1 2
    .venv/bin/python benchmarks/vision_magnetic_tile.py --only patchcore padim --size 256 --resize pad

Prints a Markdown table (the one in docs/benchmarks-vision.md) and writes ``<detector>_<split>_s<seed>.json``
and an HTML report with heat-map overlays per run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vigil.vision.bench import load_magnetic_tile, run_image_bench

RUNS = {
    "patch-gauss": ("grouped", "differnet"),
    "image-ae": ("grouped", "differnet"),
    "cnn-classifier": ("supervised",),
    "defect-seg": ("grouped",),
    "image-ensemble": ("grouped",),
    "patchcore": ("grouped", "differnet"),
    "padim": ("grouped",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/vision")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--resize", choices=["stretch", "crop", "pad"], default="stretch")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", default=list(RUNS))
    parser.add_argument("--splits", nargs="+", default=None)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_magnetic_tile(args.data_dir, size=args.size, resize=args.resize)
    print(
        "| detector | split | seed | image ROC-AUC | blowhole | break | crack | fray | uneven | pixel ROC-AUC |"
        " images/s | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for detector in args.only:
        for split in args.splits or RUNS[detector]:
            for seed in args.seeds:
                stem = f"{detector}_{split}_s{seed}"
                start = time.perf_counter()
                r = run_image_bench(
                    "magnetic-tile",
                    detector,
                    data_dir=args.data_dir,
                    split=split,
                    size=args.size,
                    resize=args.resize,
                    seed=seed,
                    json_path=out / f"{stem}.json",
                    report_path=out / f"{stem}.html",
                    data=data,
                    quiet=True,
                )
                per = r["roc_auc_per_type"]
                pixel = "–" if r["pixel_roc_auc"] is None else f"{r['pixel_roc_auc']:.3f}"
                print(
                    f"| {detector} | {split} | {seed} | {r['roc_auc']:.3f} | "
                    + " | ".join(f"{per[k]:.3f}" for k in ("blowhole", "break", "crack", "fray", "uneven"))
                    + f" | {pixel} | {r['images_per_second']:.0f} | {r['fit_seconds']:.0f} |",
                    flush=True,
                )
                print(
                    json.dumps(
                        {
                            "run": stem,
                            "seconds": round(time.perf_counter() - start, 1),
                            "load_average": r["load_average"],
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
