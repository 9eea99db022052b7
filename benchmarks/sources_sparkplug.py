"""A Sparkplug B edge node with 100 devices at 1 Hz into Vigil: updates/s, CPU, lag and its growth.

The edge node runs in a subprocess (``vigil.streaming.sources.sparkplug_edge.EdgeNode``): one NBIRTH, one
DBIRTH per device with the eight SKAB sensor metrics (names, aliases, Double), then every second one DDATA
per device, by alias, replaying real SKAB rows (device ``i`` plays labelled experiment ``i mod 34`` from
its start). This process runs what a service runs: the Sparkplug B source, the runtime with a PCA
pipeline fitted on SKAB's ``anomaly-free.csv`` (training data only), and an SQLite alert store.

Measured over the run, on the Vigil side only (the edge node's CPU is reported apart):

- updates/s: records scored per second (each carries 8 metric updates), and metric updates/s;
- CPU: this process's user + system seconds per wall second (1.0 = one core; the wall time includes the
  edge node's start-up, so this is a slight underestimate of the load while streaming), and per record;
- lag: from the DDATA's own time stamp (set by the edge node as it publishes) to the stored decision, per
  record (p50, p99, max), overall and per minute, so that growth shows (the target: none over the run), and
  the runtime's part of it (receipt to stored decision, from its latency histogram);
- what must stay at zero: dead letters, sequence gaps, rebirth requests, records missing.

Uses the Mosquitto at ``--broker`` (default 127.0.0.1:1883) with a group of its own, and SKAB under
``VIGIL_DATA_DIR``. Example (what docs/sources.md quotes)::

    nice -n 10 python benchmarks/sources_sparkplug.py --seconds 180 \\
        --json benchmarks/results/sources/sparkplug-100-devices.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from vigil.data.skab import SKAB_SENSORS, load_skab
from vigil.data.tables import read_table

N_DEVICES = 100


def skab_rows(data_dir: str | None) -> list[np.ndarray]:
    """The test rows of the 34 labelled SKAB experiments, in file order."""
    return [np.asarray(part.X_test, dtype=float) for part in load_skab(data_dir).parts]


def run_edge(args: argparse.Namespace) -> int:
    """The edge node: births, then one DDATA per device per second for ``--seconds``, then NDEATH."""
    from vigil.streaming.sources.mqtt import MqttOptions
    from vigil.streaming.sources.sparkplug_edge import EdgeNode

    experiments = skab_rows(args.data_dir)
    devices = {
        f"dev-{i:03d}": {name: ("Double", float(experiments[i % 34][0][j])) for j, name in enumerate(SKAB_SENSORS)}
        for i in range(args.devices)
    }
    edge = EdgeNode(MqttOptions(url=args.broker, client_id=f"{args.group}-edge"), args.group, "edge-1", devices)
    edge.connect()
    start = time.monotonic() + 1.0
    for tick in range(1, args.seconds + 1):
        time.sleep(max(0.0, start + tick - time.monotonic()))  # a 1 Hz schedule, not "1 s after the last"
        for i in range(args.devices):
            rows = experiments[i % 34]
            row = rows[tick % len(rows)]
            edge.data(f"dev-{i:03d}", {name: float(row[j]) for j, name in enumerate(SKAB_SENSORS)})
    time.sleep(1.0)
    edge.close()
    return 0


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    array = np.asarray(values)
    return {"p50": float(np.quantile(array, 0.5)), "p99": float(np.quantile(array, 0.99)), "max": float(array.max())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from vigil.alerts import SqlAlertStore
    from vigil.detectors.pca import PCADetector
    from vigil.pipeline import Pipeline
    from vigil.streaming.model_registry import ModelRegistry
    from vigil.streaming.runtime import Decision, Runtime
    from vigil.streaming.sources.mqtt import MqttOptions
    from vigil.streaming.sources.sparkplug import SparkplugIngest, SparkplugOptions

    data_dir = args.data_dir or os.environ.get("VIGIL_DATA_DIR")
    train = read_table(
        Path(data_dir) / "skab" / "anomaly-free" / "anomaly-free.csv", sep=";", time="datetime", columns=SKAB_SENSORS
    )
    lags: list[tuple[float, float]] = []  # (seconds since start, lag)
    lock = threading.Lock()
    t0 = time.time()

    def done(outcomes: list[Any]) -> None:
        now = time.time()
        with lock:
            for outcome in outcomes:
                if isinstance(outcome, Decision):
                    lags.append((now - t0, now - outcome.time.timestamp()))

    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Path(tmp) / "registry")
        registry.add("pump", Pipeline(PCADetector(n_components=3)).fit(train.X), activate=True)
        with SqlAlertStore(Path(tmp) / "alerts.db") as store, Runtime(store, registry) as runtime:
            options = SparkplugOptions(
                group=args.group, broker=MqttOptions(url=args.broker, client_id=f"{args.group}-host")
            )
            source = SparkplugIngest(runtime, options, on_done=done).start()
            if not source.wait_connected(10):
                msg = f"no subscription at {args.broker}"
                raise SystemExit(msg)
            load_before = os.getloadavg()
            cpu0 = time.process_time()
            wall0 = time.monotonic()
            edge_args = [sys.executable, __file__, "--edge", "--group", args.group, "--broker", args.broker]
            edge_args += ["--seconds", str(args.seconds), "--devices", str(args.devices)]
            edge_args += ["--data-dir", data_dir]
            edge = subprocess.run(edge_args, check=True, timeout=args.seconds + 120)
            expected = args.devices * (args.seconds + 1)  # the births' records and one per device per second
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(lags) < expected:
                time.sleep(0.1)  # the last records are being committed
            runtime.drain()
            wall = time.monotonic() - wall0
            cpu = time.process_time() - cpu0
            load_after = os.getloadavg()
            status = source.status()["sparkplug"]
            source.stop()
            dead = store.count_dead_letters()
            metrics = runtime.metrics.snapshot()
    edge_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    records = len(lags)
    # Rates over the stream itself, from the first stored decision to the last (not the edge's start-up).
    span = max(t for t, _ in lags) - min(t for t, _ in lags) if records > 1 else wall
    per_minute = []
    for minute in range(int(max((t for t, _ in lags), default=0) // 60) + 1):
        window = [lag for t, lag in lags if minute * 60 <= t < (minute + 1) * 60]
        if window:
            per_minute.append({"minute": minute, "records": len(window), **quantiles(window)})
    counts = status["counts"]
    return {
        "benchmark": "Sparkplug B edge node -> Vigil (source + runtime + SQLite store), one process",
        "command": " ".join(["python", "benchmarks/sources_sparkplug.py", *sys.argv[1:]]),
        "edge_node": {
            "devices": args.devices,
            "metrics_per_device": len(SKAB_SENSORS),
            "rate_hz_per_device": 1,
            "seconds": args.seconds,
            "data": "SKAB labelled experiments (test rows), device i plays experiment i mod 34",
            "cpu_seconds": edge_cpu.ru_utime + edge_cpu.ru_stime,
            "exit_code": edge.returncode,
        },
        "model": "pca (3 components) fitted on SKAB anomaly-free.csv",
        "records_expected": expected,
        "records_scored": records,
        "wall_seconds": wall,
        "stream_seconds": span,
        "records_per_second": records / span,
        "metric_updates_per_second": records * len(SKAB_SENSORS) / span,
        "cpu_cores_used": cpu / wall,
        "cpu_ms_per_record": 1000 * cpu / max(records, 1),
        "lag_seconds": quantiles([lag for _, lag in lags]),
        "lag_seconds_per_minute": per_minute,
        # The runtime's own part of the lag, receipt to stored decision (upper bounds of histogram buckets).
        "runtime_latency_seconds": {
            "p50": metrics["latency"].quantile(0.5),
            "p99": metrics["latency"].quantile(0.99),
        },
        "alerts_opened": metrics["alerts"].get("opened", 0),
        # Other work on the machine inflates the lag (waiting for a core), not this process's CPU seconds.
        "load_average_1min": {"before": load_before[0], "after": load_after[0]},
        "dead_letters": dead,
        "sequence_gaps": counts.get("sequence_gaps", 0),
        "rebirth_requests": counts.get("rebirth_requests", 0),
        "messages": {k: v for k, v in counts.items() if k.isupper()},
        "runtime_scored": metrics["scored"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--devices", type=int, default=N_DEVICES)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--group", default=f"vigil-bench-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--data-dir", default=None, help="the folder holding skab/ (default $VIGIL_DATA_DIR)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--edge", action="store_true", help=argparse.SUPPRESS)  # the edge node's subprocess
    args = parser.parse_args()
    if args.edge:
        return run_edge(args)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
