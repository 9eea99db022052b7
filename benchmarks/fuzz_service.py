"""Reliability under hostile input: payloads over HTTP and MQTT, tampered models, hostile files to the CLI.

A correctness benchmark (counts, not speed). It writes ``benchmarks/results/reliability/fuzz_service.json``:

- ``http`` / ``mqtt``: hostile payloads of every kind of :data:`vigil.hostile.HOSTILE_KINDS` shuffled among
  valid readings of 20 devices; how many valid readings were scored (exactly once), how many hostile payloads
  were dead-lettered (exactly once), 5xx answers, whether ``/health`` was answering, and the queue at the end.
  HTTP goes through the FastAPI app in process (``TestClient``); MQTT through the Mosquitto at 127.0.0.1:1883.
- ``models``: every tampering of :data:`vigil.hostile.TAMPERINGS`, with and without its manifest: clear
  ``ModelFormatError``, any other exception (a traceback), or a silent load.
- ``cli``: mutated CSV files, captures and images given to ``vigil fit`` / ``vigil score`` / ``vigil replay``:
  exit codes, and exceptions that escaped ``main`` (tracebacks).

Run: ``python benchmarks/fuzz_service.py [--n 5000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.alerts import SqlAlertStore
from vigil.detectors.pca import PCADetector
from vigil.errors import ModelFormatError
from vigil.hostile import HOSTILE_KINDS, TAMPERINGS, hostile_payload, tamper, valid_payload
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime, RuntimeConfig

SENSORS = ["temp_c", "pressure_bar", "flow_m3h", "current_a"]
OUT = Path(__file__).parent / "results" / "reliability" / "fuzz_service.json"


def plan(n_hostile: int, n_valid: int, seed: int) -> list[tuple[str, str, bytes, bool]]:
    """(kind, device, payload, valid) in sending order; each valid device's times only move forward."""
    rng = random.Random(seed)
    kinds = sorted(HOSTILE_KINDS)
    items = [True] * n_hostile + [False] * n_valid
    rng.shuffle(items)
    out, t, v, h = [], 0.0, 0, 0
    for hostile in items:
        t += 1.0
        if hostile:
            kind, device = kinds[h % len(kinds)], f"h-{h}"
            out.append((kind, device, hostile_payload(kind, device, t, SENSORS, rng), False))
            h += 1
        else:
            device = f"v-{v % 20}"
            out.append(("valid", device, valid_payload(device, t, SENSORS, rng), True))
            v += 1
    return out


def make_runtime(root: Path, fitted: Pipeline) -> tuple[SqlAlertStore, Runtime]:
    registry = ModelRegistry(root / "registry")
    registry.add("pump", fitted, activate=True)
    store = SqlAlertStore(root / "alerts.db")
    return store, Runtime(store, registry, config=RuntimeConfig(registry_poll_seconds=60.0)).start()


def outcome(runtime: Runtime, store: SqlAlertStore, items: list, started: float) -> dict:
    runtime.drain(120)
    snap = runtime.metrics.snapshot()
    n_valid = sum(1 for *_, valid in items if valid)
    letters = store.count_dead_letters()
    return {
        "payloads": len(items),
        "hostile_payloads": len(items) - n_valid,
        "hostile_kinds": len(HOSTILE_KINDS),
        "valid_readings": n_valid,
        "valid_scored": sum(snap["scored"].values()),
        "valid_lost": n_valid - sum(snap["scored"].values()),
        "dead_letters": letters,
        "hostile_not_dead_lettered_once": (len(items) - n_valid) - letters,
        "dead_letter_kinds": dict(sorted(snap["dead_letters"].items())),
        "redeliveries": snap["redeliveries"],
        "queue_depth_at_end": runtime.queue_depth,
        "health_at_end": runtime.health(),
        "seconds": round(time.monotonic() - started, 1),
    }


def run_http(fitted: Pipeline, items: list) -> dict:
    from fastapi.testclient import TestClient

    from vigil.service.app import create_app
    from vigil.service.auth import TokenAuth

    with tempfile.TemporaryDirectory() as tmp:
        store, runtime = make_runtime(Path(tmp), fitted)
        codes: Counter[int] = Counter()
        wrong: Counter[str] = Counter()
        started = time.monotonic()
        headers = {"Authorization": "Bearer bench-write-token-0123456789"}
        with TestClient(create_app(runtime, auth=TokenAuth({headers["Authorization"][7:]: "write"}))) as client:
            for kind, _, body, valid in items:
                response = client.post("/ingest", content=body, headers=headers)
                codes[response.status_code] += 1
                expected = 200 if valid else 422
                if response.status_code != expected:
                    wrong[kind] += 1
                elif not valid and response.json()["results"][0]["dead_letter"] != HOSTILE_KINDS[kind]:
                    wrong[f"{kind}: got {response.json()['results'][0]['dead_letter']}"] += 1
            health = client.get("/health").status_code
        result = outcome(runtime, store, items, started)
        runtime.stop()
        store.close()
    return {**result, "status_codes": dict(codes), "server_errors_5xx": sum(n for c, n in codes.items() if c >= 500),
            "unexpected_answers": dict(wrong), "health_status_code": health}  # fmt: skip


