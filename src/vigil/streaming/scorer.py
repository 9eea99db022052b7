"""Score a stream in micro-batches with the same fitted pipeline used in batch evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.pipeline import Pipeline

__all__ = ["ScoredBatch", "StreamScorer"]


@dataclass(frozen=True)
class ScoredBatch:
    """Scores, decisions and per-feature shares of one micro-batch, aligned with its rows."""

    scores: NDArray[np.float64]
    anomalies: NDArray[np.bool_]
    shares: NDArray[np.float64]
    threshold: float
    thresholds: NDArray[np.float64]
    """The set level in force at each row (the alarm stage's, which may adapt); ``threshold`` is the static one."""


class StreamScorer:
    """Feed rows as they arrive; windowed detectors get the history they need from the previous batches.

    The pipeline is the one :meth:`Pipeline.fit` produced — there is no streaming copy of any model.
    A pipeline that needs ``context_rows`` of history (a windowed detector's, plus the pipeline's score
    ``smoothing``) sees the tail of the previous batch prepended, and only the new rows' scores are
    returned, so batch and stream scores agree. Decisions come from the pipeline's alarm stage, whose state
    carries over from batch to batch, so streamed alarms equal :meth:`Pipeline.decide` over the whole series.

    Examples
    --------
    >>> import numpy as np
    >>> from vigil.detectors.pca import PCADetector
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> pipe = Pipeline(PCADetector(n_components=2)).fit(X)
    >>> scorer = StreamScorer(pipe)
    >>> batches = [scorer.score(X[i:i + 50]).scores for i in range(0, 200, 50)]
    >>> bool(np.allclose(np.concatenate(batches), pipe.score_samples(X)))
    True
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._history: pd.DataFrame | NDArray[np.float64] | None = None
        self._state = pipeline.alarm_.start()

    def score(self, rows: pd.DataFrame | NDArray[np.float64]) -> ScoredBatch:
        context = self.pipeline.context_rows
        if context and self._history is not None:
            if isinstance(rows, pd.DataFrame):
                joined = pd.concat([self._history, rows], ignore_index=True)
            else:
                joined = np.vstack([self._history, rows])
        else:
            joined = rows
        skip = len(joined) - len(rows)
        scored = self.pipeline.score_with_contributions(joined)
        scores = scored.scores[skip:]
        shares = scored.contributions(slice(skip, None))
        if context:
            tail = joined[-context:] if not isinstance(joined, pd.DataFrame) else joined.iloc[-context:]
            self._history = tail
        index = rows.index if isinstance(rows, pd.DataFrame) else None
        times = index.to_numpy() if isinstance(index, pd.DatetimeIndex) else None
        run = self.pipeline.decide(scores, state=self._state, timestamps=times)
        return ScoredBatch(
            scores=scores,
            anomalies=run.active,
            shares=shares,
            threshold=self.pipeline.threshold_,
            thresholds=run.thresholds,
        )
