"""An alert, the change events that sinks receive, and the deterministic alert id.

An :class:`Alert` is one incident on one asset (device), seen by one model version: a sustained telemetry
deviation grown by :class:`~vigil.alerts.tracker.AlertTracker`, a typed network incident from a capture, or
a defective camera frame. Its id is derived from device, model version and start time, so replaying the same
evidence through the same model gives the same ids and the idempotent store does not fill up with duplicates.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from vigil.errors import InvalidInputError
from vigil.times import format_time, parse_time

__all__ = [
    "MODALITIES",
    "STATUSES",
    "VERDICTS",
    "Alert",
    "AlertEvent",
    "alert_id",
]

#: Every status an alert can have: ``open`` (still growing), ``closed`` (ended, no verdict yet),
#: ``confirmed`` and ``false_positive`` (an operator's verdict).
STATUSES: tuple[str, ...] = ("open", "closed", "confirmed", "false_positive")

#: The kinds of evidence an alert can come from. An alert stored before Vigil recorded it has ``""``.
MODALITIES: tuple[str, ...] = ("telemetry", "network", "camera")

#: What an operator can record about an alert; ``note`` leaves the status unchanged.
VERDICTS: tuple[str, ...] = ("confirmed", "false_positive", "note")

_ALERT_FIELDS = (
    "id",
    "device",
    "start",
    "end",
    "peak_time",
    "score",
    "threshold",
    "model_version",
    "top_features",
    "incident_type",
    "status",
    "n_points",
    "feedback",
    "explanation",
    "modality",
)


def alert_id(device: str, model_version: str, start: datetime) -> str:
    """Return the deterministic id of the alert that ``model_version`` opened on ``device`` at ``start``.

    The id is the first 16 hex digits of a SHA-256 over the three values, so a replayed stream gives the
    same ids and the store treats the replay as updates, not new alerts.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    >>> alert_id("pump2", "ae-3", t) == alert_id("pump2", "ae-3", t)
    True
    >>> len(alert_id("pump2", "ae-3", t))
    16
    """
    key = "\x1f".join((device, model_version, format_time(start)))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class Alert:
    """One incident: a sustained anomaly on one device, seen by one model version.

    Parameters
    ----------
    id : str
        Deterministic id, see :func:`alert_id`.
    device : str
        The device (asset) the alert is about.
    start, end : datetime
        First and last flagged time, timezone-aware UTC.
    peak_time : datetime
        Time of the highest score.
    score : float
        The peak score.
    threshold : float
        The threshold in force at the peak point (thresholds may adapt over time).
    model_version : str
        The model version that produced the scores.
    top_features : list of (str, float)
        Largest first: each feature's share of the attribution *accumulated over every flagged point of
        the alert* (the contributions are summed, then normalised), so a sustained deviation is described
        by what drove it throughout rather than by one noisy peak point. The shares of all features sum
        to 1; only the leading few are kept.
    incident_type : str
        Kind of incident, from the tracker's classifier (see :func:`default_incident_type`).
    status : {"open", "closed", "confirmed", "false_positive"}
        ``open`` while the alert can still grow, ``closed`` once it ended without a verdict yet, and an
        operator's verdict after that.
    n_points : int
        Number of flagged points in the alert.
    feedback : list of dict
        Verdict history, oldest first; each entry has ``time`` (ISO 8601 text), ``verdict``, ``note`` and
        ``user``.
    explanation : str
        A human-readable sentence about what drove the alert.
    modality : {"telemetry", "network", "camera"}
        The kind of evidence: sensor readings, packet captures or camera frames (``""`` for an alert
        stored before Vigil recorded it). Asset incidents group alerts of several modalities.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    >>> alert = Alert(id="a1", device="pump2", start=t, end=t, peak_time=t, score=4.2, threshold=1.0,
    ...               model_version="ae-3", top_features=[("pump2.flow_m3h", 0.9)])
    >>> Alert.from_dict(alert.to_dict()) == alert
    True
    >>> alert.to_dict()["start"]
    '2024-05-01T12:00:00.000000+00:00'
    """

    id: str
    device: str
    start: datetime
    end: datetime
    peak_time: datetime
    score: float
    threshold: float
    model_version: str
    top_features: list[tuple[str, float]] = field(default_factory=list)
    incident_type: str = ""
    status: str = "open"
    n_points: int = 1
    feedback: list[dict[str, str]] = field(default_factory=list)
    explanation: str = ""
    modality: str = "telemetry"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            msg = f"alert {self.id!r} has status {self.status!r}; expected one of {', '.join(STATUSES)}"
            raise InvalidInputError(msg)
        if self.modality not in MODALITIES and self.modality != "":
            msg = f"alert {self.id!r} has modality {self.modality!r}; expected one of {', '.join(MODALITIES)}"
            raise InvalidInputError(msg)
        for name in ("start", "end", "peak_time"):
            setattr(self, name, parse_time(getattr(self, name), f"alert {self.id!r} {name}"))
        # JSON has no tuples: normalise here so that a round trip through to_dict compares equal.
        self.top_features = [(str(name), float(share)) for name, share in self.top_features]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict: ISO 8601 times, ``top_features`` as ``[name, share]`` pairs."""
        return {
            "id": self.id,
            "device": self.device,
            "start": format_time(self.start),
            "end": format_time(self.end),
            "peak_time": format_time(self.peak_time),
            "score": float(self.score),
            "threshold": float(self.threshold),
            "model_version": self.model_version,
            "top_features": [[name, float(share)] for name, share in self.top_features],
            "incident_type": self.incident_type,
            "status": self.status,
            "n_points": int(self.n_points),
            "feedback": [dict(entry) for entry in self.feedback],
            "explanation": self.explanation,
            "modality": self.modality,
        }

    def copy(self, *, status: str | None = None, feedback: list[dict[str, str]] | None = None) -> Alert:
        """A snapshot that shares nothing mutable with this alert, with another ``status`` or ``feedback``.

        Cheaper than :func:`copy.deepcopy`: the fields were checked when this alert was made.
        """
        if status is not None and status not in STATUSES:
            msg = f"alert {self.id!r} has status {status!r}; expected one of {', '.join(STATUSES)}"
            raise InvalidInputError(msg)
        twin = copy.copy(self)
        twin.top_features = list(self.top_features)
        twin.feedback = [dict(entry) for entry in (self.feedback if feedback is None else feedback)]
        if status is not None:
            twin.status = status
        return twin

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output (or its JSON); missing fields are an error."""
        missing = [name for name in _ALERT_FIELDS if name not in data]
        if missing:
            msg = f"alert record is missing {', '.join(missing)}"
            raise InvalidInputError(msg)
        alert_name = data["id"]
        try:
            top_features = [(str(name), float(share)) for name, share in data["top_features"]]
            feedback = [dict(entry) for entry in data["feedback"]]
            score = float(data["score"])
            threshold = float(data["threshold"])
            n_points = int(data["n_points"])
        except (TypeError, ValueError) as exc:
            msg = f"alert record {alert_name!r} has a malformed field: {exc}"
            raise InvalidInputError(msg) from exc
        return cls(
            id=str(alert_name),
            device=str(data["device"]),
            start=parse_time(data["start"], f"alert {alert_name!r} start"),
            end=parse_time(data["end"], f"alert {alert_name!r} end"),
            peak_time=parse_time(data["peak_time"], f"alert {alert_name!r} peak_time"),
            score=score,
            threshold=threshold,
            model_version=str(data["model_version"]),
            top_features=top_features,
            incident_type=str(data["incident_type"]),
            status=str(data["status"]),
            n_points=n_points,
            feedback=feedback,
            explanation=str(data["explanation"]),
            modality=str(data["modality"]),
        )


class AlertEvent(NamedTuple):
    """A change to an alert: ``kind`` is ``"opened"``, ``"updated"`` or ``"closed"``.

    ``alert`` is a snapshot taken when the event happened; later points do not change it.
    """

    kind: Literal["opened", "updated", "closed"]
    alert: Alert
