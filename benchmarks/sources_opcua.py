"""An OPC UA server with 100 assets x 10 sensors (1,000 nodes) at 1 Hz into Vigil: updates/s, CPU, lag.

The data is Vigil's plant simulator (``vigil.data.simulator``, seed 7, 1 hour): each of its three pumps has 9
sensors, and the header's fluid temperature (the liquid every pump moves) makes the tenth. The server runs in
a subprocess (asyncua): one variable per asset and sensor, all written once a second; asset ``i`` replays the
simulated test period (after training, incidents included) of pump ``i mod 3``, starting ``37 * i`` rows in so
that assets differ. This process runs what ``vigil serve`` runs for a plant file: the OPC UA source (one
data-change subscription, 1 s sampling interval), the runtime with a PCA pipeline fitted on the three pumps'
incident-free training period only, and an SQLite alert store.

Measured on the Vigil side (the server's CPU is reported apart):

- updates/s: records scored per second (one per asset per tick, 8 node values each) and node values/s;
- CPU: this process's user + system seconds per wall second (1.0 = one core);
- lag: from the record's tick (the sampling instant it stands for) to its stored decision, p50/p99/max,
  overall and per minute, so that growth shows; the sample-and-hold of data-change subscriptions adds up
  to one sampling interval between a value's change on the server and the tick that carries it;
- what must stay at zero: dead letters, gaps, late (skipped) ticks.

Example (what docs/sources.md quotes)::

    nice -n 10 python benchmarks/sources_opcua.py --seconds 600 \\
        --json benchmarks/results/sources/opcua-100-assets.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.data.simulator import simulate_plant

N_ASSETS = 100
PUMPS = ("pump1", "pump2", "pump3")
PUMP_SENSORS = (
    "speed_rpm", "flow_m3h", "suction_pressure_bar", "outlet_pressure_bar", "current_A",
    "power_kW", "vibration_mms", "bearing_temp_C", "motor_temp_C",
)  # fmt: skip
SENSORS = (*PUMP_SENSORS, "fluid_temp_C")


def pump_frames() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per pump: (training rows, test rows), 10 columns in SENSORS order."""
    rec = simulate_plant(hours=1.0, seed=7)
    train, test = [], []
    for pump in PUMPS:
        columns = [f"{pump}.{s}" for s in PUMP_SENSORS] + ["header.fluid_temp_C"]
        values = rec.frame[columns].to_numpy(dtype=float)
        train.append(values[: rec.train_rows])
        test.append(values[rec.train_rows :])
    return train, test


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_id(asset: int, sensor: str) -> str:
    return f"ns=2;s=pump-{asset}.{sensor}"


def run_server(args: argparse.Namespace) -> int:
    """The server: every second, each asset's nodes take the next row of its pump's test period."""
    import logging

    from asyncua import Server, ua

    logging.getLogger("asyncua").setLevel(logging.ERROR)
    _, tests = pump_frames()

    async def serve() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/vigil/")
        idx = await server.register_namespace("urn:vigil:bench")
        variables = []
        for i in range(args.assets):
            obj = await server.nodes.objects.add_object(idx, f"pump-{i}")
            variables.append([await obj.add_variable(ua.NodeId(f"pump-{i}.{s}", idx), s, 0.0) for s in SENSORS])
        async with server:
            print("ready", flush=True)
            start = time.monotonic()
            step = 0
            while time.monotonic() - start < args.seconds:
                for i, nodes in enumerate(variables):
                    rows = tests[i % len(tests)]
                    row = rows[(37 * i + step) % len(rows)]
                    for node, value in zip(nodes, row, strict=True):
                        await node.write_value(ua.DataValue(ua.Variant(float(value), ua.VariantType.Double)))
                step += 1
                await asyncio.sleep(max(0.0, start + step - time.monotonic()))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"cpu_seconds": usage.ru_utime + usage.ru_stime, "steps": step}), flush=True)

    asyncio.run(serve())
    return 0


