"""Fleet training speed: many per-asset models fitted as one batched computation, against one at a time.

    VIGIL_DATA_DIR=../shared/data PYTHONPATH="$PYOD_DIR" .venv/bin/python benchmarks/fleet_speed.py skab
    VIGIL_DATA_DIR=../shared/data .venv/bin/python benchmarks/fleet_speed.py smd
    .venv/bin/python benchmarks/fleet_speed.py simulated --assets 1000
    .venv/bin/python benchmarks/fleet_speed.py ray --assets 120 --workers 2

``skab`` times the whole SKAB protocol (34 files: scaler, model and threshold fitted on each file's first
400 rows, the rest predicted) three ways in one process, in rounds whose order rotates so that each sees
the same machine load: Vigil's entries (``benchmarks/deep_tables.py``) as one fleet
(:func:`vigil.fleet.fit_pipelines` and :func:`vigil.fleet.score_pipelines`), the same entries one file at
a time (``Pipeline.fit`` / ``predict`` per file), and PyOD 3.x's ``AutoEncoder`` (its defaults,
``contamination=0.01``). The pooled F1, FAR and MAR of every way are recorded. PyOD is not a Vigil
dependency; install it for this script only (see ``benchmarks/deep_speed.py``).

``smd`` fits the 19 SMD machines' models as one fleet and one at a time (same detector, seed 0, after one
untimed warm-up fit) and compares their per-machine F1 against the target (fleet ≥ 8× faster, per-machine
F1 equal to 0.005).

``simulated`` builds a fleet of assets from the demo's plant simulator (:func:`vigil.data.simulator.
simulate_plant`, 1 h at 1 Hz per plant: 1,350 training rows, 2,250 labelled test rows): each simulated
plant gives six assets of 10 sensors (every sixth of its 61 columns, from each offset), so that every
asset sees the whole line. It reports the fleet's training time and the process's peak memory, the
one-at-a-time fit of a sample of assets (scaled to the whole fleet), and batched scoring of every asset's
test rows against a loop of ``Pipeline.score_samples`` (rows per second).

``ray`` fits a simulated fleet's per-asset models three ways, in rotating order within one local Ray
session: one fleet in this process (:func:`vigil.fleet.fit_groups`), and the assets dealt to 1 and to
``--workers`` Ray tasks, one fleet each (:func:`vigil.scale.ray_fleet.fit_groups_with_ray`); it checks that
every asset's test scores agree all three ways.

PyTorch runs on ``--threads`` CPU threads (1 by default) for every way. Results go to
``benchmarks/results/speed/`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "speed"
sys.path.insert(0, str(Path(__file__).parent))  # deep_tables.CONFIGS


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _conditions(threads: int) -> dict[str, Any]:
    import torch

    return {
        "torch": torch.__version__,
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_average_1_5_15min_at_start": _load_average(),
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _counts(y: np.ndarray, flags: np.ndarray) -> tuple[int, int, int, int]:
    y, flags = np.asarray(y).astype(bool), np.asarray(flags).astype(bool)
    return int((y & flags).sum()), int((~y & flags).sum()), int((y & ~flags).sum()), int((~y & ~flags).sum())


def _pooled(counts: list[tuple[int, int, int, int]]) -> dict[str, float]:
    tp, fp, fn, tn = (sum(c[i] for c in counts) for i in range(4))
    return {
        "f1": round(tp / (tp + (fp + fn) / 2), 6) if tp else 0.0,
        "far": round(fp / (fp + tn), 6) if fp + tn else 0.0,
        "mar": round(fn / (fn + tp), 6) if fn + tp else 0.0,
    }


def _template(entry: str, dataset: str):
    from deep_tables import CONFIGS, DATASET_PARAMS, FULL_BATCH

    from vigil.pipeline import Pipeline
    from vigil.registry import make_detector

    detector, params, smoothing, calibrate = CONFIGS[entry]
    if detector not in FULL_BATCH:
        params = {**params, **DATASET_PARAMS[dataset]}
    config = {"detector": detector, "params": params, "smoothing": smoothing, "calibrate": calibrate}
    return Pipeline(make_detector(detector, random_state=0, **params), smoothing=smoothing, calibrate=calibrate), config


# ---------------------------------------------------------------------------------------------- SKAB
def _vigil_fleet(template, parts) -> list[np.ndarray]:
    from vigil.fleet import fit_pipelines, score_pipelines

    fleet = fit_pipelines(template, {p.name: p.X_train for p in parts})
    if fleet.failed:
        raise next(iter(fleet.failed.values()))
    scored = score_pipelines(fleet.fitted, {p.name: p.X_test for p in parts})
    return [scored.scores[p.name] > fleet.fitted[p.name].threshold_ for p in parts]


def _vigil_one_at_a_time(template, parts) -> list[np.ndarray]:
    return [template.clone().fit(p.X_train).predict(p.X_test) for p in parts]


def _pyod(parts) -> list[np.ndarray]:
    from pyod.models.auto_encoder import AutoEncoder

    flags = []
    for p in parts:
        model = AutoEncoder(contamination=0.01, random_state=0, verbose=0, device="cpu")
        model.fit(p.X_train.to_numpy())
        flags.append(model.predict(p.X_test.to_numpy()).astype(bool))
    return flags


def run_skab(entries: list[str], rounds: int, threads: int, data_dir: str | None) -> dict[str, Any]:
    import torch

    from vigil.data.benchmarks import load_benchmark

    try:
        import pyod
    except ImportError as exc:
        msg = "this benchmark needs PyOD 3.x: pip install 'pyod==3.6.7' numba (see benchmarks/deep_speed.py)"
        raise SystemExit(msg) from exc
    torch.set_num_threads(threads)
    conditions = _conditions(threads)
    parts = load_benchmark("skab", data_dir=data_dir).parts
    ways: dict[str, Any] = {"pyod-autoencoder": lambda: _pyod(parts)}
    configs = {}
    for entry in entries:
        template, configs[entry] = _template(entry, "skab")
        ways[f"{entry}:fleet"] = lambda t=template: _vigil_fleet(t, parts)
        ways[f"{entry}:one-at-a-time"] = lambda t=template: _vigil_one_at_a_time(t, parts)
    # Untimed warm-up on the first file: lazy imports and first-call kernel set-up happen once per process.
    _pyod(parts[:1])
    for entry in entries:
        template, _ = _template(entry, "skab")
        _vigil_fleet(template, parts[:2])
        _vigil_one_at_a_time(template, parts[:1])
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    metrics: dict[str, dict[str, float]] = {}
    names = list(ways)
    for r in range(rounds):
        # Rotate the order each round so that no way always runs first (or on a busier machine).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            flags = ways[name]()
            seconds[name].append(round(time.perf_counter() - start, 3))
            metrics[name] = _pooled([_counts(p.y_test, f) for p, f in zip(parts, flags, strict=True)])
            print(f"round {r + 1}: {name} {seconds[name][-1]:.1f} s {metrics[name]}", flush=True)
    median = {name: float(np.median(v)) for name, v in seconds.items()}
    speedups = {}
    for entry in entries:
        fleet, alone = median[f"{entry}:fleet"], median[f"{entry}:one-at-a-time"]
        speedups[entry] = {
            "fleet_vs_one_at_a_time": round(alone / fleet, 2),
            "fleet_vs_pyod_autoencoder": round(median["pyod-autoencoder"] / fleet, 2),
            "one_at_a_time_vs_pyod_autoencoder": round(median["pyod-autoencoder"] / alone, 2),
        }
    return {
        "benchmark": "skab fleet",
        "protocol": "34 files: fit on the first 400 rows (scaler, model, threshold), predict the rest",
        "warm_up": "one untimed fit and prediction of the first file(s) per way before timing",
        "rounds": rounds,
        "vigil_configs": configs,
        "pyod": {"version": pyod.__version__, "model": "AutoEncoder", "params": {"contamination": 0.01}},
        "seconds": seconds,
        "seconds_median": median,
        "speedup": speedups,
        "metrics": metrics,
        "conditions": {**conditions, "load_average_1_5_15min_at_end": _load_average()},
    }


# ---------------------------------------------------------------------------------------------- SMD
def run_smd(entry: str, threads: int, data_dir: str | None) -> dict[str, Any]:
    import torch

    from vigil.data.benchmarks import load_benchmark
    from vigil.evaluation.metrics import evaluate_groups
    from vigil.fleet import fit_pipelines

    torch.set_num_threads(threads)
    conditions = _conditions(threads)
    parts = load_benchmark("smd", data_dir=data_dir).parts
    template, config = _template(entry, "smd")
    # Untimed warm-up on the first machine: lazy imports and first-call kernel set-up happen once per process,
    # and would otherwise be charged to the fleet, which runs first.
    template.clone().fit(parts[0].X_train)
    start = time.perf_counter()
    fleet = fit_pipelines(template, {p.name: p.X_train for p in parts})
    fleet_seconds = time.perf_counter() - start
    print(f"SMD fleet fit {fleet_seconds:.1f} s", flush=True)
    alone_seconds = 0.0
    per_machine = {}
    groups: dict[str, dict[str, Any]] = {"fleet": {}, "one-at-a-time": {}}
    for p in parts:
        start = time.perf_counter()
        single = template.clone().fit(p.X_train)
        alone_seconds += time.perf_counter() - start
        for way, pipe in (("fleet", fleet.fitted[p.name]), ("one-at-a-time", single)):
            groups[way][p.name] = (p.y_test, pipe.predict(p.X_test), None)
        print(f"  {p.name} one at a time: {alone_seconds:.1f} s so far", flush=True)
    reports = {way: evaluate_groups(g) for way, g in groups.items()}
    for p in parts:
        f1 = {way: reports[way]["per_part"][p.name]["f1"] for way in groups}
        per_machine[p.name] = {
            "train_rows": len(p.X_train),
            "f1_fleet": round(f1["fleet"], 6),
            "f1_one_at_a_time": round(f1["one-at-a-time"], 6),
        }
    largest = round(max(abs(v["f1_fleet"] - v["f1_one_at_a_time"]) for v in per_machine.values()), 6)
    speedup = round(alone_seconds / fleet_seconds, 2)
    return {
        "benchmark": "smd fleet",
        "command": "python benchmarks/fleet_speed.py " + " ".join(sys.argv[1:]),
        "protocol": "19 machines: fit on train/<machine>, predict test/<machine>",
        "machines": [p.name for p in parts],
        "warm_up": "one untimed fit of the first machine before timing",
        "entry": entry,
        "vigil_config": config,
        "seconds": {"fleet_fit": round(fleet_seconds, 3), "one_at_a_time_fit": round(alone_seconds, 3)},
        "speedup_fit": speedup,
        "pooled": {way: {k: round(r["pooled"][k], 6) for k in ("f1", "far", "mar")} for way, r in reports.items()},
        "largest_per_machine_f1_difference": largest,
        "target": {"speedup_fit_at_least": 8.0, "largest_per_machine_f1_difference_at_most": 0.005},
        "target_met": {"speedup": speedup >= 8.0, "f1": largest <= 0.005},
        "per_machine": per_machine,
        "conditions": {**conditions, "load_average_1_5_15min_at_end": _load_average()},
    }


# ---------------------------------------------------------------------------------------------- simulated
def simulated_assets(n_assets: int, sensors: int = 10) -> dict[str, Any]:
    """``n_assets`` assets of ``sensors`` columns from seeded 1 h plant recordings (six assets a plant)."""
    from vigil.data.simulator import simulate_plant

    assets = {}
    seed = 0
    while len(assets) < n_assets:
        rec = simulate_plant(hours=1.0, seed=seed)
        columns = list(rec.frame.columns)
        stride = len(columns) // sensors
        for offset in range(stride):
            if len(assets) == n_assets:
                break
            chosen = columns[offset::stride][:sensors]
            frame = rec.frame[chosen]
            assets[f"plant{seed:04d}-asset{offset}"] = (
                frame.iloc[: rec.train_rows],
                frame.iloc[rec.train_rows :],
                rec.labels[rec.train_rows :],
            )
        seed += 1
    return assets


def run_simulated(entry: str, n_assets: int, sample: int, max_members: int | None, threads: int) -> dict[str, Any]:
    import torch

    from vigil.fleet import fit_pipelines, score_pipelines

    torch.set_num_threads(threads)
    conditions = _conditions(threads)
    start = time.perf_counter()
    assets = simulated_assets(n_assets)
    simulate_seconds = time.perf_counter() - start
    template, config = _template(entry, "skab")
    rss_before = _peak_rss_mib()
    start = time.perf_counter()
    fleet = fit_pipelines(template, {k: v[0] for k, v in assets.items()}, max_members=max_members)
    fleet_seconds = time.perf_counter() - start
    rss_after = _peak_rss_mib()
    print(f"fleet of {n_assets}: fit {fleet_seconds:.1f} s, peak RSS {rss_after:.0f} MiB", flush=True)
    names = list(assets)[:sample]
    start = time.perf_counter()
    singles = {k: template.clone().fit(assets[k][0]) for k in names}
    sample_seconds = time.perf_counter() - start
    print(f"one at a time, {sample} assets: {sample_seconds:.1f} s", flush=True)
    tests = {k: v[1] for k, v in assets.items()}
    start = time.perf_counter()
    batched = score_pipelines(fleet.fitted, tests)
    batched_seconds = time.perf_counter() - start
    start = time.perf_counter()
    looped = {k: fleet.fitted[k].score_samples(x) for k, x in tests.items()}
    loop_seconds = time.perf_counter() - start
    rows = sum(len(x) for x in tests.values())
    largest = max(
        float(np.max(np.abs(batched.scores[k] - looped[k]) / np.maximum(np.abs(looped[k]), 1e-12))) for k in tests
    )
    counts = [_counts(assets[k][2], batched.scores[k] > fleet.fitted[k].threshold_) for k in tests]
    agree = [
        float(
            np.mean(
                (fleet.fitted[k].score_samples(tests[k]) > fleet.fitted[k].threshold_) == singles[k].predict(tests[k])
            )
        )
        for k in names
    ]
    return {
        "benchmark": "simulated fleet",
        "assets": n_assets,
        "sensors_per_asset": 10,
        "rows_per_asset": {"train": len(assets[names[0]][0]), "test": len(assets[names[0]][1])},
        "data": "simulate_plant(hours=1.0, seed=s), six 10-sensor assets per plant (every sixth column); labels "
        "are the plant's incidents, which an asset's 10 sensors may see only in part",
        "entry": entry,
        "vigil_config": config,
        "max_members": max_members,
        "simulate_seconds": round(simulate_seconds, 3),
        "fleet_fit_seconds": round(fleet_seconds, 3),
        "fleet_failed": fleet.reasons,
        "peak_rss_mib_before_fit": round(rss_before, 1),
        "peak_rss_mib_after_fit": round(rss_after, 1),
        "one_at_a_time_sample": sample,
        "one_at_a_time_sample_seconds": round(sample_seconds, 3),
        "one_at_a_time_scaled_to_fleet_seconds": round(sample_seconds / sample * n_assets, 3),
        "speedup_fit": round(sample_seconds / sample * n_assets / fleet_seconds, 2),
        "sample_decisions_agreeing_with_one_at_a_time": round(float(np.mean(agree)), 6),
        "scoring": {
            "rows": rows,
            "batched_seconds": round(batched_seconds, 3),
            "loop_seconds": round(loop_seconds, 3),
            "batched_rows_per_second": round(rows / batched_seconds),
            "loop_rows_per_second": round(rows / loop_seconds),
            "speedup": round(loop_seconds / batched_seconds, 2),
            "largest_relative_score_difference": largest,
        },
        "metrics": _pooled(counts),
        "conditions": {**conditions, "load_average_1_5_15min_at_end": _load_average()},
    }


def run_ray(entry: str, n_assets: int, workers: int, rounds: int, threads: int) -> dict[str, Any]:
    import pandas as pd
    import ray
    import torch

    from vigil.fleet import fit_groups
    from vigil.scale.ray_fleet import fit_groups_with_ray

    torch.set_num_threads(threads)
    conditions = _conditions(threads)
    assets = simulated_assets(n_assets)

    # One table with an asset column, as `vigil fit --group-by` reads it: the assets' sensors share names.
    def named(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.set_axis([f"s{j}" for j in range(frame.shape[1])], axis=1)

    X = pd.concat([named(v[0]) for v in assets.values()]).reset_index(drop=True)
    tests = {k: named(v[1]) for k, v in assets.items()}
    groups = np.concatenate([[k] * len(v[0]) for k, v in assets.items()])
    template, config = _template(entry, "skab")
    ways = {
        "local fleet": lambda: fit_groups(X, groups, template),
        "ray, 1 task": lambda: fit_groups_with_ray(X, groups, template, workers=1),
        f"ray, {workers} tasks": lambda: fit_groups_with_ray(X, groups, template, workers=workers),
    }
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    loads: list[list[float] | None] = []
    failed: dict[str, str] = {}
    versions: dict[str, dict[str, np.ndarray]] = {}  # each way's test scores per asset
    start = time.perf_counter()
    ray.init(num_cpus=workers + 2, include_dashboard=False, log_to_driver=False)
    ray_start_seconds = time.perf_counter() - start
    try:
        order = list(ways)
        for r in range(rounds):
            for way in order[r % len(order) :] + order[: r % len(order)]:
                loads.append(_load_average())
                start = time.perf_counter()
                fleet = ways[way]()
                seconds[way].append(round(time.perf_counter() - start, 3))
                versions[way] = {k: p.score_samples(tests[k]) for k, p in fleet.fitted.items()}
                failed = fleet.reasons
                print(f"{way}: {seconds[way][-1]:.1f} s", flush=True)
    finally:
        ray.shutdown()
    median = {way: float(np.median(v)) for way, v in seconds.items()}
    reference = versions["local fleet"]
    return {
        "benchmark": "per-asset fleet on Ray",
        "assets": n_assets,
        "rows_per_asset": {"train": len(next(iter(assets.values()))[0])},
        "entry": entry,
        "vigil_config": config,
        "workers": workers,
        "rounds": rounds,
        "ray_start_seconds": round(ray_start_seconds, 3),
        "seconds": seconds,
        "median_seconds": median,
        "speedup_vs_local_fleet": {way: round(median["local fleet"] / m, 2) for way, m in median.items()},
        f"speedup_{workers}_tasks_vs_1": round(median["ray, 1 task"] / median[f"ray, {workers} tasks"], 2),
        "fitted": len(reference),
        "failed": failed,
        # Members of a fleet train as they would alone to float rounding (the stack's size changes the
        # summation order), so the models are compared by their scores, not by content hash.
        "largest_relative_test_score_difference_vs_local_fleet": max(
            float(np.max(np.abs(v[k] - reference[k]) / np.maximum(np.abs(reference[k]), 1e-12)))
            for v in versions.values()
            for k in reference
        ),
        "conditions": {**conditions, "load_average_before_each_run": loads, "load_average_at_end": _load_average()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("skab", help="the SKAB protocol: fleet, one at a time, PyOD AutoEncoder")
    p.add_argument("--entries", nargs="+", default=["tcn-sequence-drift", "tcn-forecaster-drift"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--data-dir", help="folder holding skab/ (default: $VIGIL_DATA_DIR)")
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("smd", help="the 19 SMD machines: fleet against one at a time")
    p.add_argument("--entry", default="tcn-sequence-drift")
    p.add_argument("--data-dir", help="folder holding smd/ (default: $VIGIL_DATA_DIR)")
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("simulated", help="a simulated fleet: train time, memory, batched scoring")
    p.add_argument("--entry", default="tcn-sequence-drift")
    p.add_argument("--assets", type=int, default=1000)
    p.add_argument("--sample", type=int, default=30, help="assets also fitted one at a time")
    p.add_argument("--max-members", type=int, default=250, help="most members in one batched computation")
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("ray", help="a simulated fleet on Ray tasks against one local fleet")
    p.add_argument("--entry", default="tcn-sequence-drift")
    p.add_argument("--assets", type=int, default=120)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.what == "skab":
        result = run_skab(args.entries, args.rounds, args.threads, args.data_dir)
        name = "skab-fleet-vs-one-at-a-time-vs-pyod-autoencoder.json"
        print(json.dumps(result["speedup"], indent=1))
    elif args.what == "smd":
        result = run_smd(args.entry, args.threads, args.data_dir)
        name = f"smd-fleet-{args.entry}.json"
        print(f"SMD fit: {result['seconds']}, {result['speedup_fit']}x; F1 {result['pooled']}")
    elif args.what == "ray":
        result = run_ray(args.entry, args.assets, args.workers, args.rounds, args.threads)
        name = f"ray-fleet-{args.assets}-assets-{args.entry}.json"
        keys = ("median_seconds", "largest_relative_test_score_difference_vs_local_fleet")
        print(json.dumps({k: result[k] for k in keys}, indent=1))
    else:
        result = run_simulated(args.entry, args.assets, args.sample, args.max_members, args.threads)
        name = f"simulated-fleet-{args.assets}-assets-{args.entry}.json"
        print(json.dumps({k: result[k] for k in ("fleet_fit_seconds", "speedup_fit", "scoring")}, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
