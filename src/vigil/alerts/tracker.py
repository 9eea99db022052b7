"""The alert tracker: flagged points grouped into one growing alert per sustained anomaly and device.

A detector flags points; an operator wants incidents. :class:`AlertTracker` turns the stream of
``(device, time, score, threshold, is_anomaly, contributions)`` into :class:`~vigil.alerts.model.Alert`
records: the first flagged point of a device opens an alert, later flagged points make it grow (end, number
of points, peak score, top features), and it closes once no flagged point has arrived for more than
``device_gap_seconds``. Each change is reported as an :class:`~vigil.alerts.model.AlertEvent` so that the
sink (store, then topics and webhooks) sees ``opened``, ``updated`` and ``closed`` in order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vigil.alerts.model import Alert, AlertEvent, alert_id
from vigil.errors import InvalidInputError
from vigil.times import format_time, parse_time

__all__ = ["SINGLE_SENSOR_SHARE", "AlertTracker", "default_incident_type"]

#: One feature holding at least this share of the attribution makes a single-sensor deviation.
SINGLE_SENSOR_SHARE = 0.6


def default_incident_type(top_features: Sequence[tuple[str, float]]) -> str:
    """Name the kind of incident from the attribution shares, largest first.

    One feature holding at least 60 % of the share is a ``"single-sensor deviation (<feature>)"``;
    anything else is a ``"multi-sensor deviation"``. Without attribution the incident is an
    ``"unattributed deviation"``. Pass another function as ``AlertTracker(classify=...)`` to replace it.

    Examples
    --------
    >>> default_incident_type([("pump2.flow_m3h", 0.82), ("pump2.rpm", 0.1)])
    'single-sensor deviation (pump2.flow_m3h)'
    >>> default_incident_type([("pump2.flow_m3h", 0.45), ("pump2.rpm", 0.4)])
    'multi-sensor deviation'
    """
    if not top_features:
        return "unattributed deviation"
    name, share = top_features[0]
    if share >= SINGLE_SENSOR_SHARE:
        return f"single-sensor deviation ({name})"
    return "multi-sensor deviation"


def _join_names(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _explanation(top_features: Sequence[tuple[str, float]], score: float, threshold: float) -> str:
    """One sentence: the fewest leading features (at most three) that cover half the share, and the peak."""
    if threshold > 0:
        peak = f"peak {score / threshold:.1f}× threshold"
    else:
        peak = f"peak score {score:.3g}, threshold {threshold:.3g}"
    if not top_features:
        return f"No feature attribution available ({peak})"
    names: list[str] = []
    covered = 0.0
    for name, share in top_features[:3]:
        names.append(name)
        covered += share
        if covered >= 0.5:
            break
    return f"{_join_names(names)} drove {covered * 100:.0f} % of the score ({peak})"


@dataclass
class _DeviceState:
    last_time: datetime
    alert: Alert | None = None
    totals: dict[str, float] = field(default_factory=dict)


class AlertTracker:
    """Group flagged points into one growing :class:`Alert` per sustained anomaly and device.

    Parameters
    ----------
    device_gap_seconds : float
        An open alert closes when more than this many seconds pass after its last flagged point. The
        gap is checked when a later point of the same device arrives, and by :meth:`flush`.
    model_version : str
        Recorded in every alert and part of its id.
    classify : callable, optional
        ``classify(top_features) -> str`` names the incident type; :func:`default_incident_type` if None.
    top_k : int
        How many leading features each alert keeps in ``top_features``.

    Raises
    ------
    InvalidInputError
        A negative or non-finite gap, an empty model version or ``top_k < 1``.

    Examples
    --------
    >>> tracker = AlertTracker(device_gap_seconds=30, model_version="ae-3")
    >>> for t, score in [(0, 5.0), (1, 8.0), (2, 0.2)]:
    ...     events = tracker.update("pump2", t, score, 1.0, score > 1.0,
    ...                             {"pump2.flow_m3h": score, "pump2.rpm": 0.1})
    ...     print([(e.kind, e.alert.n_points) for e in events])
    [('opened', 1)]
    [('updated', 2)]
    []
    >>> [(e.kind, e.alert.status) for e in tracker.update("pump2", 60, 3.0, 1.0, True, {"pump2.rpm": 1.0})]
    [('closed', 'closed'), ('opened', 'open')]
    >>> closed = tracker.close_all()[0].alert
    >>> closed.incident_type
    'single-sensor deviation (pump2.rpm)'
    >>> closed.explanation
    'pump2.rpm drove 100 % of the score (peak 3.0× threshold)'
    """

    def __init__(
        self,
        *,
        device_gap_seconds: float = 30.0,
        model_version: str,
        classify: Callable[[Sequence[tuple[str, float]]], str] | None = None,
        top_k: int = 5,
    ) -> None:
        # Checked as the caller's value: a type checker trusts the annotation, this check does not (and float,
        # to a type checker, is no numbers.Real).
        gap: object = device_gap_seconds
        if not (isinstance(gap, numbers.Real) and math.isfinite(gap)) or gap < 0:
            msg = f"device_gap_seconds must be a finite number >= 0, got {device_gap_seconds!r}"
            raise InvalidInputError(msg)
        if not isinstance(model_version, str) or not model_version:
            msg = f"model_version must be a non-empty string, got {model_version!r}"
            raise InvalidInputError(msg)
        if not isinstance(top_k, int) or top_k < 1:
            msg = f"top_k must be an integer >= 1, got {top_k!r}"
            raise InvalidInputError(msg)
        self.device_gap_seconds = float(device_gap_seconds)
        self.model_version = model_version
        self.classify = classify if classify is not None else default_incident_type
        self.top_k = top_k
        self._devices: dict[str, _DeviceState] = {}

    # -- public -------------------------------------------------------------------------------------

    def update(
        self,
        device: str,
        time: datetime | float,
        score: float,
        threshold: float,
        is_anomaly: bool,
        contributions: Mapping[str, float],
    ) -> list[AlertEvent]:
        """Feed one scored point and return what happened to the device's alerts, in order.

        Parameters
        ----------
        device : str
        time : datetime or float
            Timezone-aware datetime, or POSIX seconds. Must not go back in time for a device.
        score, threshold : float
            The point's anomaly score and the threshold it was compared with; both finite.
        is_anomaly : bool
            Whether the point was flagged.
        contributions : mapping of str to float
            Each feature's non-negative contribution to the score (for example its reconstruction error);
            only the relative sizes matter.

        Returns
        -------
        list of AlertEvent
            A ``closed`` event if the open alert's gap was exceeded, then ``opened`` or ``updated`` if the
            point was flagged. Empty when nothing changed.

        Raises
        ------
        InvalidInputError
            An empty device, a naive or earlier time than the device's previous point, a non-finite score
            or threshold, or a negative or non-finite contribution.
        """
        if not isinstance(device, str) or not device:
            msg = f"device must be a non-empty string, got {device!r}"
            raise InvalidInputError(msg)
        # The runtime's own values take the first branches: an aware UTC datetime and plain floats.
        moment = time if type(time) is datetime and time.tzinfo is UTC else parse_time(time, f"time (device={device})")
        if not (type(score) is float and type(threshold) is float and math.isfinite(score + threshold)):
            numbers_given: tuple[tuple[str, object], ...] = (("score", score), ("threshold", threshold))
            for name, value in numbers_given:
                if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                    where = f"device={device}, time={format_time(moment)}"
                    msg = f"{name} is {value!r} ({where}): expected a finite number"
                    raise InvalidInputError(msg)
        checked = (
            {}
            if type(contributions) is dict and not contributions
            else self._check_contributions(contributions, device, moment)
        )

        state = self._devices.get(device)
        if state is not None and moment < state.last_time:
            msg = (
                f"time {format_time(moment)} for device {device!r} is earlier than its previous point at "
                f"{format_time(state.last_time)}: points of one device must arrive in time order"
            )
            raise InvalidInputError(msg)
        if state is None:
            state = self._devices[device] = _DeviceState(last_time=moment)
        state.last_time = moment

        events: list[AlertEvent] = []
        if state.alert is not None and self._gap_exceeded(state.alert, moment):
            events.append(self._close(state))
        if bool(is_anomaly):
            if state.alert is None:
                events.append(self._open(state, device, moment, float(score), float(threshold), checked))
            else:
                events.append(self._grow(state, moment, float(score), float(threshold), checked))
        return events

    def flush(self, now: datetime | float) -> list[AlertEvent]:
        """Close every open alert whose last flagged point is more than the gap before ``now``.

        Call it on a timer so that an alert closes even when its device falls silent.
        """
        moment = parse_time(now, "now")
        events = []
        for device in sorted(self._devices):
            state = self._devices[device]
            if state.alert is not None and self._gap_exceeded(state.alert, moment):
                events.append(self._close(state))
        return events

    def close_all(self) -> list[AlertEvent]:
        """Close every open alert, for example at the end of a replayed file or on shutdown."""
        return [
            self._close(self._devices[device])
            for device in sorted(self._devices)
            if self._devices[device].alert is not None
        ]

    def resume(self, alert: Alert) -> None:
        """Take back an alert left open by a previous run (or another worker) of the same model version.

        Only the top shares of the accumulated attribution are stored: the totals are rebuilt from them, so
        later points weigh against the alert's history rather than replace it.
        """
        state = _DeviceState(last_time=alert.end, alert=alert.copy())
        state.totals = {name: share * alert.n_points for name, share in alert.top_features}
        self._devices[alert.device] = state

    def forget(self, device: str) -> bool:
        """Drop a device's state without closing its open alert (it moves to another worker); True if held."""
        return self._devices.pop(device, None) is not None

    @property
    def devices(self) -> frozenset[str]:
        """The devices this tracker holds state for."""
        return frozenset(self._devices)

    @property
    def open_alerts(self) -> list[Alert]:
        """Snapshots of the alerts still open, by device name."""
        alerts = (self._devices[device].alert for device in sorted(self._devices))
        return [alert.copy() for alert in alerts if alert is not None]

    def __repr__(self) -> str:
        return (
            f"AlertTracker(device_gap_seconds={self.device_gap_seconds!r}, "
            f"model_version={self.model_version!r}, "
            f"open={sum(state.alert is not None for state in self._devices.values())})"
        )

    # -- internals ----------------------------------------------------------------------------------

    @staticmethod
    def _check_contributions(contributions: Mapping[str, float], device: str, moment: datetime) -> dict[str, float]:
        if not isinstance(contributions, Mapping):
            msg = (
                f"contributions must be a mapping of feature name to number, got "
                f"{type(contributions).__name__} (device={device}, time={format_time(moment)})"
            )
            raise InvalidInputError(msg)
        checked: dict[str, float] = {}
        for name, value in contributions.items():
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                where = f"device={device}, time={format_time(moment)}"
                msg = f"contributions[{name!r}] is not a number: {value!r} ({where})"
                raise InvalidInputError(msg) from exc
            if not math.isfinite(number) or number < 0:
                msg = (
                    f"contributions[{name!r}] is {number!r} (device={device}, time={format_time(moment)}): "
                    "expected a finite magnitude >= 0"
                )
                raise InvalidInputError(msg)
            checked[str(name)] = number
        return checked

    def _gap_exceeded(self, alert: Alert, moment: datetime) -> bool:
        return (moment - alert.end).total_seconds() > self.device_gap_seconds

    def _describe(self, state: _DeviceState) -> None:
        alert = state.alert
        assert alert is not None
        total = sum(state.totals.values())
        if total > 0:
            ranked = sorted(state.totals.items(), key=lambda item: (-item[1], item[0]))
            alert.top_features = [(name, value / total) for name, value in ranked[: self.top_k]]
        else:
            alert.top_features = []
        alert.incident_type = self.classify(list(alert.top_features))
        alert.explanation = _explanation(alert.top_features, alert.score, alert.threshold)

    def _open(
        self,
        state: _DeviceState,
        device: str,
        moment: datetime,
        score: float,
        threshold: float,
        contributions: dict[str, float],
    ) -> AlertEvent:
        state.alert = Alert(
            id=alert_id(device, self.model_version, moment),
            device=device,
            start=moment,
            end=moment,
            peak_time=moment,
            score=score,
            threshold=threshold,
            model_version=self.model_version,
            status="open",
            n_points=1,
        )
        state.totals = dict(contributions)
        self._describe(state)
        return AlertEvent("opened", state.alert.copy())

    def _grow(
        self,
        state: _DeviceState,
        moment: datetime,
        score: float,
        threshold: float,
        contributions: dict[str, float],
    ) -> AlertEvent:
        alert = state.alert
        assert alert is not None
        alert.end = moment
        alert.n_points += 1
        if score > alert.score:
            alert.score = score
            alert.threshold = threshold
            alert.peak_time = moment
        for name, value in contributions.items():
            state.totals[name] = state.totals.get(name, 0.0) + value
        self._describe(state)
        return AlertEvent("updated", alert.copy())

    @staticmethod
    def _close(state: _DeviceState) -> AlertEvent:
        alert = state.alert
        assert alert is not None
        alert.status = "closed"
        state.alert = None
        state.totals = {}
        return AlertEvent("closed", alert)
