"""Modbus TCP source (pymodbus): poll each device's registers on its own period, one record per poll.

Each :class:`ModbusDevice` is one asset: a host, port and unit id, its sensors' registers
(:class:`~vigil.streaming.sources.modbus_registers.ModbusRegister`: table, address, data type, word order,
scale), a poll period and a timeout. One background thread runs an asyncio loop with one polling task per
device, so a slow or dead device never delays another.

- Each poll reads every register and gives one record at the poll's time. A register the device refuses (a
  Modbus exception response: illegal address, device failure...) leaves its sensor without a value: a null
  reading whose reason names the register and the exception (``quality``), never a number made up; so does a
  float32 register holding NaN or infinity.
- A timeout or a lost connection ends the poll without a record, reports the asset offline with the reason,
  and the source reconnects with exponential back-off (``reconnect_min`` doubling up to ``reconnect_max``).
  When the device answers again the gap is recorded for the asset (:meth:`ModbusSource.status`); no record
  is invented for the polls it missed.
- A poll that overruns its period skips the ticks it missed (counted as ``overruns``) instead of bunching up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.errors import InvalidInputError
from vigil.streaming.sources.modbus_registers import ModbusRegister
from vigil.streaming.sources.submission import SourceRecord, submit_record

try:
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusException
except ImportError as exc:
    msg = "the Modbus TCP source needs pymodbus: pip install 'vigil[plant]'"
    raise ImportError(msg) from exc

__all__ = ["ModbusDevice", "ModbusOptions", "ModbusRegister", "ModbusSource"]

log = logging.getLogger(__name__)

#: Gaps remembered per asset for :meth:`ModbusSource.status`.
GAPS_KEPT = 20
#: Modbus exception codes, as the standard names them.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


@dataclass(frozen=True)
class ModbusDevice:
    """One Modbus TCP device polled as one asset.

    Parameters
    ----------
    asset : str
        The Vigil device id.
    host : str
    sensors : mapping of str to ModbusRegister
        Sensor name → where its value is.
    port : int
    unit : int
        The unit (slave) id; a register may name another.
    poll_period : float
        Seconds between polls.
    timeout : float
        Seconds to wait for each response.
    asset_type : str, optional
        The model that scores the asset.
    reconnect_min, reconnect_max : float
        The back-off range, in seconds, between connection attempts. The default ceiling of 5 s keeps the
        first record after an outage of any length within 10 s of the device answering again (a wait of at
        most 5 s, a connection within ``timeout``, one poll period).
    """

    asset: str
    host: str
    sensors: Mapping[str, ModbusRegister]
    port: int = 502
    unit: int = 1
    poll_period: float = 1.0
    timeout: float = 1.0
    asset_type: str | None = None
    reconnect_min: float = 0.5
    reconnect_max: float = 5.0

    def __post_init__(self) -> None:
        where = f"Modbus device {self.asset!r} ({self.host}:{self.port})"
        if not self.sensors:
            msg = f"{where} maps no sensor to a register"
            raise InvalidInputError(msg)
        for name, register in self.sensors.items():
            if not isinstance(register, ModbusRegister):
                msg = f"{where}: sensor {name!r} must map to a ModbusRegister, got {type(register).__name__}"
                raise InvalidInputError(msg)
        for name, value in (("poll_period", self.poll_period), ("timeout", self.timeout)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                msg = f"{where}: {name} must be a positive number of seconds, got {value!r}"
                raise InvalidInputError(msg)
        if not 0 < self.reconnect_min <= self.reconnect_max:
            msg = f"{where}: reconnect_min must be > 0 and at most reconnect_max"
            raise InvalidInputError(msg)
        if not 0 <= self.unit <= 255:
            msg = f"{where}: unit must be 0 to 255, got {self.unit!r}"
            raise InvalidInputError(msg)


@dataclass(frozen=True)
class ModbusOptions:
    """The Modbus TCP devices to poll."""

    devices: tuple[ModbusDevice, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for device in self.devices:
            if device.asset in seen:
                msg = f"Modbus asset {device.asset!r} is polled twice"
                raise InvalidInputError(msg)
            seen.add(device.asset)


@dataclass
class _DeviceState:
    connected: bool = False
    since: float | None = None
    reason: str = "not connected yet"
    gap_reason: str = ""
    records: int = 0
    missing_values: int = 0
    overruns: int = 0
    connections: int = 0
    last_time: float | None = None
    gap_started: float | None = None
    gaps: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=GAPS_KEPT))


class _ConnectionLost(Exception):
    """The device stopped answering in the middle of a poll."""


class ModbusSource:
    """Feed a :class:`~vigil.streaming.runtime.Runtime` by polling Modbus TCP devices.

    Parameters
    ----------
    runtime : Runtime
        Anything with :meth:`~vigil.streaming.runtime.Runtime.enqueue`.
    options : ModbusOptions
    on_done : callable, optional
        Called with each record's outcomes once the runtime has committed them.
    """

    def __init__(
        self, runtime: Any, options: ModbusOptions, *, on_done: Callable[[list[Any]], None] | None = None
    ) -> None:
        self.runtime = runtime
        self.options = options
        self.on_done = on_done
        self._states = {device.asset: _DeviceState() for device in options.devices}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> ModbusSource:
        """Start polling in a background thread (connections are made, and retried, there)."""
        if self._thread is None:
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(ready,), name="vigil-modbus", daemon=True)
            self._thread.start()
            ready.wait(10)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and close the connections."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)
        self._thread = None

    def wait_connected(self, timeout: float) -> bool:
        """Wait until every device is connected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(state.connected for state in self._states.values()):
                    return True
            time.sleep(0.02)  # polling the devices' connection flags, with a deadline
        return False

    def status(self) -> dict[str, Any]:
        """Per asset: connected, since when, why not, records, missing values, overruns, connections and gaps."""
        with self._lock:
            assets = {
                name: {
                    "connected": state.connected,
                    "since": state.since,
                    "reason": "" if state.connected else state.reason,
                    "records": state.records,
                    "missing_values": state.missing_values,
                    "overruns": state.overruns,
                    "connections": state.connections,
                    "last_time": state.last_time,
                    "gaps": list(state.gaps),
                }
                for name, state in self._states.items()
            }
        return {"modbus": {"running": self._thread is not None, "assets": assets}}

    # -- the polling loop (its own thread) ------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        ready.set()
        tasks = [asyncio.create_task(self._poll_device(device)) for device in self.options.devices]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll_device(self, device: ModbusDevice) -> None:
        # pymodbus' own retries and reconnection are off: this loop owns the back-off, so that it can report
        # every lost connection and gap.
        client = AsyncModbusTcpClient(
            device.host, port=device.port, timeout=device.timeout, retries=0, reconnect_delay=0
        )
        delay = device.reconnect_min
        try:
            while True:
                if not client.connected and not await client.connect():
                    self._lost(device, f"cannot connect to {device.host}:{device.port}")
                elif await self._poll_on_schedule(device, client):
                    delay = device.reconnect_min  # it answered: the next loss starts the back-off afresh
                    continue
                # Refused, or connected but not answering: wait longer each time, up to reconnect_max.
                await asyncio.sleep(delay)
                delay = min(2 * delay, device.reconnect_max)
        except asyncio.CancelledError:
            pass
        finally:
            client.close()

    async def _poll_on_schedule(self, device: ModbusDevice, client: Any) -> bool:
        """Poll at every tick of the device's period until the connection is lost; True if a poll succeeded."""
        next_tick = time.monotonic()
        answered = False
        while True:
            try:
                record = await self._poll(device, client)
            except _ConnectionLost as exc:
                client.close()
                self._lost(device, str(exc))
                return answered
            if not answered:
                answered = True
                self._connected(device, record.time)  # the gap ends with the first poll that was answered
            await asyncio.to_thread(submit_record, self.runtime, record, f"modbus:{device.asset}", on_done=self.on_done)
            next_tick += device.poll_period
            now = time.monotonic()
            if now > next_tick:  # the poll took longer than the period: skip the ticks it missed
                missed = math.ceil((now - next_tick) / device.poll_period)
                next_tick += missed * device.poll_period
                with self._lock:
                    self._states[device.asset].overruns += missed
            await asyncio.sleep(next_tick - now)

    async def _poll(self, device: ModbusDevice, client: Any) -> SourceRecord:
        stamp = time.time()
        readings: dict[str, float] = {}
        missing: dict[str, str] = {}
        for sensor, register in device.sensors.items():
            unit = device.unit if register.unit is None else register.unit
            read = client.read_holding_registers if register.table == "holding" else client.read_input_registers
            try:
                response = await read(register.register, count=register.count, device_id=unit)
            except (TimeoutError, ModbusException, OSError) as exc:
                msg = f"{register.label()} of unit {unit} at {device.host}:{device.port}: {exc}"
                raise _ConnectionLost(msg) from exc
            if response.isError():
                code = getattr(response, "exception_code", None)
                name = EXCEPTION_NAMES.get(code, "an exception response") if code is not None else "an error"
                missing[sensor] = f"{register.label()} of unit {unit}: {name} (Modbus exception code {code})"
                continue
            words = list(response.registers)
            if len(words) != register.count:
                missing[sensor] = f"{register.label()} of unit {unit}: {len(words)} register(s) in the response"
                continue
            value = register.value(words)
            if not math.isfinite(value):
                missing[sensor] = f"{register.label()} of unit {unit} holds {value}"
                continue
            readings[sensor] = value
        with self._lock:
            state = self._states[device.asset]
            state.records += 1
            state.missing_values += len(missing)
            state.last_time = stamp
        return SourceRecord(device.asset, stamp, readings, missing, device.asset_type)

    # -- connection state -----------------------------------------------------------------------------

    def _connected(self, device: ModbusDevice, now: float) -> None:
        with self._lock:
            state = self._states[device.asset]
            if state.gap_started is not None:
                state.gaps.append({"from": state.gap_started, "to": now, "reason": state.gap_reason})
                state.gap_started = None
            state.connected, state.since, state.reason = True, now, ""
            state.connections += 1
        log.info("connected to Modbus device %s at %s:%d", device.asset, device.host, device.port)

    def _lost(self, device: ModbusDevice, reason: str) -> None:
        now = time.time()
        with self._lock:
            state = self._states[device.asset]
            if state.connected:
                log.warning("Modbus device %s is offline: %s; reconnecting", device.asset, reason)
                state.gap_started, state.gap_reason = now, reason  # the gap keeps the reason it started with
                state.connected, state.since = False, now
            state.reason = reason
