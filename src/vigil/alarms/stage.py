"""The decision stage: from a stream of scores to alarms, the same object in batch, streaming and service.

For every score, in time order, of one device:

1. the threshold in force is read from the online threshold (``fixed`` unless the stage adapts), kept
   within ``[base / limit, base × limit]`` of the static threshold, so no drift and no poisoning can move
   it further than that, and never below the device's ``floor`` (the level operators' verdicts set);
2. the score is *flagged* when it is above that set level; the :class:`~vigil.alarms.policy.AlarmPolicy`
   turns flags into an *active* alarm (k-of-n on-delay, off-delay, deadband, re-alarm suppression, and a
   bypass level above which one reading alarms at once);
3. the score is shown to the online threshold only when it is believed normal: no alarm active and not
   flagged (unless that threshold learns from its own alarms, as adaptive conformal inference does), and
   the share of active alarms over the last ``guard_window`` readings is at most ``guard``. An incident
   raises that share, so the threshold stops learning until it is over: an incident is never learnt away.

Whatever the stage does beyond that it says, in :attr:`AlarmRun.notes`: a non-finite score (the reading
is not decided, the state is unchanged), a gap longer than ``max_gap`` seconds or time going backwards (a
device restart: the annunciation state is reset, the learnt threshold kept), a suppressed re-alarm, a
shelved period and its expiry.

One fitted stage serves any number of devices: the moving part is an :class:`AlarmState`, a small
JSON-ready object per device, saved with the model version so that adaptation survives a restart.
Running a series in one call or in pieces, each continuing the state of the last, gives identical
results row for row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from vigil.alarms.policy import AlarmPolicy
from vigil.calibration.online import FixedThreshold, OnlineThreshold, online_threshold_from_dict
from vigil.errors import InvalidInputError, NotFittedError

__all__ = ["AlarmRun", "AlarmStage", "AlarmState"]


@dataclass
class AlarmState:
    """Everything the stage remembers about one device between readings (JSON-ready via :meth:`to_dict`)."""

    threshold: dict[str, Any]
    recent: list[int] = field(default_factory=list)
    active: bool = False
    clear_run: int = 0
    since_clear: int = 1 << 30
    alarm_history: list[int] = field(default_factory=list)
    alarm_count: int = 0
    last_time: float | None = None
    shelved_until: float | None = None
    readings: int = 0
    floor: float | None = None
    """A lowest set level an operator's verdicts put in place for this device (None: none)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "recent": self.recent,
            "active": self.active,
            "clear_run": self.clear_run,
            "since_clear": self.since_clear,
            "alarm_history": self.alarm_history,
            "alarm_count": self.alarm_count,
            "last_time": self.last_time,
            "shelved_until": self.shelved_until,
            "readings": self.readings,
            "floor": self.floor,
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> AlarmState:
        try:
            state = cls(
                threshold=dict(document["threshold"]),
                recent=[int(v) for v in document["recent"]],
                active=bool(document["active"]),
                clear_run=int(document["clear_run"]),
                since_clear=int(document["since_clear"]),
                alarm_history=[int(v) for v in document["alarm_history"]],
                alarm_count=int(document["alarm_count"]),
                last_time=None if document["last_time"] is None else float(document["last_time"]),
                shelved_until=None if document["shelved_until"] is None else float(document["shelved_until"]),
                readings=int(document["readings"]),
                floor=None if document.get("floor") is None else float(document["floor"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"not a valid alarm state: {exc!r}"
            raise InvalidInputError(msg) from exc
        if state.alarm_count != sum(state.alarm_history):
            msg = "not a valid alarm state: alarm_count disagrees with alarm_history"
            raise InvalidInputError(msg)
        return state


@dataclass
class AlarmRun:
    """What the stage decided for each reading of one call, in order.

    ``flagged``: the score was above the set level; ``active``: an alarm is in force (what metrics and
    alerts use); ``raised``: an alarm was annunciated at this reading; ``thresholds``: the set level in force;
    ``learned``: the score was shown to the online threshold; ``notes``: ``(row, reason)`` for every
    reading the stage treated specially.
    """

    flagged: NDArray[np.bool_]
    active: NDArray[np.bool_]
    raised: NDArray[np.bool_]
    thresholds: NDArray[np.float64]
    learned: NDArray[np.bool_]
    notes: list[tuple[int, str]]


class AlarmStage:
    """Thresholds that follow the plant, and the alarm rules that turn scores into alarms.

    Parameters
    ----------
    threshold : OnlineThreshold or None
        How the set level adapts to unlabelled scores; ``None`` keeps the static threshold
        (:class:`~vigil.calibration.online.FixedThreshold`).
    policy : AlarmPolicy or None
        Annunciation rules; ``None`` is :class:`AlarmPolicy()` (every flagged reading is an alarm).
    guard : float
        Largest share of active alarms over the last ``guard_window`` readings at which the threshold
        still learns.
    guard_window : int
        Readings over which that share is taken.
    limit : float
        The set level stays within ``[base / limit, base × limit]`` of the static threshold (for a
        positive base; the same distances around a negative one).
    max_gap : float or None
        Seconds between two readings beyond which the annunciation state is reset (a stream that was
        interrupted); ``None`` never resets. Only used when timestamps are given.

    Examples
    --------
    >>> import numpy as np
    >>> stage = AlarmStage(policy=AlarmPolicy(on_delay=2, window=3)).fit(np.linspace(0, 1, 50), threshold=1.0)
    >>> run = stage.run([0.5, 2.0, 0.5, 0.5, 2.0, 2.0, 0.5])
    >>> run.flagged.astype(int).tolist(), run.active.astype(int).tolist()
    ([0, 1, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1, 0])
    """

    def __init__(
        self,
        *,
        threshold: OnlineThreshold | None = None,
        policy: AlarmPolicy | None = None,
        guard: float = 0.2,
        guard_window: int = 600,
        limit: float = 4.0,
        max_gap: float | None = None,
    ) -> None:
        self.threshold = threshold
        self.policy = policy
        self.guard = guard
        self.guard_window = guard_window
        self.limit = limit
        self.max_gap = max_gap

    def get_params(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "policy": self.policy,
            "guard": self.guard,
            "guard_window": self.guard_window,
            "limit": self.limit,
            "max_gap": self.max_gap,
        }

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"AlarmStage({params})"

    def clone(self) -> AlarmStage:
        """An unfitted copy with the same parameters."""
        threshold = None if self.threshold is None else type(self.threshold)(**self.threshold.get_params())
        return AlarmStage(**{**self.get_params(), "threshold": threshold})

    @property
    def is_plain(self) -> bool:
        """True when the stage is a bare static threshold (every flagged reading is an alarm)."""
        fixed = self.threshold is None or isinstance(self.threshold, FixedThreshold)
        return fixed and (self.policy is None or self.policy.is_plain)

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if not (isinstance(self.guard, int | float) and 0.0 <= self.guard <= 1.0):
            msg = f"AlarmStage(guard={self.guard!r}) must be a share in [0, 1]"
            raise InvalidInputError(msg)
        if isinstance(self.guard_window, bool) or not isinstance(self.guard_window, int) or self.guard_window < 1:
            msg = f"AlarmStage(guard_window={self.guard_window!r}) must be a whole number of readings ≥ 1"
            raise InvalidInputError(msg)
        if not (isinstance(self.limit, int | float) and self.limit >= 1.0 and math.isfinite(self.limit)):
            msg = f"AlarmStage(limit={self.limit!r}) must be a finite factor ≥ 1"
            raise InvalidInputError(msg)
        if self.max_gap is not None and not (isinstance(self.max_gap, int | float) and self.max_gap > 0):
            msg = f"AlarmStage(max_gap={self.max_gap!r}) must be a positive number of seconds or None"
            raise InvalidInputError(msg)
        if self.threshold is not None and not isinstance(self.threshold, OnlineThreshold):
            msg = f"AlarmStage(threshold={self.threshold!r}) must be an OnlineThreshold or None"
            raise InvalidInputError(msg)
        if self.policy is not None and not isinstance(self.policy, AlarmPolicy):
            msg = f"AlarmStage(policy={self.policy!r}) must be an AlarmPolicy or None"
            raise InvalidInputError(msg)

    def fit(self, scores: Any, threshold: float) -> Self:
        """Start from held-out normal ``scores`` and the static ``threshold`` calibrated on them."""
        self._check_params()
        online = self.threshold if self.threshold is not None else FixedThreshold()
        self.threshold_ = type(online)(**online.get_params()).fit(scores, threshold)
        self.policy_ = self.policy if self.policy is not None else AlarmPolicy()
        self.base_ = float(threshold)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            msg = "AlarmStage is not fitted yet: call fit(scores, threshold) first"
            raise NotFittedError(msg)

    def start(self) -> AlarmState:
        """A fresh device state, as at the end of calibration."""
        self._check_fitted()
        return AlarmState(threshold=self.threshold_.start())

    def _bounds(self) -> tuple[float, float]:
        spread = abs(self.base_)
        return self.base_ - (1.0 - 1.0 / self.limit) * spread, self.base_ + (self.limit - 1.0) * spread

    def current_threshold(self, state: AlarmState) -> float:
        """The set level in force for the device whose state this is."""
        self._check_fitted()
        low, high = self._bounds()
        level = min(max(self.threshold_.threshold(state.threshold), low), high)
        return level if state.floor is None else max(level, state.floor)

    # ------------------------------------------------------------------ operator actions
    def shelve(self, state: AlarmState, until: float) -> None:
        """Shelve the device's alarms until POSIX time ``until`` (scores are still computed and stored)."""
        if not math.isfinite(until):
            msg = f"shelve(until={until!r}) must be a finite POSIX time"
            raise InvalidInputError(msg)
        state.shelved_until = float(until)

    def unshelve(self, state: AlarmState) -> None:
        state.shelved_until = None

    # ------------------------------------------------------------------ running
    def _reset_annunciation(self, state: AlarmState) -> None:
        state.recent.clear()
        state.active = False
        state.clear_run = 0
        state.since_clear = 1 << 30

    def run(
        self,
        scores: Sequence[float] | NDArray[np.float64],
        state: AlarmState | None = None,
        *,
        timestamps: Sequence[float] | NDArray[Any] | None = None,
    ) -> AlarmRun:
        """Decide every score in order, continuing ``state`` (a fresh one when ``None``; it is updated).

        ``timestamps`` (POSIX seconds or ``datetime64``, one per score) enable the gap and shelving rules.
        """
        self._check_fitted()
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        times = _seconds(timestamps, values.size)
        state = self.start() if state is None else state
        policy, online = self.policy_, self.threshold_
        low, high = self._bounds()
        n = values.size
        flagged = np.zeros(n, dtype=bool)
        active = np.zeros(n, dtype=bool)
        raised = np.zeros(n, dtype=bool)
        learned = np.zeros(n, dtype=bool)
        thresholds = np.empty(n, dtype=np.float64)
        notes: list[tuple[int, str]] = []
        for i in range(n):
            score = float(values[i])
            level = min(max(online.threshold(state.threshold), low), high)
            if state.floor is not None and state.floor > level:
                level = state.floor
            thresholds[i] = level
            if times is not None:
                now = float(times[i])
                if state.last_time is not None:
                    step = now - state.last_time
                    if step < 0:
                        notes.append((i, f"time went back {-step:g} s (device restart?): alarm state reset"))
                        self._reset_annunciation(state)
                    elif self.max_gap is not None and step > self.max_gap:
                        notes.append((i, f"gap of {step:g} s > max_gap {self.max_gap:g} s: alarm state reset"))
                        self._reset_annunciation(state)
                state.last_time = now
                if state.shelved_until is not None and now >= state.shelved_until:
                    notes.append((i, "shelving expired"))
                    state.shelved_until = None
            if not math.isfinite(score):
                notes.append((i, "non_finite_score: reading not decided, state unchanged"))
                active[i] = state.active and state.shelved_until is None
                continue
            state.readings += 1
            flag = score > level
            flagged[i] = flag
            clear_level = level - policy.deadband * abs(level)
            state.recent.append(int(flag))
            if len(state.recent) > policy.window:
                del state.recent[0]
            if not state.active:
                state.since_clear += 1
                if score > policy.bypass_level(level):
                    if sum(state.recent) < policy.on_delay or state.since_clear <= policy.holdoff:
                        notes.append((i, f"score above the bypass level ({policy.bypass:g} × set): alarmed at once"))
                    state.active = True
                    state.clear_run = 0
                    raised[i] = True
                elif sum(state.recent) >= policy.on_delay:
                    if state.since_clear <= policy.holdoff:
                        notes.append((i, f"re-alarm within holdoff of {policy.holdoff} readings: suppressed"))
                        state.recent.clear()
                    else:
                        state.active = True
                        state.clear_run = 0
                        raised[i] = True
            else:
                state.clear_run = state.clear_run + 1 if score <= clear_level else 0
                if state.clear_run >= policy.off_delay:
                    state.active = False
                    state.since_clear = 0
                    state.recent.clear()
            shelved = state.shelved_until is not None
            if shelved and raised[i]:
                notes.append((i, "alarm raised while shelved: not annunciated"))
                raised[i] = False
            active[i] = state.active and not shelved
            # The guard: an incident-sized share of recent alarms freezes learning.
            state.alarm_history.append(int(state.active))
            state.alarm_count += int(state.active)
            if len(state.alarm_history) > self.guard_window:
                state.alarm_count -= state.alarm_history.pop(0)
            quiet = not (state.active or flag) or online.learns_alarms
            if quiet and state.alarm_count <= self.guard * len(state.alarm_history):
                online.learn(state.threshold, score)
                learned[i] = True
        return AlarmRun(flagged, active, raised, thresholds, learned, notes)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "threshold": self.threshold_.to_dict(),
            "policy": self.policy_.to_dict(),
            "guard": self.guard,
            "guard_window": self.guard_window,
            "limit": self.limit,
            "max_gap": self.max_gap,
            "base": self.base_,
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> AlarmStage:
        """Rebuild a fitted stage saved with :meth:`to_dict`."""
        try:
            online = online_threshold_from_dict(dict(document["threshold"]))
            stage = cls(
                threshold=type(online)(**online.get_params()),
                policy=AlarmPolicy.from_dict(dict(document["policy"])),
                guard=float(document["guard"]),
                guard_window=int(document["guard_window"]),
                limit=float(document["limit"]),
                max_gap=None if document["max_gap"] is None else float(document["max_gap"]),
            )
            stage._check_params()
            stage.threshold_ = online
            stage.policy_ = stage.policy if stage.policy is not None else AlarmPolicy()
            stage.base_ = float(document["base"])
            online._check_fitted()
        except (KeyError, TypeError, ValueError, NotFittedError) as exc:
            msg = f"not a valid fitted alarm stage: {exc!r}"
            raise InvalidInputError(msg) from exc
        if not math.isfinite(stage.base_):
            msg = f"not a valid fitted alarm stage: base threshold {stage.base_!r} is not finite"
            raise InvalidInputError(msg)
        return stage


def _seconds(timestamps: Any, n: int) -> NDArray[np.float64] | None:
    if timestamps is None:
        return None
    values = np.asarray(timestamps)
    if values.shape != (n,):
        msg = f"timestamps must have one value per score ({n}), got shape {values.shape}"
        raise InvalidInputError(msg)
    if values.dtype.kind == "M":
        return values.astype("datetime64[ns]").astype(np.int64) / 1e9
    seconds = values.astype(np.float64)
    if not np.isfinite(seconds).all():
        msg = "timestamps must be finite"
        raise InvalidInputError(msg)
    return seconds
