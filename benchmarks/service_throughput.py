"""End-to-end throughput, latency and memory of ``vigil serve`` over MQTT, on loopback only.

The script fits a PCA pipeline on 8 correlated sensors, starts ``vigil serve`` in a subprocess (SQLite
alert store, MQTT 5, QoS 1, manual acknowledgement after commit), and publishes from this process as
100 devices, with 0.5 % of the readings anomalous so that alerts are opened, grown and stored. The runs:

- ``throughput`` (``--runs`` of them): publish as fast as possible; messages scored and stored per second,
  from the first publication to the last stored decision (read from ``/metrics``);
- ``latency`` (``--runs`` of them): publish at ``--rate`` messages/s; the p50/p99 of the service's
  receipt-to-stored-decision histogram (``vigil_ingest_latency_seconds``, read as bucket bounds);
- ``soak``: publish at 1,000 messages/s for ``--soak`` seconds; the service's resident memory sampled
  every second, comparing the last tenth with the tenth after warm-up;
- ``profile`` (with ``--profile``): one more throughput run against a second service whose runtime worker
  and MQTT network thread run under cProfile, timed in thread CPU; where each message's time goes (cProfile
  inflates every Python call, so many small calls look dearer than they are);
- ``sampled`` (with ``--sample``): one more throughput run sampled by py-spy, which does not slow the calls
  it sees: the share of the service's samples in each part of a message's path.

Each run reports the service's CPU seconds per message, which other load on a shared machine does not
inflate the way it slows the wall-clock rate, the load average before and after it, the messages lost
(published but neither scored nor dead-lettered) and the service's resident memory at its start and end.

The script starts its own Mosquitto on a free loopback port, configured as a deployment should be: with
``max_queued_messages`` high enough for the service's persistent session to absorb a burst (Mosquitto's
default of 1,000 drops QoS 1 messages beyond it while the subscriber is busy). ``--broker URL`` uses a
running loopback broker instead. Every run is bounded in time. The results go to
``benchmarks/results/service/throughput.json`` unless ``--json`` names another file. Example::

    python benchmarks/service_throughput.py --messages 100000 --runs 3 --rate 5000 --soak 600 --profile
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import pstats
import re
import shlex
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
RESULTS = Path(__file__).parent / "results" / "service" / "throughput.json"

# Runs ``python -m vigil.service ARGS`` with the runtime worker and the MQTT network thread under cProfile,
# timed in thread CPU (so waiting on a queue or a socket costs nothing); each writes DIR/THREAD.prof as it ends.
PROFILED_SERVE = """
import cProfile, runpy, sys, threading, time
out = sys.argv.pop(1)
run = threading.Thread.run
def profiled(self):
    if self.name != "vigil-runtime" and not self.name.startswith("paho"):
        return run(self)
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    try:
        run(self)
    finally:
        profile.disable()
        profile.dump_stats(f"{out}/{'runtime' if self.name == 'vigil-runtime' else 'mqtt'}.prof")
