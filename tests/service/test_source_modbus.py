"""The Modbus TCP source against pymodbus' own server, started (and stopped, and restarted) by the tests."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from service_helpers import SENSORS, free_port

pytest.importorskip("pymodbus", reason="the Modbus TCP source needs pymodbus: pip install 'vigil[plant]'")

from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from vigil.alerts import SqlAlertStore
from vigil.errors import InvalidInputError
from vigil.streaming.runtime import Decision, Runtime
from vigil.streaming.sources.modbus import ModbusDevice, ModbusOptions, ModbusRegister, ModbusSource
from vigil.streaming.sources.modbus_registers import decode_words

DATATYPE = ModbusClientMixin.DATATYPE
#: pymodbus' own encoder, so that the source's decoding is checked against an independent implementation.
PYMODBUS_TYPES = {
    "int16": DATATYPE.INT16,
    "uint16": DATATYPE.UINT16,
    "int32": DATATYPE.INT32,
    "uint32": DATATYPE.UINT32,
    "float32": DATATYPE.FLOAT32,
}


def words(value: float, data_type: str, word_order: str = "big") -> list[int]:
    return ModbusClientMixin.convert_to_registers(value, PYMODBUS_TYPES[data_type], word_order=word_order)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)  # polling another thread's effect, with a deadline
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class ModbusServer:
    """pymodbus' TCP server with unit 1's holding and input registers, on its own event loop thread."""

    def __init__(self, port: int, holding: list[int], inputs: list[int]) -> None:
        self.port, self.holding, self.inputs = port, holding, inputs
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None

    def start(self) -> ModbusServer:
        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        device = SimDevice(
            1,
            simdata=(
                bits,
                bits,
                [SimData(0, values=self.holding, datatype=DataType.REGISTERS)],
                [SimData(0, values=self.inputs, datatype=DataType.REGISTERS)],
            ),
        )
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:  # pymodbus builds its server inside the loop that runs it
            self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
            await self._server.serve_forever()

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(serve(),), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)  # the server is binding its socket
        pytest.fail(f"the Modbus server did not listen on port {self.port}")

    def stop(self) -> None:
        if self._server is None or self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
        self._thread.join(10)
        self._loop.close()
        self._server = None


class Collector:
    """Receives the records a source queues, as the runtime's ``enqueue`` does."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self._lock = threading.Lock()

    def enqueue(self, raw: bytes, source: str, *, device_hint=None, on_done=None, timeout=None) -> None:
        with self._lock:
            self.records.append({**json.loads(raw), "source": source, "arrived": time.time()})

    def count(self) -> int:
        with self._lock:
            return len(self.records)

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.records)


#: Unit 1's registers: int16 -5 in tenths, float32 2.5 (big word order) in the holding registers; float32 -1.25
#: (little word order) and uint32 70000 (little) in the input registers.
HOLDING = words(-5, "int16") + words(2.5, "float32") + [0] * 7
INPUTS = words(-1.25, "float32", "little") + words(70_000, "uint32", "little") + [0] * 6
SENSOR_MAP = {
    "temp_c": ModbusRegister(0, type="int16", scale=0.1),
    "pressure_bar": ModbusRegister(1, type="float32"),
    "flow_m3h": ModbusRegister(0, table="input", type="float32", word_order="little"),
    "current_a": ModbusRegister(2, table="input", type="uint32", word_order="little", scale=1e-5),
}
EXPECTED = {"temp_c": -0.5, "pressure_bar": 2.5, "flow_m3h": -1.25, "current_a": 0.7}


@pytest.fixture
def server() -> Iterator[ModbusServer]:
    srv = ModbusServer(free_port(), list(HOLDING), list(INPUTS)).start()
    yield srv
    srv.stop()


@pytest.fixture
def sources() -> Iterator[Callable[..., ModbusSource]]:
    started: list[ModbusSource] = []

    def start(runtime, *devices: ModbusDevice, on_done=None) -> ModbusSource:
        source = ModbusSource(runtime, ModbusOptions(devices=devices), on_done=on_done).start()
        started.append(source)
        return source

    yield start
    for source in started:
        source.stop()


def device(port: int, sensors=None, **settings) -> ModbusDevice:
    return ModbusDevice("pump-1", "127.0.0.1", SENSOR_MAP if sensors is None else sensors, port=port, **settings)


def test_registers_are_read_with_their_table_type_word_order_and_scale(server, sources) -> None:
    collector = Collector()
    source = sources(collector, device(server.port, poll_period=0.05, asset_type="pump"))
    wait_for(lambda: collector.count() >= 3, 10, "three polls")
    first, second = collector.snapshot()[:2]
    assert first["readings"] == pytest.approx(EXPECTED) and "quality" not in first
    assert first["device"] == "pump-1" and first["asset_type"] == "pump" and first["source"] == "modbus:pump-1"
    assert 0.03 < second["time"] - first["time"] < 0.5  # the poll period
    assert source.status()["modbus"]["assets"]["pump-1"]["connected"]


def test_a_register_the_device_refuses_is_a_missing_sensor_with_the_reason(server, sources) -> None:
    collector = Collector()
    sensors = {**SENSOR_MAP, "current_a": ModbusRegister(500, type="uint16")}  # beyond unit 1's registers
    source = sources(collector, device(server.port, sensors, poll_period=0.05))
    wait_for(lambda: collector.count() >= 2, 10, "two polls")
    record = collector.snapshot()[0]
    assert record["readings"]["current_a"] is None  # no number made up
    assert record["quality"] == {
        "current_a": "holding register 500 (uint16) of unit 1: illegal data address (Modbus exception code 2)"
    }
    assert record["readings"]["temp_c"] == pytest.approx(-0.5)  # the other sensors are still read
    assert source.status()["modbus"]["assets"]["pump-1"]["missing_values"] >= 2


