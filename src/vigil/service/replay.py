"""Publish a table of telemetry as device messages over MQTT, at a set rate (demos and load tests).

Each row becomes one message per device, in the payload schema of :mod:`vigil.streaming.messages`, on
``topic_template.format(device=...)``. Devices come from a column of the table, or the table is fanned
out to ``n_devices`` synthetic devices (``<prefix>-000`` …), each getting every row.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import InvalidInputError
from vigil.streaming.sources.mqtt import MqttOptions, connect_options, make_client

__all__ = ["ReplayReport", "iter_messages", "read_replay_table", "replay"]


@dataclass(frozen=True)
class ReplayReport:
    """How many messages went out, in how long."""

    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else math.inf


def read_replay_table(
    path: str | Path,
    *,
    time_column: str | None = None,
    device_column: str | None = None,
    drop: list[str] | None = None,
) -> pd.DataFrame:
    """Read a CSV (or Parquet) of telemetry; keep the numeric sensor columns plus time and device."""
    source = Path(path)
    if not source.is_file():
        msg = f"{source} does not exist"
        raise InvalidInputError(msg)
    try:
        frame = pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source)
    except UnicodeDecodeError as exc:
        msg = f"{source} is not a text CSV file (byte {exc.start} is not UTF-8); pass a CSV or a .parquet file"
        raise InvalidInputError(msg) from exc
    except pd.errors.EmptyDataError as exc:
        msg = f"{source} is empty"
        raise InvalidInputError(msg) from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:  # pyarrow's errors are ValueError or OSError
        msg = f"{source} could not be read as a {'Parquet' if source.suffix == '.parquet' else 'CSV'} table: {exc}"
        raise InvalidInputError(msg) from exc
    for column in (time_column, device_column, *(drop or [])):
        if column is not None and column not in frame.columns:
            msg = f"{source}: no column {column!r} (columns: {list(frame.columns)})"
            raise InvalidInputError(msg)
    frame = frame.drop(columns=drop or [])
    sensors = [c for c in frame.columns if c not in (time_column, device_column)]
    bad = [c for c in sensors if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        msg = f"{source}: sensor columns {bad} are not numeric (pass --drop for columns that are not sensors)"
        raise InvalidInputError(msg)
    if not sensors:
        msg = f"{source} has no sensor column"
        raise InvalidInputError(msg)
    return frame


def _times(frame: pd.DataFrame, time_column: str | None, start: float, period: float) -> np.ndarray:
    if time_column is None:
        return start + period * np.arange(len(frame), dtype=np.float64)
    column = frame[time_column]
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64)
    parsed = pd.to_datetime(column, utc=True, errors="coerce")
    if parsed.isna().any():
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        msg = f"time column {time_column!r} row {i} is not a time: {column.iloc[i]!r}"
        raise InvalidInputError(msg)
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def iter_messages(
    frame: pd.DataFrame,
    *,
    topic_template: str = "plant/{device}/telemetry",
    time_column: str | None = None,
    device_column: str | None = None,
    n_devices: int = 1,
    device_prefix: str = "device",
    start: float | None = None,
    period: float = 1.0,
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(topic, payload)`` for every row and device, in time order.

    Examples
    --------
    >>> frame = pd.DataFrame({"t": [0.0, 1.0], "flow": [1.5, 1.6]})
    >>> [topic for topic, _ in iter_messages(frame, time_column="t", n_devices=2, device_prefix="p")]
    ['plant/p-000/telemetry', 'plant/p-001/telemetry', 'plant/p-000/telemetry', 'plant/p-001/telemetry']
    >>> json.loads(next(iter_messages(frame, time_column="t", device_prefix="p"))[1])
    {'device': 'p-000', 'time': 0.0, 'readings': {'flow': 1.5}}
    """
    sensors = [c for c in frame.columns if c not in (time_column, device_column)]
    times = _times(frame, time_column, time.time() if start is None else start, period)
    values = frame[sensors].to_numpy(dtype=np.float64)
    devices = frame[device_column].astype(str).tolist() if device_column is not None else None
    fan = [f"{device_prefix}-{k:03d}" for k in range(n_devices)]
    for i in range(len(frame)):
        readings = dict(zip(sensors, values[i].tolist(), strict=True))
        for device in [devices[i]] if devices is not None else fan:
            payload = {"device": device, "time": float(times[i]), "readings": readings}
            yield topic_template.format(device=device), json.dumps(payload).encode()


def replay(
    messages: Iterator[tuple[str, bytes]],
    options: MqttOptions,
    *,
    rate: float,
    limit: int | None = None,
    qos: int = 1,
    timeout: float = 60.0,
) -> ReplayReport:
    """Publish ``messages`` at ``rate`` per second (``0`` for as fast as possible) and wait for the acks."""
    if rate < 0 or not math.isfinite(rate):
        msg = f"rate must be a finite number >= 0, got {rate!r}"
        raise InvalidInputError(msg)
    host, port, _ = connect_options(options)
    client = make_client(options)
    client.max_inflight_messages_set(1000)
    try:
        client.connect(host, port, keepalive=options.keepalive)
    except OSError as exc:  # refused, unreachable, unknown host: say which broker, not a traceback
        msg = f"cannot reach the MQTT broker {host}:{port}: {exc.strerror or exc}"
        raise InvalidInputError(msg) from exc
    client.loop_start()
    infos: list[Any] = []
    sent = 0
    began = time.perf_counter()
    try:
        for topic, payload in messages:
            if limit is not None and sent >= limit:
                break
            if rate > 0:
                due = began + sent / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)  # pacing, not synchronisation
            infos.append(client.publish(topic, payload, qos=qos))
            sent += 1
            if len(infos) >= 10_000:
                infos = [info for info in infos if not info.is_published()]
        deadline = time.perf_counter() + timeout
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.perf_counter()))
            if not info.is_published():
                msg = f"the broker did not acknowledge every message within {timeout} s"
                raise InvalidInputError(msg)
    finally:
        client.disconnect()
        client.loop_stop()
    return ReplayReport(sent, time.perf_counter() - began)