threading.Thread.run = profiled
runpy.run_module("vigil.service", run_name="__main__", alter_sys=True)
"""

# Where a message's time goes, as (stage, functions): the functions of a stage are not called by those of
# another, so the stages add up; what they leave of a thread's time is its own bookkeeping.
STAGES = {
    "mqtt": [
        ("decode", [("streaming/messages.py", "decode_payload")]),
        ("queue", [("streaming/runtime.py", "_put")]),
    ],
    "runtime": [
        ("collect", [("streaming/runtime.py", "_collect")]),
        ("validate", [("streaming/messages.py", "parse_record"), ("streaming/runtime_intake.py", "_fast_vector")]),
        ("route", [("streaming/runtime_intake.py", "route")]),
        ("score", [("streaming/runtime_scoring.py", f) for f in ("_score_rows", "_contributions")]),
        ("alarm", [("alarms/stage.py", "run")]),
        ("track", [("alerts/tracker.py", "update")]),
        ("commit", [("alerts/sink.py", "deliver")]),
        ("acknowledge", [("streaming/sources/mqtt.py", "acknowledge")]),
        ("metrics", [("streaming/runtime_metrics.py", "record_batch")]),
        ("housekeeping", [("streaming/runtime.py", "_housekeeping")]),
    ],
}
# What the runtime's commit stage spends its time on; these are inside "commit", so they add up to part of it.
# ("~", "sqlite3") is SQLite's own C calls (statements and commits), inside "store".
COMMIT_DETAIL = [
    ("store", [("alerts/store.py", "upsert_many")]),
    ("sqlite", [("~", "sqlite3")]),
    ("incidents", [("alerts/asset_incidents.py", "observe")]),
    ("publish", [("alerts/sink.py", "_publish")]),
]


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


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU time in a ``/proc`` ``stat`` file (of a process or of one of its threads)."""
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _us(stats: pstats.Stats, functions: list[tuple[str, str]], messages: int) -> float:
    """µs per message spent in (and under) ``functions``, as (path inside vigil, name) pairs."""
    seconds = 0.0
    for (filename, _, name), (_, _, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.replace(os.sep, "/").split("/vigil/")[-1]
        if any(where == f and (name == n or (f == "~" and n in name)) for f, n in functions):
            seconds += ct
    return round(1e6 * seconds / messages, 2)


def breakdown(directory: Path, messages: int) -> dict[str, Any]:
    """µs of thread CPU per message, by stage, from the profiles that ``PROFILED_SERVE`` wrote."""
    out: dict[str, Any] = {}
    for thread, stages in STAGES.items():
        stats = pstats.Stats(str(directory / f"{thread}.prof"))
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = {stage: _us(stats, functions, messages) for stage, functions in stages}
        rows["other"] = round(1e6 * total / messages - sum(rows.values()), 2)
        out[thread] = {
            "us_per_message": round(1e6 * total / messages, 2),
            "stages_us_per_message": rows,
            "stages_percent": {stage: round(100 * 1e-6 * v * messages / total, 1) for stage, v in rows.items()},
        }
        if thread == "runtime":
            out[thread]["commit_us_per_message"] = {
                part: _us(stats, functions, messages) for part, functions in COMMIT_DETAIL
            }
    return out


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU time each thread of the process has used so far, by native thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = stat_cpu_seconds(task / "stat")
        except OSError:
            continue  # the thread ended between the listing and the read
    return out


def thread_names(pid: int, py_spy: str) -> dict[int, str]:
    """Python's thread names by native thread id (py-spy reads them; Python does not name native threads)."""
    dump = subprocess.run([py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60).stdout
    return {int(tid): name for tid, name in re.findall(r'^Thread (\d+) \([a-z]+\): "([^"]+)"', dump, re.M)}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, broker: str, workdir: Path, *, profile: Path | None = None) -> None:
        self.broker = broker
        self.workdir = workdir
        self.prefix = f"vigilbench-{uuid.uuid4().hex[:8]}"
        model = workdir / "model"
        if not model.exists():
            fit_model(model)
        self.mixing = np.load(model / "mixing.npy")
        launcher = ["-m", "vigil.service"] if profile is None else ["-c", PROFILED_SERVE, str(profile)]
        command = [
            sys.executable,
            *launcher,
            "serve",
            "--model",
            f"plant={model}",
            "--registry",
            str(workdir / f"registry-{self.prefix}"),
            "--store",
            f"sqlite:///{workdir / f'alerts-{self.prefix}.db'}",
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
        self.rss_start_mib = rss_kib(self.proc.pid) / 1024

    def publish(self, n: int, rate: float, *, on_second: Any = None, deadline: float = 900.0) -> dict[str, Any]:
        payloads = make_payloads(n, self.mixing, self.clock)
        self.clock += n // N_DEVICES + 1
        load_before = load_average()
        before = scrape(self.url)
        cpu_before = cpu_seconds(self.proc.pid)
        rss_before = rss_kib(self.proc.pid)
        began = time.perf_counter()
        last_tick = began
        waits = 0
        for i, (device, body) in enumerate(payloads):
            if rate > 0:
                pause = began + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)  # pacing of the load generator
            while self.client.publish(f"{self.prefix}/{device}/telemetry", body, qos=1).rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                # All 65,535 message ids are waiting for the broker's acknowledgement: paho refuses the
                # message rather than queue it, so the load generator waits instead of losing it.
                waits += 1
                time.sleep(0.001)
            if on_second is not None and time.perf_counter() - last_tick >= 1.0:
                last_tick = time.perf_counter()
                on_second()
        published = time.perf_counter()
        target = before["scored"] + before["dead"] + n
        progress, moved = 0.0, time.perf_counter()
        while True:
            now = scrape(self.url)
            if now["scored"] + now["dead"] > progress:
                progress, moved = now["scored"] + now["dead"], time.perf_counter()
            if progress >= target or time.perf_counter() - began > deadline or time.perf_counter() - moved > 30:
                break  # all decided, out of time, or nothing decided for 30 s: the rest counts as lost
            if on_second is not None and time.perf_counter() - last_tick >= 1.0:
                last_tick = time.perf_counter()
                on_second()
            time.sleep(0.25)  # polling the service's metrics (each scrape costs the service a little)
        done = time.perf_counter()
        cpu = cpu_seconds(self.proc.pid) - cpu_before
        scored, dead = now["scored"] - before["scored"], now["dead"] - before["dead"]
        return {
            "offered_rate": rate or None,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            # CPU time is robust to other load on the machine, unlike the wall-clock rate: one core
            # of this kind sustains about messages / cpu_seconds messages per second.
            "service_cpu_seconds": cpu,
            "service_cpu_us_per_message": 1e6 * cpu / n,
            "messages": n,
            "scored": scored,
            "dead_letters": dead,
            "lost": n - scored - dead,
            "alerts_opened": now["alerts_opened"] - before["alerts_opened"],
            "publish_seconds": published - began,
            "publisher_waits": waits,
            "seconds": done - began,
            "rate": n / (done - began),
            "p50_s": quantile(now["buckets"], before["buckets"], 0.50),
            "p99_s": quantile(now["buckets"], before["buckets"], 0.99),
            "rss_start_mib": rss_before / 1024,
            "rss_end_mib": rss_kib(self.proc.pid) / 1024,
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


def soak(bench: Bench, seconds: float) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    start = time.perf_counter()

    def sample() -> None:
        samples.append((time.perf_counter() - start, rss_kib(bench.proc.pid)))

    run = bench.publish(int(seconds * 1000), 1000, on_second=sample)
    tenth = max(1, len(samples) // 10)
    early = float(np.mean([kib for _, kib in samples[tenth : 2 * tenth]]))
    late = float(np.mean([kib for _, kib in samples[-tenth:]]))
    return {
        **run,
        "rss_early_mib": early / 1024,
        "rss_late_mib": late / 1024,
        "growth": late / early - 1.0,
        "samples": len(samples),
    }


def profile(broker: str, workdir: Path, messages: int) -> dict[str, Any]:
    """One throughput run against a service under cProfile: where each message's time goes."""
    directory = workdir / "profile"
    directory.mkdir()
    bench = Bench(broker, workdir, profile=directory)
    try:
        bench.publish(5000, 0)  # warm-up, as in the measured runs
        run = bench.publish(messages, 0)
    finally:
        bench.close()
    return {
        "note": "thread CPU under cProfile, which inflates every call; compare the stages, not the totals",
        "messages": messages,
        "lost": run["lost"],
        "service_cpu_us_per_message": run["service_cpu_us_per_message"],
        **breakdown(directory, messages + 5000),
    }


#: The parts of a message's path a sampling profile is summed over: a sample counts for a part when the part's
#: frame is on its stack. Parts nest (the MQTT callback runs inside paho's network thread).
SAMPLED_PARTS = {
    "paho network thread (all)": "Client._thread_main",
    "  its message callback (decode queueing)": "MqttIngest._on_message",
    "runtime worker (all)": "Runtime._process ",
    "  record check (parse, route, sensors)": "RecordChecker.check",
    "  score (one pipeline call)": "score_with_contributions",
    "  alarm stage": "AlarmStage.run",
    "  alert tracker": "AlertTracker.update",
    "  commit (store, publish, acknowledge)": "AlertSink.deliver",
    "HTTP (/metrics scrapes)": "render_metrics",
}


def sampled(broker: str, workdir: Path, messages: int, py_spy: str) -> dict[str, Any]:
    """One throughput run with py-spy sampling the service: the share of samples in each of ``SAMPLED_PARTS``.

    Unlike cProfile it does not inflate Python calls, so the shares are closer to where the CPU goes; a
    thread waiting for the GIL still counts as running where it waits, so each thread's CPU time per message
    is read beside them from ``/proc``.
    """
    bench = Bench(broker, workdir)
    raw = workdir / "samples.txt"
    try:
        bench.publish(5000, 0)  # warm-up, as in the measured runs
        spy = subprocess.Popen(
            [py_spy, "record", "-p", str(bench.proc.pid), "-r", "250", "-f", "raw", "-o", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches
        threads_before = thread_cpu_seconds(bench.proc.pid)
        run = bench.publish(messages, 0)
        threads_after = thread_cpu_seconds(bench.proc.pid)
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        names = thread_names(bench.proc.pid, py_spy)
    finally:
        bench.close()
    thread_used = {tid: seconds - threads_before.get(tid, 0.0) for tid, seconds in threads_after.items()}
    counts = dict.fromkeys(SAMPLED_PARTS, 0)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        for part, frame in SAMPLED_PARTS.items():
            counts[part] += int(n) if frame in stack else 0
    return {
        "note": "py-spy at 250 Hz; share of the service's samples whose stack holds the part's frame",
        "messages": messages,
        "lost": run["lost"],
        "service_cpu_us_per_message": run["service_cpu_us_per_message"],
        "load_average_before": run["load_average_before"],
        "samples": total,
        "percent": {part: round(100 * n / max(total, 1), 1) for part, n in counts.items()},
        "thread_cpu_us_per_message": {
            names.get(tid, str(tid)): round(used / messages * 1e6, 1)
            for tid, used in sorted(thread_used.items(), key=lambda item: -item[1])
            if used > 0
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", help="a running loopback MQTT broker (default: start a private one)")
    parser.add_argument("--messages", type=int, default=60_000, help="messages in each throughput run")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs, and latency runs")
    parser.add_argument("--rate", type=float, default=5000.0, help="offered messages/s of the latency runs")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="seconds of each latency run")
    parser.add_argument("--soak", type=float, default=60.0, help="seconds of the memory soak at 1,000/s (0: skip)")
    parser.add_argument("--profile", action="store_true", help="add one throughput run under cProfile")
    parser.add_argument(
        "--sample", action="store_true", help="add one throughput run sampled by py-spy (pip install py-spy)"
    )
    parser.add_argument("--json", default=str(RESULTS), help="write the results here")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.sample and not Path(py_spy).exists():
        parser.error("--sample needs py-spy on PATH or beside this Python: pip install py-spy")
    if args.broker and not re.match(r"^mqtt://(127\.\d+\.\d+\.\d+|localhost):\d+$", args.broker):
        parser.error("the benchmark only talks to a broker on the loopback interface")
    results: dict[str, Any] = {
        "command": "python benchmarks/service_throughput.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "devices": N_DEVICES,
        "sensors": len(SENSORS),
        "broker": "private Mosquitto (max_queued_messages 1000000)" if args.broker is None else args.broker,
    }
    with tempfile.TemporaryDirectory() as tmp:
        broker_proc = None
        broker = args.broker
        if broker is None:
            broker_proc, broker = start_broker(Path(tmp))
        try:
            bench = Bench(broker, Path(tmp))
            try:
                results["rss_start_mib"] = bench.rss_start_mib
                bench.publish(5000, 0)  # warm-up
                for key, count, rate in [
                    ("throughput", args.messages, 0.0),
                    ("latency", int(args.rate * args.latency_seconds), args.rate),
                ]:
                    results[key] = []
                    for _ in range(args.runs):
                        results[key].append(bench.publish(count, rate))
                        print(f"{key}: {json.dumps(results[key][-1])}", flush=True)
                if args.soak > 0:
                    results["soak"] = soak(bench, args.soak)
                    print(f"soak: {json.dumps(results['soak'])}", flush=True)
                results["rss_end_mib"] = rss_kib(bench.proc.pid) / 1024
            finally:
                bench.close()
            if args.profile:
                results["profile"] = profile(broker, Path(tmp), args.messages)
                print(f"profile: {json.dumps(results['profile'])}", flush=True)
            if args.sample:
                results["sampled"] = sampled(broker, Path(tmp), args.messages, py_spy)
                print(f"sampled: {json.dumps(results['sampled'])}", flush=True)
        finally:
            if broker_proc is not None:
                broker_proc.terminate()
                broker_proc.wait(10)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
