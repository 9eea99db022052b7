"""Scaling of ``score_archive_with_ray``: the same archive scored with 1 and with 2 Ray actors.

The script writes a Hive-partitioned Parquet archive of synthetic plant telemetry (``--rows`` readings of
8 correlated sensors, 20 devices, partitioned by plant and day; 0.2 % of the readings faulty), fits a
pipeline on normal readings, then scores the archive ``--repeats`` times with each actor count on a local
Ray instance, writing the anomalies as Parquet. Times are end to end, as a user sees them: planning,
actor start-up (each actor loads the pipeline), reading, scoring and writing; ``startup_seconds`` in each
run is the part until the last actor had loaded the pipeline. Ray itself is started once,
before the runs, with more logical CPUs than actors (Ray Data's read tasks need slots of their own).

The machine may be shared: the script records the 1-minute load average before and after each run and
the number of cores, so the conditions are part of the result. Example::

    python benchmarks/scale_ray_scoring.py --rows 2000000 --json benchmarks/results/scale/ray-scoring.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.pipeline import Pipeline
from vigil.registry import make_detector

SENSORS = [f"s{j}" for j in range(8)]
DEVICES = 20


def write_archive(root: Path, rows: int, *, seed: int = 0) -> dict[str, Any]:
    """``rows`` readings split over 2 plants × ``days`` days, one Parquet file per partition."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(2, len(SENSORS)))
    partitions = [(plant, day) for plant in ("north", "south") for day in range(8)]
    per_file = rows // len(partitions)
    for index, (plant, day) in enumerate(partitions):
        n = per_file if index < len(partitions) - 1 else rows - per_file * (len(partitions) - 1)
        values = rng.normal(size=(n, 2)) @ mixing + 0.05 * rng.normal(size=(n, len(SENSORS)))
        faulty = rng.random(n) < 0.002
        values[faulty, 3] += 4.0
        start = pd.Timestamp("2024-05-01", tz="UTC") + pd.Timedelta(days=day)
        table = pa.table(
            {
                "time": pa.array(start + pd.to_timedelta(np.arange(n) // DEVICES, unit="s")),
                "device": pa.array([f"{plant}-{i % DEVICES:02d}" for i in range(n)]),
                **{name: pa.array(values[:, j]) for j, name in enumerate(SENSORS)},
            }
        )
        target = root / f"plant={plant}" / f"day=2024-05-{day + 1:02d}"
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target / "part-0.parquet", row_group_size=64_000)
    np.save(root.parent / "mixing.npy", mixing)
    return {"rows": rows, "files": len(partitions), "bytes": sum(p.stat().st_size for p in root.rglob("*.parquet"))}


def fit_model(directory: Path, detector: str) -> str:
    mixing = np.load(directory.parent / "mixing.npy")
    rng = np.random.default_rng(1)
    train = pd.DataFrame(rng.normal(size=(20_000, 2)) @ mixing + 0.05 * rng.normal(size=(20_000, 8)), columns=SENSORS)
    params = {"random_state": 0} if detector == "iforest" else {}
    pipe = Pipeline(make_detector(detector, **params)).fit(train)
    pipe.save(directory)
    return pipe.version_


def load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--detector", default="iforest", help="a registered detector that scores rows on their own")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=65_536)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    import ray

    from vigil.scale.ray_scoring import score_archive_with_ray

    work = Path(tempfile.mkdtemp(prefix="vigil-scale-bench-"))
    try:
        started = time.perf_counter()
        archive = write_archive(work / "archive", args.rows)
        version = fit_model(work / "model", args.detector)
        print(
            f"archive: {archive['rows']} rows in {archive['files']} files, {archive['bytes'] / 1e6:.0f} MB "
            f"(written in {time.perf_counter() - started:.1f} s); model {version}",
            file=sys.stderr,
        )
        ray.init(num_cpus=max(args.workers) + 2, include_dashboard=False, log_to_driver=False)
        runs = []
        try:
            for repeat in range(args.repeats):
                for workers in args.workers:
                    out = work / f"out-{workers}-{repeat}"
                    before = load()
                    result = score_archive_with_ray(
                        work / "model",
                        work / "archive",
                        out,
                        workers=workers,
                        batch_size=args.batch_size,
                        progress=False,
                    )
                    result.update(repeat=repeat, load_before=before, load_after=load())
                    runs.append(result)
                    shutil.rmtree(out)
                    print(
                        f"workers={workers} repeat={repeat}: {result['seconds']:.1f} s, "
                        f"{result['rows_per_second']:,.0f} rows/s, actors ready after "
                        f"{result['startup_seconds']:.1f} s, "
                        f"{result['anomalies']} anomalies, "
                        f"load {before:.1f} -> {result['load_after']:.1f}",
                        file=sys.stderr,
                    )
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = {}
    for workers in args.workers:
        times = [r["seconds"] for r in runs if r["workers"] == workers]
        summary[str(workers)] = {
            "median_seconds": statistics.median(times),
            "min_seconds": min(times),
            "seconds": times,
        }
    base = summary[str(args.workers[0])]["median_seconds"]
    for workers in args.workers:
        entry = summary[str(workers)]
        entry["speedup_vs_first"] = base / entry["median_seconds"]
    print(json.dumps(summary, indent=2))
    if args.json:
        document = {
            "command": "python benchmarks/scale_ray_scoring.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "archive": archive,
            "detector": args.detector,
            "model_version": version,
            "summary": summary,
            "runs": runs,
            "environment": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "ray": ray.__version__,
                "machine": platform.machine(),
            },
        }
        for run in document["runs"]:
            run.pop("output", None)
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
