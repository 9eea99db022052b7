"""How the image detectors' settings were chosen: synthetic defects in held-out *training* tiles, never the test split.

The good training images of the grouped split are cut by tile group: groups with ``tile_group % 10 == 3``
(71 images) are held out, the rest (685) fit the detector. Each held-out image is scored as it is (normal)
and once with each synthetic defect of :mod:`vigil.vision.synthetic` pasted in (scratch, hole, stain,
cut-paste); ROC-AUC per defect kind compares configurations. Run from the repository root::

    .venv/bin/python benchmarks/vision_validation.py
    .venv/bin/python benchmarks/vision_validation.py --size 256 --resize pad --configs 6 7
    .venv/bin/python benchmarks/vision_validation.py --size 384 --resize pad \
        --spec 'padim:{"resolution": 320}' --spec 'padim:{"layers": [4, 7, 10]}' --json sweep.json

With ``--resize pad`` the defects are drawn on the tile, never on the filler around it. ``--spec
DETECTOR:JSON`` adds a configuration (JSON lists become tuples); ``--json`` writes every row with the
command, the torch thread count and the load average (1 min) before and after each configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.evaluation.metrics import roc_auc
from vigil.vision.bench import _tile_pixels, load_magnetic_tile
from vigil.vision.registry import make_image_detector
from vigil.vision.synthetic import DEFECT_KINDS, inject_defect

CONFIGS = [
    ("patch-gauss", {"grid": 8}),
    ("patch-gauss", {"grid": 16}),
    ("patch-gauss", {"grid": 32}),
    ("patch-gauss", {"grid": 16, "shrinkage": 0.01}),
    ("patch-gauss", {"grid": 16, "shrinkage": 0.2}),
    ("defect-seg", {}),
    ("patchcore", {}),
    ("patchcore", {"layers": (7, 10)}),
    ("patchcore", {"layers": (4, 7, 10)}),
    ("patchcore", {"resolution": 320}),
    ("patchcore", {"resolution": 320, "layers": (7, 10)}),
    ("patchcore", {"memory_size": 20_000}),
    ("patchcore", {"neighbours": 1}),
    ("padim", {}),
    ("padim", {"layers": (7, 10)}),
]


def _spec(text: str) -> tuple[str, dict[str, Any]]:
    name, _, params = text.partition(":")
    loaded = json.loads(params) if params.strip() else {}
    return name, {k: tuple(v) if isinstance(v, list) else v for k, v in loaded.items()}


def _load() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--resize", choices=["stretch", "crop", "pad"], default="stretch")
    parser.add_argument("--configs", type=int, nargs="+", default=None, help="indices into CONFIGS (default: all)")
    parser.add_argument("--spec", action="append", default=[], help="DETECTOR:JSON, a configuration of its own")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--note", default="", help="recorded in the JSON (e.g. the selection rule)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    configs = [CONFIGS[i] for i in args.configs] if args.configs else ([] if args.spec else list(CONFIGS))
    configs += [_spec(text) for text in args.spec]
    data, index = load_magnetic_tile(args.data_dir, size=args.size, resize=args.resize)
    train = (index["split_grouped"].to_numpy() == "train") & ~data.labels
    held = train & (index["tile_group"].to_numpy() % 10 == 3)
    fit = train & ~held
    rng = np.random.default_rng(0)
    normal = data.images[held]
    damaged, kinds = [], []
    # Defects go on the tile itself, never on the filler that --resize pad adds around it.
    inside = _tile_pixels(index[held], args.size, args.resize) > 0.5
    for image, tile in zip(normal, inside, strict=True):
        rows, cols = np.flatnonzero(tile.any(axis=1)), np.flatnonzero(tile.any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        for kind in DEFECT_KINDS:
            out, _ = inject_defect(image[box] / 255.0, kind, rng)
            full = image.copy()
            full[box] = np.round(out * 255).astype(np.uint8)
            damaged.append(full)
            kinds.append(kind)
    X = np.concatenate([normal, np.stack(damaged)])
    kinds = np.asarray(["good"] * len(normal) + kinds)
    rows = []
    for name, params in configs:
        load_before = _load()
        start_all = time.perf_counter()
        start = time.perf_counter()
        groups = index["tile_group"].to_numpy()[fit]
        det = make_image_detector(name, **params, random_state=0).fit(data.images[fit], groups=groups)
        seconds = time.perf_counter() - start
        scores = det.score_samples(X)
        score_seconds = time.perf_counter() - start_all - seconds
        row = {
            "detector": name,
            "params": params,
            "fit_seconds": round(seconds),
            "images_per_second": round(len(X) / score_seconds, 1),
            "size": args.size,
            "resize": args.resize,
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": [load_before, _load()],
            "all": roc_auc(kinds != "good", scores),
        }
        for kind in DEFECT_KINDS:
            pick = (kinds == "good") | (kinds == kind)
            row[kind] = roc_auc(kinds[pick] != "good", scores[pick])
        rows.append(row)
        print(row, flush=True)
        if args.json:
            out = {
                "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
                "note": args.note,
                "held_out_good": len(normal),
                "defects_per_kind": len(normal),
                "fit_images": int(fit.sum()),
                "rows": rows,
            }
            Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
    print("| config | all | " + " | ".join(DEFECT_KINDS) + " | images/s | fit s |")
    print("|---|---|" + "---|" * (len(DEFECT_KINDS) + 2))
    for row in rows:
        cells = " | ".join(f"{row[k]:.3f}" for k in ("all", *DEFECT_KINDS))
        print(f"| {row['detector']} {row['params']} | {cells} | {row['images_per_second']} | {row['fit_seconds']} |")


if __name__ == "__main__":
    main()