def test_records_are_scored_and_a_read_error_is_a_missing_value_dead_letter(
    server, sources, runtime: Runtime, store: SqlAlertStore
) -> None:
    outcomes: list = []
    sources(runtime, device(server.port, poll_period=0.05), on_done=outcomes.extend)
    wait_for(lambda: sum(isinstance(o, Decision) for o in outcomes) >= 3, 10, "three scored polls")
    assert {o.device for o in outcomes if isinstance(o, Decision)} == {"pump-1"}
    assert sorted(SENSOR_MAP) == sorted(SENSORS)
    broken = {**SENSOR_MAP, "flow_m3h": ModbusRegister(900, table="input", type="float32")}
    broken_device = ModbusDevice("pump-2", "127.0.0.1", broken, port=server.port, poll_period=0.05)
    sources(runtime, broken_device)
    wait_for(lambda: store.count_dead_letters("missing_value") >= 1, 10, "a missing_value dead letter")
    letter = store.list_dead_letters()[0]
    assert letter.device == "pump-2" and letter.source == "modbus:pump-2"
    assert "'flow_m3h' (input register 900 (float32) of unit 1: illegal data address" in letter.reason


def test_a_server_restart_mid_stream_is_a_gap_with_no_invented_record_and_polling_resumes(server, sources) -> None:
    collector = Collector()
    settings = {"poll_period": 0.05, "timeout": 0.5}  # the default back-off, as a plant runs it
    source = sources(collector, device(server.port, **settings))
    wait_for(lambda: collector.count() >= 5, 10, "five polls before the restart")
    server.stop()
    wait_for(lambda: not source.status()["modbus"]["assets"]["pump-1"]["connected"], 10, "the device offline")
    stopped = time.time()
    held = collector.count()
    time.sleep(0.5)  # several poll periods while the server is down
    assert collector.count() == held  # no record while the device does not answer
    asset = source.status()["modbus"]["assets"]["pump-1"]
    assert asset["reason"] and "127.0.0.1" in asset["reason"]
    server.start()
    restarted = time.time()
    wait_for(lambda: collector.count() >= held + 5, 10, "polls after the restart")
    asset = source.status()["modbus"]["assets"]["pump-1"]
    assert asset["connected"] and asset["connections"] == 2
    (gap,) = asset["gaps"]
    assert gap["from"] <= stopped and restarted - 0.1 <= gap["to"] <= restarted + 2.0
    records = collector.snapshot()
    times = [r["time"] for r in records]
    assert not [t for t in times if gap["from"] < t < gap["to"]]  # nothing inside the gap
    assert all(r["readings"] == pytest.approx(EXPECTED) for r in records)
    # the first record after the outage reaches the runtime within 10 s of the server being back
    assert records[held]["arrived"] - restarted < 10


def test_an_unreachable_device_and_a_silent_one_are_reported_and_retried_without_records(sources) -> None:
    collector = Collector()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections and never answers: every request times out
    try:
        nobody = ModbusDevice("pump-9", "127.0.0.1", SENSOR_MAP, port=free_port(), reconnect_min=0.05)
        mute = ModbusDevice(
            "pump-8", "127.0.0.1", SENSOR_MAP, port=silent.getsockname()[1], timeout=0.1, reconnect_min=0.05
        )
        source = sources(collector, nobody, mute)
        wait_for(lambda: "cannot connect" in source.status()["modbus"]["assets"]["pump-9"]["reason"], 10, "refused")
        wait_for(lambda: "holding register 0" in source.status()["modbus"]["assets"]["pump-8"]["reason"], 10, "timeout")
        time.sleep(0.3)
        assert collector.count() == 0
        assert not source.status()["modbus"]["assets"]["pump-8"]["connected"]
    finally:
        silent.close()


def test_options_refuse_what_cannot_be_polled() -> None:
    with pytest.raises(InvalidInputError, match="type must be one of int16, uint16, int32, uint32, float32"):
        ModbusRegister(1, type="float64")
    with pytest.raises(InvalidInputError, match="table must be 'holding' or 'input'"):
        ModbusRegister(1, table="coils")
    with pytest.raises(InvalidInputError, match="a float32 needs addresses 0 to 65534"):
        ModbusRegister(65_535, type="float32")
    with pytest.raises(InvalidInputError, match="poll_period must be a positive number"):
        ModbusDevice("p", "h", SENSOR_MAP, poll_period=0)
    with pytest.raises(InvalidInputError, match="maps no sensor"):
        ModbusDevice("p", "h", {})
    with pytest.raises(InvalidInputError, match="'p' is polled twice"):
        ModbusOptions(devices=(ModbusDevice("p", "h", SENSOR_MAP), ModbusDevice("p", "h2", SENSOR_MAP)))


@given(st.sampled_from(["int16", "uint16", "int32", "uint32"]), st.sampled_from(["big", "little"]), st.data())
def test_integers_decode_as_pymodbus_encodes_them(data_type: str, word_order: str, data: st.DataObject) -> None:
    bits = 16 if data_type.endswith("16") else 32
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if data_type.startswith("int") else (0, 2**bits - 1)
    value = data.draw(st.integers(low, high))
    assert decode_words(words(value, data_type, word_order), data_type, word_order) == value


@given(st.floats(width=32, allow_nan=False), st.sampled_from(["big", "little"]))
def test_float32_decodes_as_pymodbus_encodes_it(value: float, word_order: str) -> None:
    assert decode_words(words(value, "float32", word_order), "float32", word_order) == value
