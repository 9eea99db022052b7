"""The OPC UA source against a real asyncua server: ticks, Bad quality, unknown nodes, a restart mid-stream."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

pytest.importorskip("asyncua")

import itertools

from opcua_plant import PlantServer, free_port

from vigil.errors import InvalidInputError
from vigil.streaming.sources.opcua import OpcUaAsset, OpcUaOptions, OpcUaSource

ASSETS = {"pump-1": ["temp_c", "flow_m3h"], "pump-2": ["temp_c", "flow_m3h"]}
PERIOD = 0.2


class Recorder:
    """Takes what a runtime's ``enqueue`` takes, and keeps the decoded records."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # wall-clock time each record was handed to the runtime
        self.sources: set[str] = set()
        self._lock = threading.Lock()

    def enqueue(self, raw: bytes, source: str, *, device_hint: str | None, on_done: Any, timeout: Any) -> None:
        record = json.loads(raw)
        assert record["device"] == device_hint
        with self._lock:
            self.records.append(record)
            self.arrivals.append(time.time())
            self.sources.add(source)
        on_done([])

    def of(self, device: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if r["device"] == device]

    def arrived(self, device: str) -> list[float]:
        with self._lock:
            return [t for r, t in zip(self.records, self.arrivals, strict=True) if r["device"] == device]

    def wait_for(self, condition: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        msg = f"timed out; records so far: {self.records[-5:]}"
        raise AssertionError(msg)


def options(endpoint: str, **overrides: Any) -> OpcUaOptions:
    assets = [
        OpcUaAsset(name, {sensor: f"ns=2;s={name}.{sensor}" for sensor in sensors}, asset_type="pump")
        for name, sensors in ASSETS.items()
    ]
    fields: dict[str, Any] = {
        "endpoint": endpoint,
        "assets": assets,
        "sampling_interval": PERIOD,
        "reconnect_min": 0.2,
        "reconnect_max": 0.5,
        "timeout": 2.0,
    }
    fields.update(overrides)
    return OpcUaOptions(**fields)


@pytest.fixture
def server():
    plant = PlantServer(free_port(), ASSETS, period=PERIOD / 2).start()
    yield plant
    plant.stop()


def test_one_record_per_asset_per_tick_from_the_subscription(server):
    recorder = Recorder()
    source = OpcUaSource(recorder, options(server.endpoint)).start()
    try:
        recorder.wait_for(lambda: all(len(recorder.of(a)) >= 6 for a in ASSETS))
    finally:
        source.stop()
    for asset in ASSETS:
        records = recorder.of(asset)
        times = [r["time"] for r in records]
        # ticks are the multiples of the sampling interval, one after another, none skipped or repeated
        steps = [round((b - a) / PERIOD, 3) for a, b in itertools.pairwise(times)]
        assert steps == [1.0] * len(steps)
        assert all(abs(t / PERIOD - round(t / PERIOD)) < 1e-4 for t in times)
        for record in records:
            assert set(record["readings"]) == {"temp_c", "flow_m3h"}
            assert all(1000 <= v < 2000 for v in record["readings"].values())
            assert record["asset_type"] == "pump"
            assert "quality" not in record
        # the server writes new values twice per tick: the records follow them
        assert records[-1]["readings"]["temp_c"] > records[0]["readings"]["temp_c"]
    assert recorder.sources == {f"opcua:{server.endpoint}"}
    status = source.status()
    assert status["connections"] == 1
    assert status["assets"]["pump-1"]["records"] >= 6


def test_bad_status_and_unknown_node_are_missing_with_their_reason(server):
    server.bad.add("pump-1.flow_m3h")
    assets = [
        OpcUaAsset("pump-1", {"temp_c": "ns=2;s=pump-1.temp_c", "flow_m3h": "ns=2;s=pump-1.flow_m3h"}),
        OpcUaAsset("pump-2", {"temp_c": "ns=2;s=pump-2.temp_c", "flow_m3h": "ns=2;s=no-such-node"}),
    ]
    recorder = Recorder()
    source = OpcUaSource(recorder, options(server.endpoint, assets=assets)).start()
    try:
        recorder.wait_for(lambda: all(len(recorder.of(a)) >= 3 for a in ASSETS))
    finally:
        source.stop()
    last = recorder.of("pump-1")[-1]
    assert last["readings"]["flow_m3h"] is None
    assert last["quality"]["flow_m3h"] == "BadSensorFailure (node ns=2;s=pump-1.flow_m3h)"
    assert last["readings"]["temp_c"] >= 1000  # the good sensor of the same asset still reads
    last = recorder.of("pump-2")[-1]
    assert last["readings"]["flow_m3h"] is None
    assert "BadNodeIdUnknown" in last["quality"]["flow_m3h"]
    assert "ns=2;s=no-such-node" in last["quality"]["flow_m3h"]


def test_a_node_of_another_type_than_the_plant_file_maps_is_missing_with_its_type():
    port = free_port()
    srv = PlantServer(port, {"pump-1": ["temp_c", "mode"]}, period=PERIOD)
    srv.text.add("pump-1.mode")
    srv.start()
    try:
        assets = [OpcUaAsset("pump-1", {"temp_c": "ns=2;s=pump-1.temp_c", "flow_m3h": "ns=2;s=pump-1.mode"})]
        recorder = Recorder()
        source = OpcUaSource(recorder, options(srv.endpoint, assets=assets)).start()
        try:
            recorder.wait_for(lambda: len(recorder.of("pump-1")) >= 2)
        finally:
            source.stop()
    finally:
        srv.stop()
    last = recorder.of("pump-1")[-1]
    assert last["readings"]["flow_m3h"] is None  # no number made up from the text
    assert last["quality"]["flow_m3h"] == "node ns=2;s=pump-1.mode holds str 'running', not a number"
    assert last["readings"]["temp_c"] >= 1000


def test_server_restart_reports_the_gap_invents_nothing_and_resumes(server):
    recorder = Recorder()
    source = OpcUaSource(recorder, options(server.endpoint)).start()
    try:
        recorder.wait_for(lambda: all(len(recorder.of(a)) >= 3 for a in ASSETS))
        server.stop()
        stopped = time.time()
        time.sleep(6 * PERIOD)
        before = {a: len(recorder.of(a)) for a in ASSETS}
        assert source.status()["connected"] is False
        time.sleep(4 * PERIOD)
        assert {a: len(recorder.of(a)) for a in ASSETS} == before  # nothing sent while the server is away
        restarted = PlantServer(server.port, ASSETS, period=PERIOD / 2, generation=2).start()
        try:
            back = time.time()
            recorder.wait_for(lambda: all(len(recorder.of(a)) >= before[a] + 3 for a in ASSETS))
        finally:
            restarted.stop()
    finally:
        source.stop()
    status = source.status()
    assert status["connections"] == 2
    for asset in ASSETS:
        records = recorder.of(asset)
        old = [r for r in records if r["time"] <= stopped + PERIOD]
        new = records[len(old) :]
        # no record falls in the outage; the first one after it comes within a few seconds of the server
        assert new[0]["time"] > back - PERIOD
        assert new[0]["time"] < back + 10
        # and it reaches the runtime within 10 s of the server being back (the resume target)
        assert recorder.arrived(asset)[len(old)] - back < 10
        assert all(v < 2000 for r in old for v in r["readings"].values())
        assert all(v >= 2000 for r in new for v in r["readings"].values())  # no old value carried over
        gaps = status["assets"][asset]["gaps"]
        assert len(gaps) == 1
        gap = gaps[0]
        assert gap["missed_ticks"] >= 9
        assert gap["missed_ticks"] == round((new[0]["time"] - old[-1]["time"]) / PERIOD) - 1
        assert "lost" in gap["reason"] or "Error" in gap["reason"]


def test_unreachable_server_is_retried_and_reported():
    recorder = Recorder()
    source = OpcUaSource(recorder, options(f"opc.tcp://127.0.0.1:{free_port()}/none/")).start()
    try:
        deadline = time.monotonic() + 10
        while not source.status()["last_error"] and time.monotonic() < deadline:
            time.sleep(0.05)
        status = source.status()
    finally:
        source.stop()
    assert status["connected"] is False
    assert status["last_error"]
    assert recorder.records == []


@pytest.mark.parametrize(
    ("assets", "message"),
    [
        ([OpcUaAsset("p", {"t": "Pump.Temp"})], "p.t: 'Pump.Temp' is not an OPC UA node id"),
        (
            [OpcUaAsset("p", {"t": "ns=2;s=X"}), OpcUaAsset("q", {"u": "ns=2;s=X"})],
            "node ns=2;s=X is mapped to both p.t and q.u",
        ),
        ([OpcUaAsset("p", {"t": "ns=2;s=X"}), OpcUaAsset("p", {"u": "ns=2;s=Y"})], "asset 'p' is declared twice"),
    ],
)
def test_bad_mappings_are_refused_with_where(assets, message):
    with pytest.raises(InvalidInputError, match=message):
        OpcUaSource(Recorder(), options("opc.tcp://127.0.0.1:4840/", assets=assets))


def test_records_reach_a_real_runtime_and_bad_values_become_located_dead_letters(server, tmp_path):
    import numpy as np
    import pandas as pd

    from vigil.alerts import SqlAlertStore
    from vigil.detectors.pca import PCADetector
    from vigil.pipeline import Pipeline
    from vigil.streaming.model_registry import ModelRegistry
    from vigil.streaming.runtime import Runtime

    rng = np.random.default_rng(0)
    level = rng.uniform(1000, 1100, size=(400, 1))
    frame = pd.DataFrame(np.hstack([level, level + rng.normal(size=(400, 1))]), columns=["temp_c", "flow_m3h"])
    registry = ModelRegistry(tmp_path / "registry")
    registry.add("pump", Pipeline(PCADetector(n_components=1)).fit(frame), activate=True)
    server.bad.add("pump-2.flow_m3h")
    with SqlAlertStore(tmp_path / "alerts.db") as store, Runtime(store, registry) as runtime:
        source = OpcUaSource(runtime, options(server.endpoint)).start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and source.status()["records"] < 8:
                time.sleep(0.05)
            runtime.drain()
        finally:
            source.stop()
        status = source.status()
        letters = store.list_dead_letters(limit=100)
    assert status["scored"] >= 3  # pump-1 is scored
    assert status["dead_letters"] >= 3  # pump-2's Bad flow reading is refused, never turned into a number
    assert {letter.device for letter in letters} == {"pump-2"}
    assert {letter.kind for letter in letters} == {"missing_value"}
    assert "'flow_m3h' (BadSensorFailure (node ns=2;s=pump-2.flow_m3h))" in letters[0].reason
    assert status["lag_p99_s"] is not None
