"""End-to-end throughput, latency and memory of ``vigil serve`` over MQTT, on loopback only.

The script fits a PCA pipeline on 8 correlated sensors, starts ``vigil serve`` in a subprocess (SQLite
alert store, MQTT 5, QoS 1, manual acknowledgement after commit), and publishes from this process as
100 devices, with 0.5 % of the readings anomalous so that alerts are opened, grown and stored. Three runs:

- ``throughput``: publish as fast as possible; messages scored and stored per second, from the first
  publication to the last stored decision (read from ``/metrics``);
- ``latency``: publish at 1,000 messages/s; the p50/p99 of the service's receipt-to-stored-decision
  histogram (``vigil_ingest_latency_seconds``, read as bucket bounds);
- ``soak``: publish at 1,000 messages/s for ``--soak`` seconds; the service's resident memory sampled
  every second, comparing the last tenth with the tenth after warm-up.

Each run also reports the service's CPU seconds per message, which other load on a shared machine
does not inflate the way it slows the wall-clock rate.

The script starts its own Mosquitto on a free loopback port, configured as a deployment should be: with
``max_queued_messages`` high enough for the service's persistent session to absorb a burst (Mosquitto's
default of 1,000 drops QoS 1 messages beyond it while the subscriber is busy). ``--broker URL`` uses a
running loopback broker instead. Every run is bounded in time. Example::

    python benchmarks/service_throughput.py --messages 100000 --soak 600 --json results.json
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
from paho.mqtt.enums import CallbackAPIVersion

from vigil.detectors.pca import PCADetector
from vigil.pipeline import Pipeline

SENSORS = [f"s{j}" for j in range(8)]
N_DEVICES = 100


def fit_model(directory: Path) -> None:
    rng = np.random.default_rng(0)
    load = rng.normal(size=(5000, 2))
    mixing = rng.normal(size=(2, 8))
    frame = pd.DataFrame(load @ mixing + 0.05 * rng.normal(size=(5000, 8)), columns=SENSORS)
    Pipeline(PCADetector(n_components=2)).fit(frame).save(directory)
    np.save(directory / "mixing.npy", mixing)


def make_payloads(n: int, mixing: np.ndarray, start: float) -> list[tuple[str, bytes]]:
    """``n`` messages for 100 devices, 1 s apart per device; 0.5 % anomalous."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(n, 2)) @ mixing + 0.05 * rng.normal(size=(n, 8))
    anomalous = rng.random(n) < 0.005
    values[anomalous, 3] += 5.0
    out = []
    for i in range(n):
        device = f"dev-{i % N_DEVICES:03d}"
        body = {
            "time": start + i // N_DEVICES,
            "readings": dict(zip(SENSORS, values[i].round(5).tolist(), strict=True)),
        }
        out.append((device, json.dumps(body).encode()))
    return out


