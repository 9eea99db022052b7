"""Latency of exported models under onnxruntime on one thread (what a gateway has to spare), beside Vigil's own.

Run from the repository root with the data folder in VIGIL_DATA_DIR::

    nice .venv/bin/python benchmarks/onnx_latency.py images --only patch-gauss padim patchcore
    nice .venv/bin/python benchmarks/onnx_latency.py telemetry --only pca autoencoder

``images`` fits each detector on the magnetic-tile training tiles of the grouped split (at ``--size`` px,
stretched, as ``benchmarks/vision_magnetic_tile.py`` does by default), exports it with ``vigil export``'s
function, and times single frames: ``--frames`` test tiles scored one call each, after three warm-up calls.
``telemetry`` fits a pipeline (standard scaler, the detector, its calibrated threshold) on the training rows of
SMD ``machine-1-2`` (38 sensors) and times batches of ``--batch`` consecutive test rows. Both report the median
and 90th percentile per call for onnxruntime (1 intra-op thread) and for Vigil (torch on 1 thread), and the
parity of the two over the whole evaluated set. One JSON per detector goes to ``benchmarks/results/vision/``
(``onnx-latency-<detector>.json``) with the load average at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "vision"
IMAGE_PARAMS: dict[str, dict[str, Any]] = {"patch-gauss": {}, "padim": {}, "patchcore": {}}
TABLE_PARAMS: dict[str, dict[str, Any]] = {"pca": {}, "autoencoder": {"epochs": 20}}


def _load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _timings(call: Callable[[Any], Any], inputs: list[Any]) -> dict[str, float]:
    for item in inputs[:3]:
        call(item)
    seconds = []
    for item in inputs:
        start = time.perf_counter()
        call(item)
        seconds.append(time.perf_counter() - start)
    ms = np.array(seconds) * 1e3
    return {
        "calls": len(ms),
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(ms.mean()),
    }


def _parity(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    return {
        "max_abs_difference": float(np.abs(theirs - ours).max()),
        "max_relative_difference": float((np.abs(theirs - ours) / np.maximum(1.0, np.abs(ours))).max()),
        "decisions_that_differ": None,
    }


def _conditions() -> dict[str, Any]:
    import onnxruntime
    import torch

    from vigil.evaluation.runner import environment

    return {
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_intra_op_threads": 1,
        "torch_threads_for_vigil": 1,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "environment": {**environment(), "torch": torch.__version__},
    }


def _write(name: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"onnx-latency-{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    onnx, vigil = result["onnxruntime_latency"], result["vigil_latency"]
    print(
        f"{name}: onnxruntime {onnx['median_ms']:.2f} ms median ({onnx['p90_ms']:.2f} p90), Vigil "
        f"{vigil['median_ms']:.2f} ms, parity {result['parity']['max_relative_difference']:.2g}; "
        f"benchmarks/results/vision/{path.name}"
    )


def images(args: argparse.Namespace) -> None:
    import torch

    from vigil.export import OnnxScorer, export_model
    from vigil.vision.bench import load_magnetic_tile
    from vigil.vision.folders import save_image_model
    from vigil.vision.registry import make_image_detector

    data, index = load_magnetic_tile(args.data_dir, size=args.size, resize="stretch")
    train = np.flatnonzero((index["split_grouped"] == "train").to_numpy())
    test = np.flatnonzero((index["split_grouped"] == "test").to_numpy())
    rng = np.random.default_rng(0)
    frames = data.images[np.sort(rng.choice(test, size=min(args.frames, len(test)), replace=False))]
    for name in args.only:
        load_start = _load_average()
        torch.set_num_threads(args.fit_threads)
        params = {**IMAGE_PARAMS[name], "random_state": 0}
        start = time.perf_counter()
        model = make_image_detector(name, **params).fit(data.images[train])
        fit_seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            saved = save_image_model(model, Path(tmp) / "model", detector=name, size=args.size, mode="L",
                                     resize="stretch")  # fmt: skip
            summary = export_model(saved, Path(tmp) / "edge")
            size_mb = (Path(tmp) / "edge" / "model.onnx").stat().st_size / 1e6
            scorer = OnnxScorer(Path(tmp) / "edge", threads=1)
            torch.set_num_threads(1)
            singles = [frame[None] for frame in frames]
            theirs_t = _timings(scorer.score, singles)
            ours_t = _timings(model.score_samples, singles)
            ours, theirs = model.score_samples(frames), scorer.score(frames)
        parity = _parity(ours, theirs)
        parity["decisions_that_differ"] = int(((ours > model.threshold_) != (theirs > scorer.threshold)).sum())
        _write(
            name,
            {
                "what": "one magnetic-tile test frame per call (batch of 1), scores only",
                "dataset": "magnetic-tile",
                "split": "grouped",
                "detector": name,
                "params": params,
                "size": args.size,
                "resize": "stretch",
                "n_train": len(train),
                "fit_seconds": fit_seconds,
                "fit_torch_threads": args.fit_threads,
                "onnx_megabytes": size_mb,
                "export": summary.split(" to ")[0],
                "onnxruntime_latency": theirs_t,
                "vigil_latency": ours_t,
                "parity": {"frames": len(frames), **parity},
                **_conditions(),
                "load_average_1_5_15min_at_start": load_start,
                "load_average_1_5_15min_at_end": _load_average(),
            },
        )


def telemetry(args: argparse.Namespace) -> None:
    import torch

    from vigil.data.benchmarks import load_benchmark
    from vigil.export import OnnxScorer, export_model
    from vigil.pipeline import Pipeline
    from vigil.registry import make_detector

    part = load_benchmark("smd", args.data_dir, parts=["machine-1-2"]).parts[0]
    test = part.X_test.to_numpy()
    for name in args.only:
        load_start = _load_average()
        torch.set_num_threads(args.fit_threads)
        params = {**TABLE_PARAMS[name], **({"random_state": 0} if name != "pca" else {})}
        start = time.perf_counter()
        pipe = Pipeline(make_detector(name, **params)).fit(part.X_train)
        fit_seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            pipe.save(Path(tmp) / "model")
            summary = export_model(Path(tmp) / "model", Path(tmp) / "edge")
            scorer = OnnxScorer(Path(tmp) / "edge", threads=1)
            torch.set_num_threads(1)
            starts = range(0, len(test) - args.batch + 1, args.batch)
            batches = [test[s : s + args.batch] for s in starts][: args.batches]
            theirs_t = _timings(scorer.score, batches)
            ours_t = _timings(pipe.score_samples, batches)
            ours, theirs = pipe.score_samples(test), scorer.score(test)
        parity = _parity(ours, theirs)
        parity["decisions_that_differ"] = int(((ours > pipe.threshold_) != (theirs > scorer.threshold)).sum())
        _write(
            name,
            {
                "what": f"{args.batch} consecutive SMD machine-1-2 test rows (38 sensors) per call, scores only",
                "dataset": "smd",
                "part": part.name,
                "detector": name,
                "params": params,
                "batch_rows": args.batch,
                "n_train": len(part.X_train),
                "fit_seconds": fit_seconds,
                "fit_torch_threads": args.fit_threads,
                "export": summary.split(" to ")[0],
                "onnxruntime_latency": theirs_t,
                "vigil_latency": ours_t,
                "parity": {"rows": len(test), **parity},
                **_conditions(),
                "load_average_1_5_15min_at_start": load_start,
                "load_average_1_5_15min_at_end": _load_average(),
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--fit-threads", type=int, default=2, help="torch threads while fitting (timing: 1)")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("images")
    p.add_argument("--only", nargs="+", default=list(IMAGE_PARAMS), choices=list(IMAGE_PARAMS))
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=100)
    p.set_defaults(func=images)
    p = sub.add_parser("telemetry")
    p.add_argument("--only", nargs="+", default=list(TABLE_PARAMS), choices=list(TABLE_PARAMS))
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--batches", type=int, default=20)
    p.set_defaults(func=telemetry)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
