"""Per-part scores saved beside a result JSON, so reports can draw timelines and curves later."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil.errors import ModelFormatError

__all__ = ["PartScores", "ScoreRecorder", "read_scores"]


@dataclass(frozen=True)
class PartScores:
    name: str
    scores: np.ndarray
    labels: np.ndarray
    threshold: float


class ScoreRecorder:
    """Collects each part's scores during an evaluation (pass :meth:`record` as ``on_part``) and writes an npz.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> rec = ScoreRecorder()
    >>> rec.add("a/1", np.array([0.1, 2.0]), np.array([False, True]), 1.0)
    >>> path = rec.write(pathlib.Path(tempfile.mkdtemp()) / "s.npz")
    >>> [p.name for p in read_scores(path)]
    ['a/1']
    """

    def __init__(self) -> None:
        self.parts: list[PartScores] = []

    def add(self, name: str, scores: np.ndarray, labels: np.ndarray, threshold: float) -> None:
        self.parts.append(PartScores(name, np.asarray(scores, float), np.asarray(labels, bool), float(threshold)))

    def record(self, part, pipe, scores) -> None:
        self.add(part.name, scores, part.y_test, pipe.threshold_)

    def write(self, path: str | Path) -> Path:
        destination = Path(path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"names": np.array([p.name for p in self.parts], dtype=str)}
        for i, part in enumerate(self.parts):
            arrays[f"scores_{i}"] = part.scores
            arrays[f"labels_{i}"] = part.labels
            arrays[f"threshold_{i}"] = np.array(part.threshold)
        np.savez_compressed(destination, allow_pickle=True, **arrays)
        return destination


def read_scores(path: str | Path) -> list[PartScores]:
    """Read an npz written by :meth:`ScoreRecorder.write`."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = [str(n) for n in npz["names"]]
            return [
                PartScores(name, npz[f"scores_{i}"], npz[f"labels_{i}"].astype(bool), float(npz[f"threshold_{i}"]))
                for i, name in enumerate(names)
            ]
    except (OSError, KeyError, ValueError) as exc:
        msg = f"{path} is not a scores file written by vigil bench/evaluate --scores: {exc}"
        raise ModelFormatError(msg) from exc
