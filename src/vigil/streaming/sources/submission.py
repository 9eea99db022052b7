"""From a source's assembled readings to the runtime's JSON record, with the reason for every missing value.

A plant source (Sparkplug B, Modbus) knows more than the runtime about why a sensor has no value — a register
that could not be read, a metric that is null or absent from its birth certificate. It hands a
:class:`SourceRecord` that keeps those reasons beside the readings; :func:`submit_record` writes it as the
documented record (:mod:`vigil.streaming.messages`), a missing sensor as a ``null`` reading with its reason in
``quality``, and queues it with :meth:`~vigil.streaming.runtime.Runtime.enqueue`. The runtime applies the
sensor's missing-value policy; no value is ever filled in here.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SourceRecord", "record_body", "submit_record"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceRecord:
    """One asset's readings at one time, as a source assembled them.

    Parameters
    ----------
    asset : str
        The Vigil device id of the asset.
    time : float
        POSIX seconds of the readings (the source's own time stamp where the protocol carries one).
    readings : mapping of str to float
        The sensors that have a value.
    missing : mapping of str to str
        The sensors that have none, each with the reason (``"holding register 7: exception response 2"``).
    asset_type : str, optional
        The model to score with; else the runtime's routes decide.

    Examples
    --------
    >>> SourceRecord("pump-1", 0.0, {"temp_c": 41.5}, {"flow": "metric 'Flow' is null"}).complete
    False
    """

    asset: str
    time: float
    readings: Mapping[str, float]
    missing: Mapping[str, str] = field(default_factory=dict)
    asset_type: str | None = None

    @property
    def complete(self) -> bool:
        """True when every sensor has a value."""
        return not self.missing

    def reason(self) -> str:
        """Why the record is incomplete, sensor by sensor (empty when it is complete)."""
        return "; ".join(f"sensor {sensor!r}: {why}" for sensor, why in sorted(self.missing.items()))


def record_body(record: SourceRecord) -> bytes:
    """The record in the runtime's JSON schema: a missing sensor is ``null``, with its reason in ``quality``.

    Examples
    --------
    >>> record_body(SourceRecord("pump-1", 1.5, {"temp_c": 41.5}, asset_type="pump"))
    b'{"device": "pump-1", "time": 1.5, "readings": {"temp_c": 41.5}, "asset_type": "pump"}'
    >>> record_body(SourceRecord("pump-1", 1.5, {"temp_c": 41.5}, {"flow": "register 7: timeout"}))
    b'{"device": "pump-1", "time": 1.5, "readings": {"temp_c": 41.5, "flow": null}, "quality": {"flow": "register 7: timeout"}}'
    """  # noqa: E501
    readings: dict[str, float | None] = dict(record.readings)
    readings.update(dict.fromkeys(record.missing))
    body: dict[str, Any] = {"device": record.asset, "time": record.time, "readings": readings}
    if record.asset_type is not None:
        body["asset_type"] = record.asset_type
    if record.missing:
        body["quality"] = dict(record.missing)
    # allow_nan stays on: a non-finite reading reaches the runtime, which refuses it with its own reason.
    return json.dumps(body).encode("utf-8")


def submit_record(
    runtime: Any,
    record: SourceRecord,
    source: str,
    *,
    on_done: Callable[[list[Any]], None] | None = None,
) -> bool:
    """Queue the record for the runtime; True if it was queued.

    Blocks while the runtime's queue is full (the source slows down rather than dropping readings); returns
    False only when the runtime is stopping.
    """
    try:
        runtime.enqueue(record_body(record), source, on_done=on_done, timeout=None)
    except queue.Full:
        log.warning("the runtime is stopping: a record of %s from %s was not queued", record.asset, source)
        return False
    return True