def scrape(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    scored = sum(float(v) for v in re.findall(r"^vigil_records_scored_total\{[^}]*\} (\S+)$", text, re.M))
    dead = sum(float(v) for v in re.findall(r"^vigil_dead_letters_total\{[^}]*\} (\S+)$", text, re.M))
    buckets = [
        (float("inf") if le == "+Inf" else float(le), float(v))
        for le, v in re.findall(r'^vigil_ingest_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M)
    ]
    alerts = sum(float(v) for v in re.findall(r'^vigil_alert_events_total\{event="opened"\} (\S+)$', text, re.M))
    return {"scored": scored, "dead": dead, "buckets": buckets, "alerts_opened": alerts}


def quantile(buckets: list[tuple[float, float]], before: list[tuple[float, float]], q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` of the observations between two scrapes."""
    counts = [(le, n - (before[i][1] if before else 0.0)) for i, (le, n) in enumerate(buckets)]
    total = counts[-1][1]
    for le, n in counts:
        if n >= q * total:
            return le
    return float("inf")


def start_broker(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A private Mosquitto on a free loopback port with room for bursts; returns (process, URL)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n{user}max_queued_messages 1000000\nmax_inflight_messages 0\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"mqtt://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)  # waiting for the broker to listen
    proc.kill()
    msg = "mosquitto did not start"
    raise SystemExit(msg)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, broker: str, workdir: Path) -> None:
        self.broker = broker
        self.workdir = workdir
        self.prefix = f"vigilbench-{uuid.uuid4().hex[:8]}"
        model = workdir / "model"
        fit_model(model)
        self.mixing = np.load(model / "mixing.npy")
        command = [
            sys.executable,
            "-m",
            "vigil.service",
            "serve",
            "--model",
            f"plant={model}",
            "--registry",
            str(workdir / "registry"),
            "--store",
            f"sqlite:///{workdir / 'alerts.db'}",
            "--http",
            "127.0.0.1:0",
            "--mqtt",
            broker,
            "--topic",
            f"{self.prefix}/+/telemetry",
            "--client-id",
            f"{self.prefix}-svc",
            "--session-expiry",
            "60",
            "--alert-topic",
            "",
            "--dead-letter-topic",
            "",
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        if not match:
            self.proc.kill()
            msg = f"vigil serve did not start: {line}"
            raise SystemExit(msg)
        self.url = match.group(0)
        host, port = broker.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.prefix}-pub", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(2000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.clock = 1_700_000_000.0
        time.sleep(1.0)  # let the service subscribe before the first message

    def publish(self, n: int, rate: float, *, on_second: Any = None, deadline: float = 900.0) -> dict[str, Any]:
        payloads = make_payloads(n, self.mixing, self.clock)
        self.clock += n // N_DEVICES + 1
        before = scrape(self.url)
        cpu_before = cpu_seconds(self.proc.pid)
        began = time.perf_counter()
        last_tick = began
        for i, (device, body) in enumerate(payloads):
            if rate > 0:
                pause = began + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)  # pacing of the load generator
            self.client.publish(f"{self.prefix}/{device}/telemetry", body, qos=1)
            if on_second is not None and time.perf_counter() - last_tick >= 1.0:
                last_tick = time.perf_counter()
                on_second()
        published = time.perf_counter()
        target = before["scored"] + before["dead"] + n
        while True:
            now = scrape(self.url)
            if now["scored"] + now["dead"] >= target or time.perf_counter() - began > deadline:
                break
            if on_second is not None and time.perf_counter() - last_tick >= 1.0:
                last_tick = time.perf_counter()
                on_second()
            time.sleep(0.25)  # polling the service's metrics (each scrape costs the service a little)
        done = time.perf_counter()
        cpu = cpu_seconds(self.proc.pid) - cpu_before
        return {
            # CPU time is robust to other load on the machine, unlike the wall-clock rate: one core
            # of this kind sustains about messages / cpu_seconds messages per second.
            "service_cpu_seconds": cpu,
            "service_cpu_us_per_message": 1e6 * cpu / n,
            "messages": n,
            "scored": now["scored"] - before["scored"],
            "dead_letters": now["dead"] - before["dead"],
            "alerts_opened": now["alerts_opened"] - before["alerts_opened"],
            "publish_seconds": published - began,
            "seconds": done - began,
            "rate": n / (done - began),
            "p50_s": quantile(now["buckets"], before["buckets"], 0.50),
            "p99_s": quantile(now["buckets"], before["buckets"], 0.99),
        }

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stderr.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", help="a running loopback MQTT broker (default: start a private one)")
    parser.add_argument("--messages", type=int, default=60_000, help="messages in the throughput run")
    parser.add_argument("--latency-messages", type=int, default=30_000, help="messages at 1,000/s")
    parser.add_argument("--soak", type=float, default=60.0, help="seconds of the memory soak at 1,000/s (0: skip)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.broker and not re.match(r"^mqtt://(127\.\d+\.\d+\.\d+|localhost):\d+$", args.broker):
        parser.error("the benchmark only talks to a broker on the loopback interface")
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "devices": N_DEVICES,
        "sensors": len(SENSORS),
    }
    with tempfile.TemporaryDirectory() as tmp:
        broker_proc = None
        broker = args.broker
        if broker is None:
            broker_proc, broker = start_broker(Path(tmp))
        bench = Bench(broker, Path(tmp))
        try:
            bench.publish(5000, 0)  # warm-up
            results["throughput"] = bench.publish(args.messages, 0)
            print(f"throughput: {json.dumps(results['throughput'])}", flush=True)
            results["latency_1000_per_s"] = bench.publish(args.latency_messages, 1000)
            print(f"latency at 1000/s: {json.dumps(results['latency_1000_per_s'])}", flush=True)
            if args.soak > 0:
                samples: list[tuple[float, int]] = []
                start = time.perf_counter()

                def sample() -> None:
                    samples.append((time.perf_counter() - start, rss_kib(bench.proc.pid)))

                run = bench.publish(int(args.soak * 1000), 1000, on_second=sample)
                tenth = max(1, len(samples) // 10)
                early = float(np.mean([kib for _, kib in samples[tenth : 2 * tenth]]))
                late = float(np.mean([kib for _, kib in samples[-tenth:]]))
                results["soak"] = {
                    **run,
                    "rss_early_mib": early / 1024,
                    "rss_late_mib": late / 1024,
                    "growth": late / early - 1.0,
                    "samples": len(samples),
                }
                print(f"soak: {json.dumps(results['soak'])}", flush=True)
        finally:
            bench.close()
            if broker_proc is not None:
                broker_proc.terminate()
                broker_proc.wait(10)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
