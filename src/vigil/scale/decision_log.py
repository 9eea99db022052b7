"""An append-only JSON-lines log of what a worker decided about each Kafka message (for audits and tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.runtime import Decision, Outcome, Redelivery
from vigil.times import format_time

__all__ = ["DecisionLog", "outcome_record"]


def outcome_record(partition: int, offset: int, outcome: Outcome) -> dict[str, Any]:
    """One log line: where the message was, and the decision or the dead letter's kind.

    Examples
    --------
    >>> from vigil.streaming.dead_letters import DeadLetter
    >>> letter = DeadLetter(kind="duplicate", reason="same time", source="kafka:t", payload="{}", device="p1")
    >>> outcome_record(3, 41, letter)["outcome"]
    'duplicate'
    """
    if isinstance(outcome, Decision):
        return {
            "partition": partition,
            "offset": offset,
            "outcome": "scored",
            "device": outcome.device,
            "time": format_time(outcome.time),
            "score": outcome.score,
            "anomaly": outcome.anomaly,
            "alert_id": outcome.alert_id,
        }
    if isinstance(outcome, Redelivery):
        return {"partition": partition, "offset": offset, "outcome": "redelivery", **outcome.to_dict()}
    assert isinstance(outcome, DeadLetter)
    return {
        "partition": partition,
        "offset": offset,
        "outcome": outcome.kind,
        "device": outcome.device,
        "reason": outcome.reason,
        "payload": outcome.payload,
    }


class DecisionLog:
    """Append one JSON line per outcome to ``path``; each message's lines are flushed together.

    Pass :meth:`write` as :class:`~vigil.scale.worker.KafkaWorker`'s ``on_outcomes``: it runs after the
    outcomes are stored and before the offset can be committed, so a message whose offset was committed
    is in the log (unless the process died between the store and the log — then the message is read
    again by the next owner and logged there).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, partition: int, offset: int, outcomes: Sequence[Outcome]) -> None:
        lines = "".join(json.dumps(outcome_record(partition, offset, o)) + "\n" for o in outcomes)
        with self._lock:
            self._file.write(lines)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
