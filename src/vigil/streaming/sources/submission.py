"""The one path from a source's assembled readings to the runtime: a record, or a dead letter with the reason.

A plant source (Sparkplug B, Modbus) knows more than the runtime about why a sensor has no value — a register
that could not be read, a metric that is null or absent from its birth certificate. It hands a
:class:`SourceRecord` that keeps those reasons beside the readings, and :func:`submit_record` decides once
for every source: a complete record goes to :meth:`~vigil.streaming.runtime.Runtime.enqueue` as the
documented JSON record (:mod:`vigil.streaming.messages`); a record with a missing sensor is refused as a
``sensors_mismatch`` dead letter whose reason names each missing sensor and its cause. No value is ever
filled in for a missing sensor.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.streaming.messages import Rejection

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
    """The record as the runtime's JSON schema (the readings that exist, none invented).

    Examples
    --------
    >>> record_body(SourceRecord("pump-1", 1.5, {"temp_c": 41.5}, asset_type="pump"))
    b'{"device": "pump-1", "time": 1.5, "readings": {"temp_c": 41.5}, "asset_type": "pump"}'
    """
    body: dict[str, Any] = {"device": record.asset, "time": record.time, "readings": dict(record.readings)}
    if record.asset_type is not None:
        body["asset_type"] = record.asset_type
    # allow_nan stays on: a non-finite reading reaches the runtime, which refuses it with its own reason.
    return json.dumps(body).encode("utf-8")


def submit_record(
    runtime: Any,
    record: SourceRecord,
    source: str,
    *,
    on_done: Callable[[list[Any]], None] | None = None,
) -> bool:
    """Queue a complete record for scoring, or an incomplete one as a dead letter; True if it was queued.

    Blocks while the runtime's queue is full (the source slows down rather than dropping readings); returns
    False only when the runtime is stopping.
    """
    body = record_body(record)
    try:
        if record.complete:
            runtime.enqueue(body, source, on_done=on_done, timeout=None)
        else:
            reason = f"{record.asset}: no value for {len(record.missing)} sensor(s) from {source}: {record.reason()}"
            rejection = Rejection("sensors_mismatch", reason, record.asset)
            future = runtime.reject(rejection, source, body)
            if on_done is not None:
                future.add_done_callback(lambda done: on_done(done.result()))
    except queue.Full:
        log.warning("the runtime is stopping: a record of %s from %s was not queued", record.asset, source)
        return False
    return True
