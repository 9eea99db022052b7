"""SIGKILL during an MQTT stream, several runs: no alert lost or duplicated, no false dead letter.

A correctness benchmark (counts, not speed). Each run starts ``vigil serve`` as its own process against the
Mosquitto at 127.0.0.1:1883 with a SQLite store, publishes a stream of four devices at QoS 1 (normal readings
with anomalous stretches, so alerts open, grow and close), kills the service with SIGKILL at a random moment
(seeded), keeps publishing while it is down (800 readings, under the broker's own queue limit for an
offline session), starts it again on the same store and session, and waits until
every device's last reading is processed. The alerts it stored are compared with those of a run of the same
stream that was never killed: an alert missing, duplicated, or with other start, end or point count is
counted, and so is every dead letter (the stream holds only valid readings, so any dead letter is false).

Run: ``python benchmarks/sigkill_service.py [--runs 5]``; writes
``benchmarks/results/reliability/sigkill_service.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
from paho.mqtt.enums import CallbackAPIVersion

from vigil.alerts import SqlAlertStore
from vigil.detectors.pca import PCADetector
from vigil.pipeline import Pipeline

SENSORS = ["temp_c", "pressure_bar", "flow_m3h", "current_a"]
DEVICES = [f"pump-{i}" for i in range(4)]
STEPS = 400
#: Anomalous stretches [start, end) per device index: alerts that open, grow and close at known steps.
ANOMALIES = {0: [(50, 90), (250, 270)], 1: [(120, 200)], 2: [(10, 20), (300, 380)], 3: [(200, 230)]}
#: Readings published while the service is down before it is started again: under Mosquitto's default
#: ``max_queued_messages`` (1000), past which the broker itself drops QoS 1 messages of an offline session.
QUEUED_WHILE_DOWN = 800
OUT = Path(__file__).parent / "results" / "reliability" / "sigkill_service.json"


def readings(rng: np.random.Generator, anomalous: bool) -> dict[str, float]:
    load = float(rng.normal())
    values = np.array([load, 2 * load, -load, 0.5 * load]) + 0.05 * rng.normal(size=4)
    if anomalous:
        values[2] += 6.0  # breaks the correlation PCA learned: a large residual on flow
    return dict(zip(SENSORS, values.round(6).tolist(), strict=True))


def stream(seed: int) -> list[tuple[str, bytes]]:
    """(device, payload) in publishing order; every device's times move forward."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(STEPS):
        for i, device in enumerate(DEVICES):
            anomalous = any(a <= t < b for a, b in ANOMALIES[i])
            out.append((device, json.dumps({"time": float(t), "readings": readings(rng, anomalous)}).encode()))
    return out


def fitted_model(directory: Path) -> Path:
    rng = np.random.default_rng(0)
    load = rng.normal(size=(1500, 1))
    values = np.hstack([load, 2 * load, -load, 0.5 * load]) + 0.05 * rng.normal(size=(1500, 4))
    return Pipeline(PCADetector(n_components=1)).fit(pd.DataFrame(values, columns=SENSORS)).save(directory)


class Service:
    """One ``vigil serve`` process on a store and an MQTT session that outlive it."""

    def __init__(self, model: Path, work: Path, prefix: str) -> None:
        self.command = [
            sys.executable, "-m", "vigil.service", "serve", "--model", f"pump={model}",
            "--registry", str(work / "registry"), "--store", f"sqlite:///{work / 'alerts.db'}",
            "--http", "127.0.0.1:0", "--mqtt", "mqtt://127.0.0.1:1883", "--topic", f"{prefix}/+/telemetry",
            "--client-id", f"{prefix}-svc", "--session-expiry", "300", "--device-gap", "10",
            "--log-level", "warning",
        ]  # fmt: skip
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.command, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stderr.readline()
        if "listening on" not in line:
            msg = f"vigil serve did not start: {line}"
            raise RuntimeError(msg)
        self.url = line.rsplit(" ", 1)[-1].strip()
        # keep reading stderr so a chatty service never blocks on a full pipe
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def last_times(self) -> dict[str, str | None]:
        with urllib.request.urlopen(f"{self.url}/devices", timeout=5) as response:
            body = json.loads(response.read())
        devices = body["devices"] if isinstance(body, dict) else body
        return {d["device"]: d["last_time"] for d in devices}

    def wait_processed(self, timeout: float = 120.0) -> None:
        """Until every device's last reading is in (then one more moment for the commit)."""
        final = "1970-01-01T00:" + time.strftime("%M:%S", time.gmtime(STEPS - 1))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.last_times()
            if len(seen) == len(DEVICES) and all((v or "").startswith(final) for v in seen.values()):
                return
            time.sleep(0.2)
        msg = f"not every device reached step {STEPS - 1} in {timeout} s: {self.last_times()}"
        raise TimeoutError(msg)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def alerts_of(db: Path) -> tuple[list[tuple], int, list[str]]:
    with SqlAlertStore(db) as store:
        alerts = sorted((a.device, a.start.isoformat(), a.end.isoformat(), a.n_points) for a in store.list(limit=None))
        letters = store.list_dead_letters(limit=None)
        return alerts, len(letters), [d.reason for d in letters[:5]]


