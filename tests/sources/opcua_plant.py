"""A real asyncua server for the OPC UA source tests, run in its own thread and event loop.

Each node ``ns=2;s=<asset>.<sensor>`` is written every ``period`` seconds with ``generation * 1000 + step``,
so a test can tell the values of a restarted server from the old one's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from asyncua import Server, ua

logging.getLogger("asyncua").setLevel(logging.ERROR)  # its servers log every session at INFO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PlantServer:
    """An OPC UA server whose variables change every ``period`` seconds; ``bad`` nodes report BadSensorFailure,
    ``text`` nodes (set before start) hold a string: a node whose type is not what the plant file maps."""

    def __init__(self, port: int, assets: dict[str, list[str]], *, period: float = 0.1, generation: int = 1) -> None:
        self.port = port
        self.assets = assets
        self.period = period
        self.generation = generation
        self.bad: set[str] = set()
        self.text: set[str] = set()
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/vigil/"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> PlantServer:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            msg = "the OPC UA test server did not start"
            raise RuntimeError(msg)
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._thread = None

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self.error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        idx = await server.register_namespace("urn:vigil:test-plant")
        variables = {}
        for asset, sensors in self.assets.items():
            obj = await server.nodes.objects.add_object(idx, asset)
            for sensor in sensors:
                name = f"{asset}.{sensor}"
                initial = "running" if name in self.text else 0.0
                variables[name] = await obj.add_variable(ua.NodeId(name, idx), sensor, initial)
        async with server:
            self._ready.set()
            step = 0
            while not self._stop.is_set():
                for name, variable in variables.items():
                    if name in self.text:
                        continue  # keeps its string
                    if name in self.bad:
                        status = ua.StatusCode(ua.StatusCodes.BadSensorFailure)
                        value = ua.DataValue(ua.Variant(0.0, ua.VariantType.Double), StatusCode=status)
                    else:
                        value = ua.DataValue(ua.Variant(float(self.generation * 1000 + step), ua.VariantType.Double))
                    await variable.write_value(value)
                step += 1
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self.period)
                except TimeoutError:
                    pass