def run_vigil(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    from vigil.alerts import SqlAlertStore
    from vigil.detectors.pca import PCADetector
    from vigil.pipeline import Pipeline
    from vigil.streaming.model_registry import ModelRegistry
    from vigil.streaming.runtime import Decision, Runtime
    from vigil.streaming.sources.opcua import OpcUaAsset, OpcUaOptions, OpcUaSource

    trains, _ = pump_frames()
    train = pd.DataFrame(np.vstack(trains), columns=list(SENSORS))
    lags: list[tuple[float, float]] = []  # (seconds since start, lag)
    lock = threading.Lock()
    t0 = time.time()

    class Measured:
        """The runtime, with each record's tick-to-stored-decision lag noted on the way back."""

        def __init__(self, runtime: Runtime) -> None:
            self.runtime = runtime

        def enqueue(self, raw: bytes, source: str, *, device_hint: Any, on_done: Any, timeout: Any) -> None:
            def done(outcomes: list[Any]) -> None:
                now = time.time()
                with lock:
                    for outcome in outcomes:
                        if isinstance(outcome, Decision):
                            lags.append((now - t0, now - outcome.time.timestamp()))
                on_done(outcomes)

            self.runtime.enqueue(raw, source, device_hint=device_hint, on_done=done, timeout=timeout)

    port = _free_port()
    server_args = [sys.executable, __file__, "--server", "--port", str(port), "--seconds", str(args.seconds + 15)]
    server_args += ["--assets", str(args.assets)]
    server = subprocess.Popen(server_args, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as tmp:
            registry = ModelRegistry(Path(tmp) / "registry")
            registry.add("pump", Pipeline(PCADetector(n_components=3)).fit(train), activate=True)
            with SqlAlertStore(Path(tmp) / "alerts.db") as store, Runtime(store, registry) as runtime:
                assets = [OpcUaAsset(f"pump-{i}", {s: node_id(i, s) for s in SENSORS}) for i in range(args.assets)]
                options = OpcUaOptions(f"opc.tcp://127.0.0.1:{port}/vigil/", assets, sampling_interval=1.0)
                source = OpcUaSource(Measured(runtime), options).start()
                if not source.wait_connected(30):
                    msg = "the OPC UA source did not connect"
                    raise SystemExit(msg)
                cpu0, wall0 = time.process_time(), time.monotonic()
                loads = [os.getloadavg()]
                while time.monotonic() - wall0 < args.seconds:  # the host's load, once a minute
                    time.sleep(min(60.0, args.seconds - (time.monotonic() - wall0)))
                    loads.append(os.getloadavg())
                cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
                status = source.status()
                source.stop()
                runtime.drain()
                dead = runtime.metrics.snapshot()["dead_letters"]
                latency = runtime.metrics.snapshot()["latency"]
        server_report = json.loads(server.communicate(timeout=60)[0].strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
    with lock:
        measured = [(t, lag) for t, lag in lags if t >= 5.0]  # the first seconds hold the subscription's start
    values = np.array([lag for _, lag in measured])
    minutes: dict[int, list[float]] = {}
    for t, lag in measured:
        minutes.setdefault(int(t // 60), []).append(lag)
    records = len(measured)
    seconds = max(t for t, _ in measured) - min(t for t, _ in measured)
    # Growth compares whole minutes only: the first and the last that lie entirely inside the run.
    begin, end = min(t for t, _ in measured), max(t for t, _ in measured)
    whole = [m for m in sorted(minutes) if begin <= m * 60 and (m + 1) * 60 <= end]
    first, last = (minutes[whole[0]], minutes[whole[-1]]) if whole else ([], [])
    return {
        "benchmark": "OPC UA source: one asyncua server, data-change subscriptions at 1 s sampling",
        "command": " ".join(["python", "benchmarks/sources_opcua.py", *sys.argv[1:]]),
        "assets": args.assets,
        "sensors_per_asset": len(SENSORS),
        "nodes": args.assets * len(SENSORS),
        "data": "plant simulator (seed 7, 1 h): asset i replays pump (i mod 3)'s test period from row 37*i,"
        " 9 pump sensors + the header's fluid temperature",
        "model": "pca (3 components) fitted on the three pumps' incident-free training period",
        "seconds": args.seconds,
        "records_scored": records,
        "records_per_s": records / seconds if seconds else None,
        "node_values_per_s": records * len(SENSORS) / seconds if seconds else None,
        "vigil_cpu_cores": cpu / wall,
        "vigil_cpu_ms_per_record": 1000 * cpu / max(1, status["scored"]),
        "server_cpu_cores": server_report["cpu_seconds"] / (args.seconds + 15),
        "lag_s": {
            "p50": float(np.quantile(values, 0.5)),
            "p99": float(np.quantile(values, 0.99)),
            "max": float(values.max()),
        },
        "lag_p99_by_minute_s": {str(m): float(np.quantile(v, 0.99)) for m, v in sorted(minutes.items())},
        "lag_growth_first_vs_last_whole_minute_s": {
            "first_minute": whole[0] if whole else None,
            "last_minute": whole[-1] if whole else None,
            "p50": [float(np.quantile(first, 0.5)), float(np.quantile(last, 0.5))] if whole else None,
            "p99": [float(np.quantile(first, 0.99)), float(np.quantile(last, 0.99))] if whole else None,
        },
        "load_average_1_5_15_each_minute": [[round(x, 2) for x in load] for load in loads],
        "runtime_latency_p99_s_bucket": latency.quantile(0.99),
        "dead_letters": dead,
        "gaps": sum(a["gaps_total"] for a in status["assets"].values()),
        "late_ticks": status["late_ticks"],
        "connections": status["connections"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_note": "shared 2-core host"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--assets", type=int, default=N_ASSETS)
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        return run_server(args)
    report = run_vigil(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