def run(model: Path, items: list[tuple[str, bytes]], kill_after: float | None) -> dict:
    """Publish ``items`` (about 1 ms apart); SIGKILL the service ``kill_after`` seconds in and restart it."""
    prefix = f"vigilkill-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        service = Service(model, work, prefix)
        service.start()
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub")
        publisher.max_inflight_messages_set(1000)
        publisher.connect("127.0.0.1", 1883)
        publisher.loop_start()
        started, killed_at, published_before_kill, down = time.monotonic(), None, None, False
        try:
            for n, (device, body) in enumerate(items):
                publisher.publish(f"{prefix}/{device}/telemetry", body, qos=1).wait_for_publish(10)
                if kill_after is not None and killed_at is None and time.monotonic() - started >= kill_after:
                    service.kill()
                    killed_at, published_before_kill, down = time.monotonic() - started, n + 1, True
                if down and n + 1 - published_before_kill >= QUEUED_WHILE_DOWN:
                    service.start()  # same store, same persistent MQTT session: the broker kept what came meanwhile
                    down = False
                time.sleep(0.001)
            if down:
                service.start()
            service.wait_processed()
            time.sleep(1.0)  # the last micro-batch's commit
        finally:
            service.stop()
            publisher.disconnect()
            publisher.loop_stop()
        alerts, n_letters, reasons = alerts_of(work / "alerts.db")
    return {"alerts": alerts, "dead_letters": n_letters, "dead_letter_examples": reasons,
            "killed_after_s": None if killed_at is None else round(killed_at, 2),
            "published_before_kill": published_before_kill}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model = fitted_model(Path(tmp) / "model")
        items = stream(args.seed)
        reference = run(model, items, kill_after=None)
        expected = reference["alerts"]
        print(f"reference (no kill): {len(expected)} alerts, {reference['dead_letters']} dead letters")
        runs = []
        for i in range(args.runs):
            # a moment inside the ~2 s of publishing, so the kill lands mid-stream
            result = run(model, items, kill_after=rng.uniform(0.2, 1.5))
            got = result.pop("alerts")
            lost = [a for a in expected if a not in got]
            extra = [a for a in got if a not in expected]
            summary = {"run": i, **result, "alerts": len(got), "alerts_lost_or_changed": len(lost),
                       "alerts_duplicated_or_unexpected": len(extra), "lost": lost, "unexpected": extra}  # fmt: skip
            print(
                f"run {i}: killed after {result['killed_after_s']} s ({result['published_before_kill']} published), "
                f"{len(got)} alerts, {len(lost)} lost or changed, {len(extra)} unexpected, "
                f"{result['dead_letters']} dead letters"
            )
            runs.append(summary)
    document = {
        "command": f"python benchmarks/sigkill_service.py --runs {args.runs} --seed {args.seed}",
        "devices": len(DEVICES),
        "readings": len(items),
        "reference_alerts": len(expected),
        "reference_dead_letters": reference["dead_letters"],
        "runs": runs,
        "total": {
            "alerts_lost_or_changed": sum(r["alerts_lost_or_changed"] for r in runs),
            "alerts_duplicated_or_unexpected": sum(r["alerts_duplicated_or_unexpected"] for r in runs),
            "false_dead_letters": sum(r["dead_letters"] for r in runs),
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {OUT}: {document['total']}")


if __name__ == "__main__":
    main()
