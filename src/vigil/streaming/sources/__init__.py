"""Sources: transports that turn a plant's protocol into Vigil records for the runtime.

Every source of a running service has the same small interface, :class:`Source`: the service starts them
after the runtime (so nothing arrives before it can be scored), reports their :meth:`~Source.status` in
``/health``, and stops them first. The sources: MQTT (:mod:`.mqtt`), OPC UA
(:mod:`.opcua`), Sparkplug B (:mod:`.sparkplug`), Modbus TCP (:mod:`.modbus`) and packet captures
(:mod:`.capture`); camera frames arrive by HTTP and are scored by :mod:`.camera` per request.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

__all__ = ["Source"]


@runtime_checkable
class Source(Protocol):
    """What the service needs of a source."""

    def start(self) -> Self:
        """Begin delivering records to the runtime (in the background); return the source."""
        ...

    def stop(self) -> None:
        """Stop delivering; what was delivered stays delivered."""
        ...

    def status(self) -> dict[str, Any]:
        """Connection state and counters, as ``/health`` shows them."""
        ...
