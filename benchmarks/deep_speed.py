"""Speed of Vigil's deep detectors: the SKAB protocol against PyOD's AutoEncoder, and LSTM-AE batch scoring.

    VIGIL_DATA_DIR=../shared/data .venv/bin/python benchmarks/deep_speed.py skab --entry tcn-forecaster-drift
    .venv/bin/python benchmarks/deep_speed.py scoring

``skab`` runs the whole SKAB protocol (34 files: fit on the first 400 rows, score the rest) twice, side by
side in one process: with a Vigil entry of ``benchmarks/deep_tables.py`` (its pipeline: scaler, detector,
calibrated threshold) and with PyOD 3.x's ``AutoEncoder`` (its defaults, ``contamination=0.01``, CPU). The
files alternate between the two so that both see the same machine load. Both get the same number of torch
threads (``--threads``, 1 by default). PyOD is not a Vigil dependency; install it for this script only:

    pip install --target "$PYOD_DIR" "pyod==3.6.7" numba   # then run with PYTHONPATH="$PYOD_DIR"

``scoring`` fits an LSTM-AE (defaults: window 32, hidden 32, latent 8) on synthetic data with 8 sensors and
times batch scoring of a long series on one thread: one window per row, so rows/s = windows/s per core.
Results go to ``benchmarks/results/speed/`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "speed"


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in __import__("os").getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _conditions(threads: int) -> dict[str, Any]:
    import os

    import torch

    return {
        "torch": torch.__version__,
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_average_1_5_15min_at_start": _load_average(),
    }


def _pooled(counts: list[tuple[int, int, int, int]]) -> dict[str, float]:
    tp, fp, fn, tn = (sum(c[i] for c in counts) for i in range(4))
    return {
        "f1": tp / (tp + (fp + fn) / 2) if tp else 0.0,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
    }


def _counts(y: np.ndarray, flags: np.ndarray) -> tuple[int, int, int, int]:
    y, flags = y.astype(bool), flags.astype(bool)
    return int((y & flags).sum()), int((~y & flags).sum()), int((y & ~flags).sum()), int((~y & ~flags).sum())


def run_skab(entry: str, threads: int, data_dir: str | None) -> dict[str, Any]:
    import torch
    from deep_tables import CONFIGS  # this folder is on sys.path when the script runs

    from vigil.data.benchmarks import load_benchmark
    from vigil.pipeline import Pipeline
    from vigil.registry import make_detector

    try:
        from pyod.models.auto_encoder import AutoEncoder
    except ImportError as exc:
        msg = "this benchmark needs PyOD 3.x: pip install 'pyod==3.6.7' numba (see the module docstring)"
        raise SystemExit(msg) from exc
    import pyod

    torch.set_num_threads(threads)
    detector, params, smoothing, calibrate = CONFIGS[entry]
    parts = load_benchmark("skab", data_dir=data_dir).parts
    seconds = {"vigil": 0.0, "pyod": 0.0}
    counts: dict[str, list[tuple[int, int, int, int]]] = {"vigil": [], "pyod": []}
    conditions = _conditions(threads)

    def fit_and_predict(which: str, part: Any) -> np.ndarray:
        if which == "vigil":
            det = make_detector(detector, random_state=0, **params)
            return Pipeline(det, smoothing=smoothing, calibrate=calibrate).fit(part.X_train).predict(part.X_test)
        model = AutoEncoder(contamination=0.01, random_state=0, verbose=0, device="cpu")
        model.fit(part.X_train.to_numpy())
        return model.predict(part.X_test.to_numpy()).astype(bool)

    # One untimed round on the first file for each library: lazy imports and first-call kernel set-up (about
    # a second) happen once per process and are not what the comparison is about.
    for which in ("vigil", "pyod"):
        fit_and_predict(which, parts[0])
    for i, part in enumerate(parts):
        # Alternate which library goes first, so that neither always runs on a warmer (or busier) machine.
        for which in ("vigil", "pyod") if i % 2 == 0 else ("pyod", "vigil"):
            start = time.perf_counter()
            flags = fit_and_predict(which, part)
            seconds[which] += time.perf_counter() - start
            counts[which].append(_counts(part.y_test, flags))
    return {
        "benchmark": "skab",
        "protocol": "34 files: fit on the first 400 rows (scaler, model, threshold), predict the rest",
        "warm_up": "one untimed fit and prediction of the first file per library before timing",
        "vigil_entry": entry,
        "vigil_config": {
            "detector": detector,
            "params": params,
            "smoothing": smoothing,
            "calibrate": calibrate,
            "random_state": 0,
        },
        "pyod": {"version": pyod.__version__, "model": "AutoEncoder", "params": {"contamination": 0.01}},
        "seconds": seconds,
        "speedup": seconds["pyod"] / seconds["vigil"],
        "metrics": {k: _pooled(v) for k, v in counts.items()},
        "conditions": {**conditions, "load_average_1_5_15min_at_end": _load_average()},
    }


def run_scoring(threads: int, rows: int, repeats: int) -> dict[str, Any]:
    import torch

    from vigil.detectors.autoencoders import LSTMAutoencoderDetector

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    t = np.arange(2000 + rows)[:, None] / 10.0
    X = np.sin(t * np.arange(1, 9)) + 0.1 * rng.normal(size=(len(t), 8))
    det = LSTMAutoencoderDetector(epochs=2, random_state=0).fit(X[:2000])
    series = X[2000:]
    det.score_samples(series[:5000])  # warm-up: first calls allocate and pick kernels
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        det.score_samples(series)
        timings.append(time.perf_counter() - start)
    best = min(timings)
    return {
        "benchmark": "LSTM-AE batch scoring, CPU",
        "detector": {k: v for k, v in det.get_params().items() if k in ("window", "hidden_size", "latent")},
        "sensors": 8,
        "windows": rows,
        "seconds": timings,
        "windows_per_second_best": rows / best,
        "windows_per_second_median": rows / float(np.median(timings)),
        "windows_per_second_per_thread_best": rows / best / threads,
        "conditions": {**_conditions(threads), "load_average_1_5_15min_at_end": _load_average()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("skab", help="the SKAB protocol, Vigil against PyOD's AutoEncoder")
    p.add_argument("--entry", default="tcn-forecaster-drift", help="an entry of benchmarks/deep_tables.py")
    p.add_argument("--data-dir", help="folder holding skab/ (default: $VIGIL_DATA_DIR)")
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("scoring", help="LSTM-AE windows per second")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.what == "skab":
        result = run_skab(args.entry, args.threads, args.data_dir)
        name = f"skab-{args.entry}-vs-pyod-autoencoder.json"
        print(
            f"SKAB, 34 fits and scorings: Vigil {args.entry} {result['seconds']['vigil']:.1f} s, "
            f"PyOD AutoEncoder {result['seconds']['pyod']:.1f} s: {result['speedup']:.1f}× "
            f"(F1/FAR/MAR Vigil {result['metrics']['vigil']}, PyOD {result['metrics']['pyod']})"
        )
    else:
        result = run_scoring(args.threads, args.rows, args.repeats)
        name = f"lstm-ae-scoring-{args.threads}-thread.json"
        print(
            f"LSTM-AE scoring, {result['sensors']} sensors, window {result['detector']['window']}: "
            f"{result['windows_per_second_best']:,.0f} windows/s best, "
            f"{result['windows_per_second_median']:,.0f} median, on {args.threads} thread(s)"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