def run_mqtt(fitted: Pipeline, items: list) -> dict:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from vigil.streaming.sources.mqtt import MqttIngest, MqttOptions

    prefix = f"vigilbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        store, runtime = make_runtime(Path(tmp), fitted)
        options = MqttOptions(topic=f"{prefix}/+/telemetry", client_id=f"{prefix}-svc", session_expiry=60,
                              alert_topic=None, dead_letter_topic=None)  # fmt: skip
        ingest = MqttIngest(runtime, options).start()
        if not ingest.wait_connected(10):
            return {"error": "no MQTT broker at 127.0.0.1:1883"}
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub")
        publisher.max_inflight_messages_set(1000)
        publisher.connect("127.0.0.1", 1883)
        publisher.loop_start()
        started = time.monotonic()
        for _, device, body, _ in items:
            publisher.publish(f"{prefix}/{device}/telemetry", body, qos=1)
        n_valid = sum(1 for *_, valid in items if valid)
        expected = (n_valid, len(items) - n_valid)
        stalled_checks = 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            snap = runtime.metrics.snapshot()
            if (sum(snap["scored"].values()), store.count_dead_letters()) == expected:
                break
            stalled_checks += any(r.startswith("ingestion stalled") for r in runtime.health())
            time.sleep(0.2)
        all_in = time.monotonic() - started
        result = outcome(runtime, store, items, started)
        publisher.disconnect()
        publisher.loop_stop()
        ingest.stop()
        runtime.stop()
        store.close()
    return {**result, "seconds_until_all_processed": round(all_in, 1), "health_saw_a_stall": stalled_checks}


def run_models(fitted: Pipeline) -> dict:
    counts: Counter[str] = Counter()
    details = {}
    with tempfile.TemporaryDirectory() as tmp:
        saved = fitted.save(Path(tmp) / "saved")
        for name in sorted(TAMPERINGS):
            for reseal in (False, True):
                if reseal and name.startswith("manifest_"):
                    continue
                target = Path(shutil.copytree(saved, Path(tmp) / f"{name}-{reseal}"))
                tamper(target, name, reseal=reseal)
                label = f"{name}{' (no manifest)' if reseal else ''}"
                try:
                    Pipeline.load(target)
                    counts["silent_load"] += 1
                    details[label] = "loaded"
                except ModelFormatError:
                    counts["clear_error"] += 1
                except Exception as exc:  # a traceback: what this benchmark looks for
                    counts["traceback"] += 1
                    details[label] = f"{type(exc).__name__}: {exc}"
    return {"directories": sum(counts.values()), **counts, "not_clear": details}


def run_cli(seed: int, n: int) -> dict:
    from vigil.cli import main

    rng = random.Random(seed)

    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(out) + 1)
            choice = rng.randrange(3)
            if choice == 0 and out:
                out[min(at, len(out) - 1)] = rng.randrange(256)
            elif choice == 1:
                del out[at:]
            else:
                out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
        return bytes(out)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frame = pd.DataFrame(np.random.default_rng(seed).normal(size=(300, 3)), columns=["a", "b", "c"])
        frame.insert(0, "time", np.arange(300))
        frame.to_csv(root / "train.csv", index=False)
        model = root / "model"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["fit", str(root / "train.csv"), "--detector", "pca", "--time", "time", "-o", str(model)]) == 0
        csv_bytes = (root / "train.csv").read_bytes()
        commands = {
            "fit": lambda path: ["fit", str(path), "--detector", "pca", "-o", str(root / "m2")],
            "score": lambda path: ["score", str(model), str(path), "-o", str(root / "scores.csv")],
            "replay": lambda path: ["replay", str(path), "--mqtt", "mqtt://127.0.0.1:1", "--limit", "1"],
        }
        for command, argv in commands.items():
            codes: Counter[int] = Counter()
            tracebacks = []
            for i in range(n):
                path = root / f"{command}-{i}.csv"
                path.write_bytes(mutate(csv_bytes) if i % 5 else bytes(rng.randrange(256) for _ in range(200)))
                try:
                    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        codes[main(argv(path))] += 1
                except SystemExit as exc:
                    codes[int(exc.code or 0)] += 1
                except Exception as exc:
                    tracebacks.append(f"{type(exc).__name__}: {exc}"[:300])
                    traceback.print_exc(limit=2, file=sys.stderr)
            results[command] = {"files": n, "exit_codes": dict(codes), "tracebacks": len(tracebacks),
                                "traceback_examples": tracebacks[:5]}  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="hostile payloads per transport")
    parser.add_argument("--valid", type=int, default=5000, help="valid readings per transport")
    parser.add_argument("--files", type=int, default=50, help="hostile files per CLI command")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    fitted = Pipeline(PCADetector(n_components=2)).fit(pd.DataFrame(rng.normal(size=(2000, 4)), columns=SENSORS))
    items = plan(args.n, args.valid, args.seed)
    report = {
        "command": " ".join(["python", "benchmarks/fuzz_service.py", *sys.argv[1:]]),
        "http": run_http(fitted, items),
        "mqtt": run_mqtt(fitted, items),
        "models": run_models(fitted),
        "cli": run_cli(args.seed, args.files),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
