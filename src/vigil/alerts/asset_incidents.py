"""Asset incidents: alerts of one asset from several modalities that overlap in time, grouped as one.

A pump's telemetry deviates while its controller is port-scanned and its inspection camera sees a bad part:
three alerts from three detectors, one thing for an operator to look at. :class:`IncidentCorrelator` reads
every alert the :class:`~vigil.alerts.sink.AlertSink` stores, attributes it to an asset (:class:`AssetMap`)
and groups the alerts of one asset whose time spans overlap, or come within ``window_seconds`` of each
other. A group becomes an :class:`AssetIncident` once its alerts come from at least ``min_modalities``
modalities (telemetry, network, camera); it grows as alerts join or grow, two groups that a new alert
bridges merge into the one that started first, and an incident closes once all its alerts have closed and
the evidence clock (the latest alert end seen) has moved more than ``window_seconds`` past it.

Grouping is the connected components of "same asset and at most ``window_seconds`` apart", so it does not
depend on the order in which the alerts arrive, as long as an alert arrives before its group has closed.
The incident's id is derived from its asset and its first alert and never changes once opened; an incident
absorbed by a merge stays in the store with status ``merged`` and the id of the one it joined.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

from vigil.alerts.model import Alert
from vigil.errors import InvalidInputError
from vigil.times import format_time, parse_time

__all__ = [
    "DEFAULT_INCIDENT_WINDOW",
    "INCIDENT_STATUSES",
    "AssetIncident",
    "AssetMap",
    "IncidentCorrelator",
    "IncidentEvent",
    "device_asset",
    "incident_id",
]

#: Seconds two alerts of one asset may lie apart and still form one incident (``--incident-window``).
DEFAULT_INCIDENT_WINDOW = 300.0

#: ``open`` (alerts may still join), ``closed`` (all its alerts ended, the window passed), ``merged``
#: (absorbed by the incident named in ``merged_into``).
INCIDENT_STATUSES: tuple[str, ...] = ("open", "closed", "merged")


def device_asset(device: str) -> str:
    """The asset part of a device id: what comes before the first ``/`` (the whole id when there is none).

    Examples
    --------
    >>> device_asset("pump2/plc"), device_asset("pump2/camera-1"), device_asset("10.0.0.12")
    ('pump2', 'pump2', '10.0.0.12')
    """
    return device.split("/", 1)[0]


class AssetMap:
    """Which asset an alert is about.

    Parameters
    ----------
    devices : mapping of str to str, optional
        Device → asset, for devices whose id does not name the asset (a controller's IP address, a camera's
        serial number). Checked first.
    line_devices : collection of str
        Devices that publish the sensors of several assets named ``ASSET.SENSOR`` (a line's PLC, a gateway):
        their telemetry alerts belong to the asset of the sensor that drove them most.

    Without an entry, the asset is the device id's asset part (:func:`device_asset`).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    >>> def alert(device, modality="telemetry", features=()):
    ...     return Alert(id=device, device=device, start=t, end=t, peak_time=t, score=2.0, threshold=1.0,
    ...                  model_version="m1", top_features=list(features), modality=modality)
    >>> assets = AssetMap({"10.0.0.12": "pump2"}, line_devices=["line-1"])
    >>> assets.asset_of(alert("10.0.0.12", "network"))
    'pump2'
    >>> assets.asset_of(alert("line-1", features=[("pump2.flow_m3h", 0.7), ("header.flow_m3h", 0.2)]))
    'pump2'
    >>> assets.asset_of(alert("pump3/vibration"))
    'pump3'
    """

    def __init__(self, devices: Mapping[str, str] | None = None, *, line_devices: Collection[str] = ()) -> None:
        self.devices = dict(devices or {})
        self.line_devices = frozenset(line_devices)
        for device, asset in self.devices.items():
            if not isinstance(device, str) or not isinstance(asset, str) or not device or not asset:
                msg = f"the asset map needs non-empty text for devices and assets, got {device!r}: {asset!r}"
                raise InvalidInputError(msg)

    @classmethod
    def from_file(cls, path: str | Path) -> AssetMap:
        """Read ``{"devices": {DEVICE: ASSET, ...}, "line_devices": [DEVICE, ...]}`` from a JSON file."""
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            msg = f"cannot read the asset map {path}: {exc}"
            raise InvalidInputError(msg) from exc
        unknown = sorted(set(document) - {"devices", "line_devices"}) if isinstance(document, dict) else []
        if not isinstance(document, dict) or unknown:
            msg = f"the asset map {path} must be an object with 'devices' and 'line_devices' (unknown: {unknown})"
            raise InvalidInputError(msg)
        devices, lines = document.get("devices", {}), document.get("line_devices", [])
        if not isinstance(devices, dict) or not isinstance(lines, list) or not all(isinstance(d, str) for d in lines):
            msg = f"in the asset map {path}, 'devices' must map text to text and 'line_devices' list text"
            raise InvalidInputError(msg)
        return cls(devices, line_devices=lines)

    def asset_of(self, alert: Alert) -> str:
        """The asset of ``alert`` (see the class description)."""
        if alert.device in self.devices:
            return self.devices[alert.device]
        if alert.device in self.line_devices and alert.modality == "telemetry" and alert.top_features:
            asset, sep, _ = alert.top_features[0][0].partition(".")
            if sep and asset:
                return asset
        return device_asset(alert.device)

    def __repr__(self) -> str:
        return f"AssetMap({len(self.devices)} devices, {len(self.line_devices)} line devices)"


def incident_id(asset: str, first_alert: str) -> str:
    """The id of the incident of ``asset`` opened around the alert ``first_alert``: 16 hex digits.

    Examples
    --------
    >>> incident_id("pump2", "a1") == incident_id("pump2", "a1"), len(incident_id("pump2", "a1"))
    (True, 16)
    """
    key = "\x1f".join(("incident", asset, first_alert))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class AssetIncident:
    """Alerts of one asset, from several modalities, that overlap in time.

    Parameters
    ----------
    id : str
        See :func:`incident_id`.
    asset : str
    start, end : datetime
        The earliest start and the latest end of its alerts.
    status : {"open", "closed", "merged"}
    alert_ids : list of str
        Its alerts, in the order of their start.
    modalities, devices : list of str
        Those of its alerts, sorted.
    merged_into : str
        The incident that absorbed this one (status ``merged``), else ``""``.
    revision : int
        Grows with every change, so that the store never replaces a newer state by an older one.
    """

    id: str
    asset: str
    start: datetime
    end: datetime
    status: str = "open"
    alert_ids: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    merged_into: str = ""
    revision: int = 1

    def __post_init__(self) -> None:
        if self.status not in INCIDENT_STATUSES:
            msg = f"incident {self.id!r} has status {self.status!r}; expected one of {', '.join(INCIDENT_STATUSES)}"
            raise InvalidInputError(msg)
        self.start = parse_time(self.start, f"incident {self.id!r} start")
        self.end = parse_time(self.end, f"incident {self.id!r} end")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict with ISO 8601 times."""
        return {
            "id": self.id,
            "asset": self.asset,
            "start": format_time(self.start),
            "end": format_time(self.end),
            "status": self.status,
            "alert_ids": list(self.alert_ids),
            "modalities": list(self.modalities),
            "devices": list(self.devices),
            "merged_into": self.merged_into,
            "revision": int(self.revision),
        }


class IncidentEvent(NamedTuple):
    """A change to an incident: ``opened``, ``grown`` (an alert joined or grew), ``closed`` or ``merged``."""

    kind: Literal["opened", "grown", "closed", "merged"]
    incident: AssetIncident


def _gap(start: datetime, end: datetime, other_start: datetime, other_end: datetime) -> float:
    """Seconds between two time spans; 0 when they overlap."""
    return max(0.0, (max(start, other_start) - min(end, other_end)).total_seconds())


@dataclass
class _Group:
    """A connected set of alerts of one asset; an incident once it spans enough modalities."""

    asset: str
    members: dict[str, Alert]
    incident: AssetIncident | None = None

    @property
    def start(self) -> datetime:
        return min(a.start for a in self.members.values())

    @property
    def end(self) -> datetime:
        return max(a.end for a in self.members.values())

    @property
    def modalities(self) -> set[str]:
        return {a.modality for a in self.members.values()}

    def ordered(self) -> list[Alert]:
        return sorted(self.members.values(), key=lambda a: (a.start, a.id))

    def describe(self, incident: AssetIncident) -> AssetIncident:
        """``incident`` with this group's members, span, modalities and devices."""
        ordered = self.ordered()
        return replace(
            incident,
            start=ordered[0].start,
            end=self.end,
            alert_ids=[a.id for a in ordered],
            modalities=sorted(self.modalities),
            devices=sorted({a.device for a in ordered}),
        )


def _snapshot(incident: AssetIncident) -> AssetIncident:
    return replace(incident, alert_ids=list(incident.alert_ids), modalities=list(incident.modalities))


class IncidentCorrelator:
    """Group stored alerts into asset incidents; thread-safe (every source's sink shares one).

    Parameters
    ----------
    assets : AssetMap, optional
        Which asset an alert is about; device ids' asset parts if None.
    window_seconds : float
        Alerts of one asset at most this many seconds apart belong to one incident
        (:data:`DEFAULT_INCIDENT_WINDOW`).
    min_modalities : int
        Fewest modalities among a group's alerts for it to be an incident (2: evidence of one kind alone is
        an alert, not an incident).

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> t = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    >>> def alert(id, device, modality, start, end, status="open"):
    ...     return Alert(id=id, device=device, start=t + timedelta(seconds=start), end=t + timedelta(seconds=end),
    ...                  peak_time=t + timedelta(seconds=start), score=2.0, threshold=1.0, model_version="m1",
    ...                  modality=modality, status=status)
    >>> correlator = IncidentCorrelator(AssetMap({"10.0.0.12": "pump2"}), window_seconds=60)
    >>> correlator.observe([alert("t1", "pump2", "telemetry", 0, 120)])
    []
    >>> [(e.kind, e.incident.asset, e.incident.modalities) for e in
    ...  correlator.observe([alert("n1", "10.0.0.12", "network", 150, 160, "closed")])]
    [('opened', 'pump2', ['network', 'telemetry'])]
    >>> correlator.observe([alert("t1", "pump2", "telemetry", 0, 200, "closed")])[0].kind
    'grown'
    >>> [e.kind for e in correlator.observe([alert("t9", "pump7", "telemetry", 300, 300)])]
    ['closed']
    """

    def __init__(
        self,
        assets: AssetMap | None = None,
        *,
        window_seconds: float = DEFAULT_INCIDENT_WINDOW,
        min_modalities: int = 2,
    ) -> None:
        if not isinstance(window_seconds, int | float) or not math.isfinite(window_seconds) or window_seconds < 0:
            msg = f"the incident window must be a finite number of seconds >= 0, got {window_seconds!r}"
            raise InvalidInputError(msg)
        if not isinstance(min_modalities, int) or min_modalities < 1:
            msg = f"min_modalities must be an integer >= 1, got {min_modalities!r}"
            raise InvalidInputError(msg)
        self.assets = assets if assets is not None else AssetMap()
        self.window_seconds = float(window_seconds)
        self.min_modalities = min_modalities
        self._groups: dict[str, list[_Group]] = {}
        self._asset_of: dict[str, str] = {}  # an alert keeps the asset it was first attributed to
        self._clock: datetime | None = None
        # The earliest end of a group whose alerts have all ended: no group can close before the clock has
        # moved a window past it, so the groups are only scanned then (None: no such group).
        self._next_expiry: datetime | None = None
        self._unsaved: dict[str, AssetIncident] = {}
        self._lock = threading.Lock()

    # -- what the sink calls --------------------------------------------------------------------------

    def observe(self, alerts: Iterable[Alert]) -> list[IncidentEvent]:
        """Take the latest state of some alerts; return the incident changes they cause, in order."""
        with self._lock:
            events: list[IncidentEvent] = []
            for alert in alerts:
                events += self._place(alert)
                if self._clock is None or alert.end > self._clock:
                    self._clock = alert.end
            events += self._close_expired()
            for event in events:
                self._unsaved[event.incident.id] = event.incident
            return events

    def unsaved(self) -> list[AssetIncident]:
        """The latest state of every incident changed since the store last took it."""
        with self._lock:
            return [_snapshot(i) for i in self._unsaved.values()]

    def saved(self, incidents: Iterable[AssetIncident]) -> None:
        """The store committed these states: forget them unless a newer one is waiting."""
        with self._lock:
            for incident in incidents:
                waiting = self._unsaved.get(incident.id)
                if waiting is not None and waiting.revision <= incident.revision:
                    del self._unsaved[incident.id]

    def close_all(self) -> list[IncidentEvent]:
        """Close every open incident (the end of a replay) and forget all groups."""
        with self._lock:
            events = [
                self._close(group) for groups in self._groups.values() for group in groups if group.incident is not None
            ]
            self._groups.clear()
            self._asset_of.clear()
            self._next_expiry = None
            for event in events:
                self._unsaved[event.incident.id] = event.incident
            return events

    def resume(self, incident: AssetIncident, members: Iterable[Alert]) -> None:
        """Take back an open incident that a previous run stored, with its stored alerts."""
        with self._lock:
            group = _Group(incident.asset, {a.id: a for a in members}, _snapshot(incident))
            if not group.members:
                return
            self._groups.setdefault(incident.asset, []).append(group)
            for alert_id in group.members:
                self._asset_of[alert_id] = incident.asset
            end = group.end
            if self._clock is None or end > self._clock:
                self._clock = end
            self._may_expire(group)

    def open_incidents(self) -> list[AssetIncident]:
        """Snapshots of the incidents still open."""
        with self._lock:
            return [_snapshot(g.incident) for groups in self._groups.values() for g in groups if g.incident is not None]

    # -- grouping -------------------------------------------------------------------------------------

    def _place(self, alert: Alert) -> list[IncidentEvent]:
        asset = self._asset_of.setdefault(alert.id, self.assets.asset_of(alert))
        groups = self._groups.setdefault(asset, [])
        home = next((g for g in groups if alert.id in g.members), None)
        if home is not None:
            before = home.members[alert.id]
            if (before.start, before.end, before.status) == (alert.start, alert.end, alert.status):
                return []
        linked = [g for g in groups if g is home or self._links(g, alert)]
        for group in linked:
            groups.remove(group)
        merged = _Group(asset, {})
        for group in linked:
            merged.members.update(group.members)
        merged.members[alert.id] = alert
        groups.append(merged)
        self._may_expire(merged)
        # The incident that started first survives a merge; the others point to it.
        incidents = sorted((g.incident for g in linked if g.incident is not None), key=lambda i: (i.start, i.id))
        events: list[IncidentEvent] = []
        if incidents:
            kept = incidents[0]
            merged.incident = replace(merged.describe(kept), revision=kept.revision + 1)
            if merged.incident.to_dict() | {"revision": 0} != kept.to_dict() | {"revision": 0}:
                events.append(IncidentEvent("grown", _snapshot(merged.incident)))
            else:
                merged.incident = kept  # only an alert's status changed: nothing to report
            for other in incidents[1:]:
                gone = replace(other, status="merged", merged_into=kept.id, revision=other.revision + 1)
                events.append(IncidentEvent("merged", _snapshot(gone)))
        elif len(merged.modalities) >= self.min_modalities:
            first = merged.ordered()[0]
            opened = AssetIncident(incident_id(asset, first.id), asset, first.start, first.end)
            merged.incident = merged.describe(opened)
            events.append(IncidentEvent("opened", _snapshot(merged.incident)))
        return events

    def _links(self, group: _Group, alert: Alert) -> bool:
        # The group's members are connected with gaps of at most the window, so an alert within the window
        # of the group's whole span is within the window of one of its members.
        return _gap(group.start, group.end, alert.start, alert.end) <= self.window_seconds

    def _may_expire(self, group: _Group) -> None:
        if all(a.status != "open" for a in group.members.values()):
            end = group.end
            if self._next_expiry is None or end < self._next_expiry:
                self._next_expiry = end

    def _close_expired(self) -> list[IncidentEvent]:
        if self._clock is None or self._next_expiry is None:
            return []
        horizon = self._clock - timedelta(seconds=self.window_seconds)
        if not self._next_expiry < horizon:
            return []
        self._next_expiry = None
        events = []
        for asset, groups in list(self._groups.items()):
            keep = []
            for group in groups:
                ended = all(a.status != "open" for a in group.members.values())
                if not (ended and group.end < horizon):
                    keep.append(group)
                    if ended:
                        self._may_expire(group)
                    continue
                if group.incident is not None:
                    events.append(self._close(group))
                for alert_id in group.members:
                    self._asset_of.pop(alert_id, None)
            if keep:
                self._groups[asset] = keep
            else:
                del self._groups[asset]
        return events

    @staticmethod
    def _close(group: _Group) -> IncidentEvent:
        assert group.incident is not None
        group.incident.status = "closed"
        group.incident.revision += 1
        return IncidentEvent("closed", _snapshot(group.incident))

    def __repr__(self) -> str:
        groups = sum(len(g) for g in self._groups.values())
        return f"IncidentCorrelator(window_seconds={self.window_seconds:g}, {groups} groups, {self.assets!r})"
