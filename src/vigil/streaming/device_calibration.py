"""Per-device thresholds that operators' false-positive verdicts move: bounded, recorded, undoable, guarded.

A model's threshold is calibrated on the training data of all devices together. A device whose normal
behaviour sits a little higher raises alert after alert that operators reject. Each ``false_positive``
verdict proposes a new threshold for that device alone: the ``1 - target_far`` quantile of its recent
scores (periods inside confirmed alerts left out) or, with too few recent scores, just above the rejected
alert's peak. The proposal is then bounded, because one verdict must never blind a device:

- **per verdict** the threshold rises at most ×``max_step`` (:data:`MAX_STEP`, 1.25): one operator's
  judgement on one alert moves the device by a quarter at most, so silencing a device takes several
  rejected alerts, each of which is on record;
- **in total** it stays at or below ×``max_raise`` (:data:`MAX_RAISE`, 2) of the model's threshold: a device
  whose normal scores sit more than twice the fleet's threshold needs its own or a retrained model
  (``vigil retrain``), not a local patch; the change says when it was limited by either bound;
- it is **never lower** than the model's threshold, and a false-positive verdict never lowers it.

**The guard.** A reading scoring above ×``guard_margin`` (:data:`GUARD_MARGIN`, 1.5) of the model's
threshold (the pre-feedback threshold) is flagged even when feedback raised the device's threshold above
it, and its decision carries a note naming the change that would have hidden it. Feedback can therefore
silence readings between the model's threshold and 1.5× of it, and no higher: a real anomaly on a device
whose threshold operators raised stays visible, and says why it alarms. 1.5 lies between the largest one-
verdict raise (1.25) and the ceiling (2): a single verdict is always fully effective, repeated verdicts
can reach the ceiling (which is kept and shown as what the operators asked for), and the readings that
ceiling would hide above 1.5× still alarm.

For the usual positive thresholds the factors multiply; for a threshold ``t <= 0`` they apply to its
magnitude (``t + (f - 1) * |t|``), so a bound never moves a threshold down.

Every change is a :class:`ThresholdChange` (who, when, why, old and new value) in the device's history,
saved with the model version (:meth:`DeviceCalibration.state`); :meth:`DeviceCalibration.undo` restores the
value before the latest change still in force and is itself recorded.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from vigil.errors import InvalidInputError
from vigil.times import format_time, parse_time

__all__ = ["GUARD_MARGIN", "MAX_RAISE", "MAX_STEP", "DeviceCalibration", "ThresholdChange", "raised"]

log = logging.getLogger(__name__)

#: Largest rise of a device's threshold per false-positive verdict, as a factor of the threshold in force.
MAX_STEP = 1.25
#: Highest threshold feedback may set, as a factor of the model's threshold.
MAX_RAISE = 2.0
#: Readings above this factor of the model's threshold are flagged whatever feedback set (the guard).
GUARD_MARGIN = 1.5

#: Format of the saved document (:meth:`DeviceCalibration.state`); a bare ``{device: threshold}`` mapping is
#: the format before changes were recorded, and is still read.
STATE_FORMAT = 2

_ACTIONS = ("verdict", "undo", "restore")


def raised(value: float, factor: float) -> float:
    """``value`` raised by ``factor``: ``value * factor`` when positive, ``value + (factor - 1)|value|`` always.

    Examples
    --------
    >>> raised(1.2, 1.25), raised(-2.0, 1.5)
    (1.5, -1.0)
    """
    return value + (factor - 1.0) * abs(value)


@dataclass(frozen=True)
class ThresholdChange:
    """One change of a device's threshold.

    Attributes
    ----------
    id : int
        1, 2, ... per device.
    device : str
    time : str
        When, ISO 8601 UTC.
    who : str
        The verdict's author, or ``"operator"`` when it named none; ``"vigil"`` for a value limited on load.
    action : {"verdict", "undo", "restore"}
        ``restore``: a saved value taken over on load (from a file without history, or outside the bounds).
    reason : str
        Why, in words: the verdict and its alert, what was undone, or what was limited.
    old, new : float
        The threshold before and after.
    alert_id, verdict : str or None
        The alert and verdict behind a ``verdict`` change.
    proposed : float or None
        What the verdict asked for before the bounds.
    limited_by : {"step", "total"} or None
        The bound that cut the proposal: ``step`` (×``max_step`` per verdict) or ``total`` (×``max_raise``).
    undoes : int or None
        The id of the change an ``undo`` reverted.
    """

    id: int
    device: str
    time: str
    who: str
    action: str
    reason: str
    old: float
    new: float
    alert_id: str | None = None
    verdict: str | None = None
    proposed: float | None = None
    limited_by: str | None = None
    undoes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> ThresholdChange:
        """Read a saved change; ``where`` names it in the error of a malformed one."""
        try:
            change = cls(
                id=int(data["id"]),
                device=str(data["device"]),
                time=str(data["time"]),
                who=str(data["who"]),
                action=str(data["action"]),
                reason=str(data["reason"]),
                old=float(data["old"]),
                new=float(data["new"]),
                alert_id=None if data.get("alert_id") is None else str(data["alert_id"]),
                verdict=None if data.get("verdict") is None else str(data["verdict"]),
                proposed=None if data.get("proposed") is None else float(data["proposed"]),
                limited_by=None if data.get("limited_by") is None else str(data["limited_by"]),
                undoes=None if data.get("undoes") is None else int(data["undoes"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{where} is not a threshold change: {exc!r}"
            raise InvalidInputError(msg) from exc
        if change.action not in _ACTIONS or not (math.isfinite(change.old) and math.isfinite(change.new)):
            msg = f"{where}: action must be one of {', '.join(_ACTIONS)} and old/new finite, got {dict(data)!r}"
            raise InvalidInputError(msg)
        return change


class DeviceCalibration:
    """Recent scores, bounded threshold overrides and their history, for every device of one model version.

    Parameters
    ----------
    target_far : float
        The share of normal points a device may flag, in (0, 1).
    window : int
        Recent scores kept per device.
    min_samples : int
        Fewest recent scores from which a quantile is taken.
    max_step, max_raise, guard_margin : float
        The bounds and the guard, factors ``>= 1`` (see the module docstring): 1.25, 2 and 1.5 by default.

    Examples
    --------
    >>> cal = DeviceCalibration(target_far=0.1, window=100, min_samples=20)
    >>> for t in range(100):
    ...     cal.observe("p1", float(t), 1.0 + (t % 10) / 10)   # normal scores 1.0 … 1.9
    >>> cal.threshold("p1", default=1.2)
    1.2
    >>> change = cal.recalibrate("p1", default=1.2, peak=1.9, who="ana", alert_id="a1")
    >>> change.old, change.proposed, change.new, change.limited_by   # the quantile 1.9 is more than ×1.25
    (1.2, 1.9, 1.5, 'step')
    >>> cal.levels("p1", default=1.2)       # (threshold, guard): the guard is not needed below 1.5 × 1.2
    (1.5, inf)
    >>> cal.undo("p1", default=1.2, who="ana").new
    1.2
    >>> [c.action for c in cal.history("p1")]
    ['verdict', 'undo']
    """

    def __init__(
        self,
        *,
        target_far: float = 0.01,
        window: int = 2000,
        min_samples: int = 200,
        max_step: float = MAX_STEP,
        max_raise: float = MAX_RAISE,
        guard_margin: float = GUARD_MARGIN,
    ) -> None:
        if not (isinstance(target_far, float | int) and 0.0 < target_far < 1.0):
            msg = f"target_far must be in (0, 1), got {target_far!r}"
            raise InvalidInputError(msg)
        if not isinstance(window, int) or window < 1 or not isinstance(min_samples, int) or min_samples < 1:
            msg = f"window and min_samples must be integers >= 1, got {window!r} and {min_samples!r}"
            raise InvalidInputError(msg)
        for name, factor in (("max_step", max_step), ("max_raise", max_raise), ("guard_margin", guard_margin)):
            if not (isinstance(factor, float | int) and math.isfinite(factor) and factor >= 1.0):
                msg = f"{name} must be a finite factor >= 1, got {factor!r}"
                raise InvalidInputError(msg)
        self.target_far = float(target_far)
        self.window = window
        self.min_samples = min_samples
        self.max_step = float(max_step)
        self.max_raise = float(max_raise)
        self.guard_margin = float(guard_margin)
        self._recent: dict[str, deque[tuple[float, float]]] = {}
        self._overrides: dict[str, float] = {}
        self._history: dict[str, list[ThresholdChange]] = {}

    # -- scores ----------------------------------------------------------------------------------------

    def observe(self, device: str, timestamp: float, score: float) -> None:
        """Remember one scored point of ``device``."""
        recent = self._recent.get(device)
        if recent is None:
            recent = self._recent[device] = deque(maxlen=self.window)
        recent.append((timestamp, score))

    def scores(self, device: str) -> list[float]:
        """The recent scores of ``device``, oldest first."""
        return [score for _, score in self._recent.get(device, ())]

    # -- thresholds ------------------------------------------------------------------------------------

    def threshold(self, device: str, default: float) -> float:
        """The threshold in force for ``device``: its override, or ``default`` (the model's threshold)."""
        return self._overrides.get(device, default)

    def ceiling(self, default: float) -> float:
        """The highest threshold feedback may set for a model whose threshold is ``default``."""
        return raised(default, self.max_raise)

    def levels(self, device: str, default: float) -> tuple[float, float]:
        """``(threshold, guard)`` of ``device``: a reading is flagged when its score exceeds either.

        The guard is ``guard_margin`` × ``default`` where feedback raised the threshold above that, else
        infinite (the threshold alone decides).
        """
        threshold = self._overrides.get(device, default)
        guard = raised(default, self.guard_margin)
        return threshold, guard if threshold > guard else math.inf

    def guard_note(self, device: str, default: float, score: float) -> str:
        """Why a reading of ``device`` scoring ``score`` was flagged although below its feedback threshold."""
        change = self.in_force(device)
        by = "" if change is None else f", set by change {change.id} ({change.who}, {change.time}: {change.reason})"
        return (
            f"flagged by the feedback guard: score {score:.4g} is above {self.guard_margin:g} × the model's "
            f"threshold {default:.4g}; the feedback threshold {self.threshold(device, default):.4g}{by} "
            f"would have hidden it"
        )

    def recalibrate(
        self,
        device: str,
        *,
        default: float,
        peak: float | None = None,
        exclude: Iterable[tuple[float, float]] = (),
        who: str = "",
        alert_id: str | None = None,
        time: datetime | str | None = None,
    ) -> ThresholdChange:
        """Raise ``device``'s threshold, within the bounds, after a false-positive verdict.

        Parameters
        ----------
        device : str
        default : float
            The model's threshold: the result is never lower.
        peak : float, optional
            The rejected alert's peak score, used when there are too few recent scores.
        exclude : iterable of (start, end)
            POSIX-second ranges (confirmed anomalies) whose scores are not normal behaviour.
        who : str
            The verdict's author (``"operator"`` when empty).
        alert_id : str, optional
            The rejected alert.
        time : datetime or str, optional
            When the verdict was given (ISO 8601 text accepted); now if None.

        Returns
        -------
        ThresholdChange
            The change, recorded in the history when the threshold moved; when it did not (the proposal is
            not above the threshold in force), a change with ``old == new`` that is not recorded.
        """
        ranges = list(exclude)
        scores = [
            score for t, score in self._recent.get(device, ()) if not any(start <= t <= end for start, end in ranges)
        ]
        current = self.threshold(device, default)
        if len(scores) >= self.min_samples:
            proposed: float | None = float(np.quantile(np.asarray(scores), 1.0 - self.target_far, method="higher"))
            basis = f"the {1 - self.target_far:.3g} quantile of its {len(scores)} recent scores"
        elif peak is not None and math.isfinite(peak):
            proposed = float(np.nextafter(peak, math.inf))
            basis = "just above the alert's peak"
        else:
            proposed, basis = None, "no recent scores and no peak"
        step_cap, total_cap = raised(current, self.max_step), self.ceiling(default)
        new, limited_by = current if proposed is None else proposed, None
        if new > min(step_cap, total_cap):
            limited_by = "step" if step_cap <= total_cap else "total"
            new = min(step_cap, total_cap)
        new = max(new, current, default)  # a false positive never makes the device more sensitive
        where = f"false positive on alert {alert_id}" if alert_id else "false positive"
        reason = f"{where}: proposed {basis}" + ("" if proposed is None else f" ({proposed:.4g})")
        if limited_by is not None:
            bound = f"×{self.max_step:g} per verdict" if limited_by == "step" else f"×{self.max_raise:g} in total"
            reason += f", limited to {bound}"
        if new <= current:
            reason += f"; the threshold {current:.4g} is already at or above it: unchanged"
        change = ThresholdChange(
            id=self._next_id(device),
            device=device,
            time=_when(time),
            who=who or "operator",
            action="verdict",
            reason=reason,
            old=current,
            new=new,
            alert_id=alert_id,
            verdict="false_positive",
            proposed=proposed,
            limited_by=limited_by,
        )
        if new > current:
            self._apply(change, default)
        return change

    def undo(
        self,
        device: str,
        *,
        default: float,
        who: str = "",
        change_id: int | None = None,
        time: datetime | str | None = None,
    ) -> ThresholdChange:
        """Restore the value ``device`` had before its latest change still in force, and record that.

        Parameters
        ----------
        change_id : int, optional
            The change meant; refused unless it is the latest one in force (undo the later ones first).

        Raises
        ------
        InvalidInputError
            Nothing to undo, or ``change_id`` is not the latest change in force.
        """
        target = self.in_force(device)
        if target is None:
            msg = f"device {device!r} has no threshold change to undo"
            raise InvalidInputError(msg)
        if change_id is not None and change_id != target.id:
            msg = (
                f"change {change_id} of device {device!r} is not the latest change in force "
                f"(change {target.id} is): undo that one first"
            )
            raise InvalidInputError(msg)
        current = self.threshold(device, default)
        change = ThresholdChange(
            id=self._next_id(device),
            device=device,
            time=_when(time),
            who=who or "operator",
            action="undo",
            reason=f"undo of change {target.id} ({target.reason})",
            old=current,
            new=max(target.old, default),
            undoes=target.id,
        )
        self._apply(change, default)
        return change

    def in_force(self, device: str) -> ThresholdChange | None:
        """The latest change of ``device`` not undone (what :meth:`undo` reverts), or None."""
        history = self._history.get(device, [])
        undone = {c.undoes for c in history if c.action == "undo"}
        return next((c for c in reversed(history) if c.action != "undo" and c.id not in undone), None)

    def history(self, device: str) -> list[ThresholdChange]:
        """Every change of ``device``'s threshold, oldest first."""
        return list(self._history.get(device, ()))

    def overrides(self) -> dict[str, float]:
        """Devices whose threshold differs from the model's, with their thresholds."""
        return dict(self._overrides)

    # -- saving ----------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The overrides and every device's history, as JSON-ready data for :meth:`restore`."""
        return {
            "format": STATE_FORMAT,
            "thresholds": dict(self._overrides),
            "history": {device: [c.to_dict() for c in changes] for device, changes in self._history.items()},
        }

    def restore(self, document: Mapping[str, Any], *, default: float, time: datetime | None = None) -> None:
        """Replace the overrides and histories by saved ones (:meth:`state`, or a bare ``{device: threshold}``).

        A saved threshold outside ``[default, ceiling]`` (saved before the bounds, or under other bounds) is
        limited to them, and that is recorded as a ``restore`` change by ``vigil`` and logged; so is every
        threshold of a file without history, so that its value is explained and can be undone.

        Raises
        ------
        InvalidInputError
            A non-finite threshold, a malformed change, or a document of another format.
        """
        if not isinstance(document, Mapping):
            msg = f"a device calibration must be a JSON object, got {type(document).__name__}"
            raise InvalidInputError(msg)
        if "format" in document:
            if document["format"] != STATE_FORMAT:
                msg = f"device calibration format {document['format']!r} is not {STATE_FORMAT}"
                raise InvalidInputError(msg)
            thresholds = dict(document.get("thresholds", {}))
            histories = {
                str(device): [
                    ThresholdChange.from_dict(c, f"change {i} of device {device!r}") for i, c in enumerate(changes)
                ]
                for device, changes in dict(document.get("history", {})).items()
            }
        else:
            thresholds, histories = dict(document), {}
        self._overrides, self._history = {}, histories
        ceiling = self.ceiling(default)
        for device, value in thresholds.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                msg = f"calibration threshold of device {device!r} is not finite: {value!r}"
                raise InvalidInputError(msg)
            bounded = min(max(number, default), ceiling)
            device = str(device)
            if bounded != number or device not in histories:
                if bounded != number:
                    reason = (
                        f"saved threshold {number:.4g} is outside [{default:.4g}, {ceiling:.4g}] (the model's "
                        f"threshold to ×{self.max_raise:g} of it): limited to {bounded:.4g}"
                    )
                    log.warning("device %s: %s", device, reason)
                else:
                    reason = "threshold saved before changes were recorded"
                change = ThresholdChange(
                    id=self._next_id(device),
                    device=device,
                    time=_when(time),
                    who="vigil",
                    action="restore",
                    reason=reason,
                    old=default,
                    new=bounded,
                    proposed=number,
                )
                self._history.setdefault(device, []).append(change)
            if bounded > default:
                self._overrides[device] = bounded

    # -- internals -------------------------------------------------------------------------------------

    def _next_id(self, device: str) -> int:
        history = self._history.get(device)
        return history[-1].id + 1 if history else 1

    def _apply(self, change: ThresholdChange, default: float) -> None:
        self._history.setdefault(change.device, []).append(change)
        if change.new > default:
            self._overrides[change.device] = change.new
        else:
            self._overrides.pop(change.device, None)


def _when(time: datetime | str | None) -> str:
    return format_time(datetime.now(UTC) if time is None else parse_time(time, "time of a threshold change"))
