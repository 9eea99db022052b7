"""Shared data and helpers of the service tests."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

SENSORS = ["temp_c", "pressure_bar", "flow_m3h", "current_a"]
WRITE_TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"


def training_frame(seed: int = 0, n: int = 1500, shift: float = 0.0) -> pd.DataFrame:
    """Four correlated sensors driven by one load factor; PCA with one component models them well."""
    rng = np.random.default_rng(seed)
    load = rng.normal(size=(n, 1))
    values = np.hstack([load, 2 * load, -load, 0.5 * load]) + 0.05 * rng.normal(size=(n, 4)) + shift
    return pd.DataFrame(values, columns=SENSORS)


def normal_readings(rng: np.random.Generator) -> dict[str, float]:
    load = float(rng.normal())
    noise = 0.05 * rng.normal(size=4)
    return dict(
        zip(SENSORS, [load + noise[0], 2 * load + noise[1], -load + noise[2], 0.5 * load + noise[3]], strict=True)
    )


def anomalous_readings(rng: np.random.Generator) -> dict[str, float]:
    readings = normal_readings(rng)
    readings["flow_m3h"] += 6.0  # breaks the correlation: a large Q (SPE) score on flow
    return readings


def record(device: str, t: float, readings: dict[str, float]) -> dict[str, Any]:
    return {"device": device, "time": t, "readings": readings}


def payload(*records: dict[str, Any]) -> bytes:
    return json.dumps(list(records) if len(records) != 1 else records[0]).encode()


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on a free port in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
