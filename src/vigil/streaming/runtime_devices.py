"""Per-device state of the streaming runtime: time order, redeliveries, a detector window, recent points.

:class:`DeviceTable` is the runtime's only record of devices, and the seam that ``vigil.scale`` uses to hand a
device from one worker to another (:meth:`Runtime.held_devices`, :meth:`Runtime.release_devices`,
:meth:`Runtime.resume_alert` call it).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from vigil.streaming.dead_letters import DeadLetter
from vigil.times import format_time

__all__ = ["DeviceState", "DeviceTable", "iso"]

log = logging.getLogger(__name__)

#: Recent accepted times remembered per device to recognise redeliveries (MQTT's receive maximum is larger,
#: but a broker redelivers in order, and older copies still fall before the device's time and are refused).
SEEN_PER_DEVICE = 256

#: A timeline point: (time, score, threshold, anomaly, note, (sensor names, the values scored)); the names
#: are the model's own list, shared, so a point costs only its values.
Point = tuple[float, float, float, bool, str, tuple[Sequence[str], tuple[float, ...]] | None]


@dataclass(slots=True)
class DeviceState:
    """What the runtime keeps per device: time order, a detector window, recent points, score statistics."""

    name: str
    model: str
    last_ts: float | None = None
    history: np.ndarray | None = None
    timeline: deque[Point] = field(default_factory=deque)
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    flagged: int = 0
    # Recent accepted (time -> readings hash), so that a broker's or client's redelivery of one of them is
    # recognised as such; and the start of the span a resumed alert already holds (its points were committed
    # before a restart, so the same times coming again are redeliveries too).
    seen: dict[float, int] = field(default_factory=dict)
    committed_from: float | None = None
    # Declared assets (a plant file) exist before their first record; one silent for longer than
    # ``silent_after`` seconds is reported until it sends again.
    declared: bool = False
    silent_after: float | None = None
    last_seen: float | None = None  # monotonic time of the last accepted record (or of the declaration)
    silent_since: float | None = None  # POSIX time the silence started (its last record, or the declaration)
    dead_letters: int = 0  # since the service started, and the kind of the latest
    last_dead_letter: str = ""

    def accept(self, ts: float, digest: int) -> None:
        """Take ``ts`` as the device's latest time (its readings hashed to ``digest``)."""
        self.last_ts = ts
        seen = self.seen
        seen[ts] = digest
        if len(seen) > SEEN_PER_DEVICE:
            del seen[next(iter(seen))]  # dicts keep insertion order: the oldest goes
        self.last_seen = time.monotonic()
        if self.silent_since is not None:
            log.info("asset %s is sending again after %.0f s of silence", self.name, time.time() - self.silent_since)
            self.silent_since = None

    def is_redelivery(self, ts: float, digest: int) -> bool:
        if self.seen.get(ts) == digest:
            return True
        return (
            self.committed_from is not None and self.last_ts is not None and self.committed_from <= ts <= self.last_ts
        )

    def observe(self, point: Point) -> None:
        """Add a scored point: to the timeline, and to the running mean and variance (Welford)."""
        self.timeline.append(point)
        score = point[1]
        self.n += 1
        delta = score - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (score - self.mean)
        self.flagged += point[3]


def iso(ts: float) -> str:
    """POSIX seconds as ISO 8601 text (``""`` for a non-finite time)."""
    return format_time(datetime.fromtimestamp(ts, tz=UTC)) if math.isfinite(ts) else ""


class DeviceTable:
    """Every device the runtime holds, by name, within ``max_devices``; each keeps ``timeline_points`` points."""

    def __init__(self, *, max_devices: int, timeline_points: int) -> None:
        self.max_devices = max_devices
        self.timeline_points = timeline_points
        self._devices: dict[str, DeviceState] = {}
        self._declared: list[DeviceState] = []

    def get(self, name: str) -> DeviceState | None:
        return self._devices.get(name)

    def __getitem__(self, name: str) -> DeviceState:
        return self._devices[name]

    def __iter__(self) -> Iterator[DeviceState]:
        return iter(list(self._devices.values()))

    @property
    def full(self) -> bool:
        return len(self._devices) >= self.max_devices

    def add(self, name: str, model: str, **state: object) -> DeviceState:
        """Hold ``name`` (replacing what was held), scored by ``model``."""
        added = DeviceState(name, model, timeline=deque(maxlen=self.timeline_points), **state)  # type: ignore[arg-type]
        self._devices[name] = added
        return added

    def route(self, name: str, model: str) -> DeviceState:
        """The device's state, its model now ``model`` (a device moved to another model starts a new window)."""
        state = self._devices.get(name)
        if state is None:
            return self.add(name, model)
        if state.model != model:
            state.model = model
            state.history = None
        return state

    def release(self, names: Iterable[str]) -> set[str]:
        """Forget these devices; return those that were held."""
        return {name for name in names if self._devices.pop(name, None) is not None}

    def forget_history(self, model: str) -> None:
        """Drop the detector windows of ``model``'s devices (a new version fills them again)."""
        for state in self._devices.values():
            if state.model == model:
                state.history = None

    def declared(self) -> dict[str, bool]:
        """Each declared asset still held, by name, and whether it is silent now."""
        return {
            state.name: state.silent_since is not None
            for state in sorted(self._declared, key=lambda s: s.name)
            if self._devices.get(state.name) is state
        }

    def declare(self, name: str, model: str, silent_after: float | None) -> None:
        state = self._devices.get(name)
        if state is None:
            state = self.add(name, model)
        if not state.declared:
            self._declared.append(state)
        state.declared = True
        state.silent_after = silent_after
        if state.last_seen is None:
            state.last_seen = time.monotonic()

    def watch_silence(self, now: float) -> None:
        """Log each declared device that has just fallen silent for longer than its ``silent_after``."""
        for state in self._declared:
            if state.silent_after is None or state.silent_since is not None or state.last_seen is None:
                continue
            quiet = now - state.last_seen
            if quiet > state.silent_after:
                state.silent_since = time.time() - quiet
                last = "nothing yet" if state.last_ts is None else f"its last record at {iso(state.last_ts)}"
                log.warning(
                    "asset %s is silent: no record for %.0f s (limit %g s; %s)",
                    state.name,
                    quiet,
                    state.silent_after,
                    last,
                )

    def count_letters(self, letters: Sequence[DeadLetter], route: Callable[[str], str | None]) -> None:
        """Count each device's dead letters, so that an operator sees which device sends what cannot be scored.

        A device whose every record is refused is listed too (it would otherwise never appear), as long as
        ``route`` names its model and the device limit leaves room.
        """
        for letter in letters:
            name = letter.device
            if name is None:
                continue
            state = self._devices.get(name)
            if state is None:
                model = route(name)
                if model is None or self.full:
                    continue
                state = self.add(name, model)
            state.dead_letters += 1
            state.last_dead_letter = letter.kind
