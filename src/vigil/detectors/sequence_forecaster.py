"""A TCN forecaster that reads the whole series in one pass instead of one sliding window at a time.

A causal convolution's output at step ``t`` depends on the rows up to ``t`` only, so one pass over a series
predicts every row from its own history. The windowed :class:`~vigil.detectors.forecasters.TCNForecasterDetector`
recomputes every window's full stack of convolutions to use its last step; here each row is computed once,
about ``window`` times less work, and a training step is one pass over all the training rows (full batch).

What differs from the windowed TCN, besides speed:

* A prediction sees exactly the network's receptive field (``receptive_field_`` rows: at least ``window``,
  63 for the defaults) of real history, never zeros; ``context_rows`` is one more than that.
* The drift guard judges a drifting sensor by its step-to-step changes (first differences) rather than
  relative to the window's last row: the same information without its level, but shared by every step.
* ``epochs`` counts passes over the training rows, each one optimisation step on all of them (full batch)
  unless they exceed ``step_rows``. Early stopping watches the loss on the latest ``validation_fraction`` of
  the training rows; in full batch their predictions come from the same pass (a causal network cannot see
  ahead, so those rows never feed a gradient).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import BaseDetector, Interval
from vigil.detectors.forecasters import ForecastDetector
from vigil.detectors.training import descend, require_torch, train
from vigil.errors import InvalidInputError
from vigil.registry import register

__all__ = ["SequenceTCNForecasterDetector"]

# Rows per scoring pass: bounds the activations' memory (rows × filters × levels floats) on long series.
_SCORING_CHUNK = 65_536


@register("tcn-sequence", "TCN forecaster run over the whole series in one pass (fast); score = prediction error")
class SequenceTCNForecasterDetector(ForecastDetector):
    """Causal dilated convolutional (TCN) forecaster trained and scored on whole series (see the module).

    Parameters
    ----------
    filters, kernel_size, dropout, error
        As in :class:`~vigil.detectors.forecasters.TCNForecasterDetector`.
    dilation_base : int
        Level ``i`` of the network is dilated ``dilation_base ** i`` times. A base up to ``kernel_size`` leaves
        no gaps in the history; a larger base needs fewer levels (less work a step) for the same reach.
    persistence : bool
        Add a learnt linear map of the latest row to the forecast, starting as the identity ("the next row
        is like this one"), so that the convolutions learn corrections to it. It halves the false alarms
        on SKAB's normal data but misses sustained shifts after their first rows, since the forecast then
        follows the shifted level (see docs/benchmarks-deep.md); off by default.
    window : int
        Least history each prediction sees; the network gets dilations 1, 2, 4, … until its receptive field
        spans it.
    epochs : int
        Most passes over the training rows. A pass is one optimisation step on all of them (full batch)
        when they fit in ``step_rows``.
    step_rows : int
        Most training rows one optimisation step reads (with their receptive field of history before them).
        Longer training series are cut into consecutive segments of this many rows, one step each per pass,
        in a random order; this bounds the memory of training on long series. The default keeps a month of
        readings at one per minute in a single step.
    learning_rate : float
        Adam's step size.
    validation_fraction : float
        Share of the training rows, the latest ones, whose loss early stopping watches and whose residuals
        define normal error.
    patience : int
        Steps without a better validation loss before training stops.
    relative_drift : float or None
        Drift guard (see :class:`~vigil.detectors.torch_base.TorchDetector`); a drifting sensor is seen by
        its first differences.
    device, contamination, random_state
        As in :class:`~vigil.detectors.torch_base.TorchDetector`.

    Attributes
    ----------
    receptive_field_ : int
        Rows of input each prediction depends on.
    relative_features_ : ndarray of bool
        The sensors judged by their changes (drift guard).
    error_scale_, residual_mean_, residual_precision_
        The error model of the validation residuals (see :mod:`vigil.detectors.forecasters`).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(400) / 4
    >>> X = np.column_stack([np.sin(t), np.cos(t)]) + 0.02 * np.random.default_rng(0).normal(size=(400, 2))
    >>> det = SequenceTCNForecasterDetector(window=8, filters=8, random_state=0).fit(X)
    >>> broken = X.copy(); broken[300, 0] += 1.0
    >>> int(det.score_samples(broken).argmax()), det.context_rows
    (300, 16)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "filters": [Interval(int, 1, None)],
        "kernel_size": [Interval(int, 2, None)],
        "dilation_base": [Interval(int, 2, None)],
        "persistence": [bool],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
        "step_rows": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        *,
        filters: int = 16,
        kernel_size: int = 3,
        dilation_base: int = 2,
        persistence: bool = False,
        dropout: float = 0.0,
        error: str = "mahalanobis",
        window: int = 32,
        epochs: int = 300,
        step_rows: int = 65_536,
        learning_rate: float = 1e-2,
        validation_fraction: float = 0.2,
        patience: int = 10,
        relative_drift: float | None = None,
        device: str = "auto",
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        # TorchDetector's __init__ would also store batch_size, which has no meaning here (full batch).
        BaseDetector.__init__(self, contamination=contamination, random_state=random_state)
        self.window = window
        self.epochs = epochs
        self.step_rows = step_rows
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.relative_drift = relative_drift
        self.device = device
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilation_base = dilation_base
        self.persistence = persistence
        self.dropout = dropout
        self.error = error

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"window": 6, "filters": 8, "epochs": 20, "random_state": 0},
            {"window": 4, "filters": 4, "kernel_size": 2, "epochs": 5, "error": "standardised", "relative_drift": 0.5},
            {"window": 10, "filters": 4, "dilation_base": 3, "persistence": True, "epochs": 5, "step_rows": 20},
        ]

    def _build_module(self, n_features: int):
        require_torch()
        from vigil.detectors.networks import TemporalConvForecaster

        return TemporalConvForecaster(
            n_features, self.window, self.filters, self.kernel_size, self.dropout, self.dilation_base, self.persistence
        )

    # ------------------------------------------------------------------ geometry
    def _span(self) -> int:
        """The network's receptive field."""
        from vigil.detectors.networks import tcn_geometry

        return tcn_geometry(self.window, self.kernel_size, self.dilation_base)[1]

    def _sample_rows(self) -> int:
        # The receptive field, one row before it (first differences), and the row predicted.
        return self._span() + 2

    def _min_fit_rows(self) -> int:
        return self._sample_rows() + 4

    def _min_fit_rows_reason(self) -> str:
        return f"its receptive field and the predicted row span {self._sample_rows()} rows"

    # ------------------------------------------------------------------ data
    def _inputs(self, values: NDArray[np.float64]) -> NDArray[np.float32]:
        """The series the network reads: drifting sensors as first differences (0 in the first row)."""
        series = np.array(values, dtype=np.float32)
        drifting = getattr(self, "relative_features_", None)
        if drifting is not None and drifting.any():
            series[:, drifting] = np.diff(series[:, drifting], axis=0, prepend=series[:1, drifting])
        return series

    def _residual_range(self, module, series, start: int, stop: int) -> Any:
        """Residuals ``start`` to ``stop - 1``: residual ``i`` is the prediction of row ``i + 1`` from the rows up
        to ``i`` minus that row. Reads only the rows those predictions depend on."""
        lo = max(start - self._span() + 1, 0)
        predictions = module.predict_sequence(series[None, lo:stop])[0]
        return predictions[start - lo :] - series[start + 1 : stop + 1]

    def _all_residuals(self, module, series, start: int = 0, stop: int | None = None) -> Any:
        """Residuals ``start`` to ``stop - 1`` (default: every row from the second on) without gradients, in
        chunks that bound the activations' memory on long series."""
        torch = require_torch()
        stop = len(series) - 1 if stop is None else stop
        module.eval()
        with torch.inference_mode():
            parts = [
                self._residual_range(module, series, a, min(a + _SCORING_CHUNK, stop))
                for a in range(start, stop, _SCORING_CHUNK)
            ]
        return torch.cat(parts)

    # ------------------------------------------------------------------ learning
    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        torch = require_torch()
        device = self._torch_device()
        self.relative_features_ = self._drifting_features(values)
        self.receptive_field_ = self._span()
        series = torch.from_numpy(self._inputs(values)).to(device)
        # Residual i is row i + 1's; only rows with a full history are learnt from, as only they are scored.
        first = self.context_rows - 1
        n_targets = len(values) - 1 - first
        n_val = math.floor(n_targets * self.validation_fraction)
        if n_val and n_targets - n_val < 2:
            n_val = 0
        split = first + n_targets - n_val
        # Consecutive segments of at most step_rows training rows, one optimisation step each.
        segments = [(a, min(a + self.step_rows, split)) for a in range(first, split, self.step_rows)]
        name = type(self).__name__
        with self._seeded(device) as generator:
            module = self._build_module(values.shape[1]).to(device)
            # fused: Adam updates every parameter in one kernel; per-tensor loops would cost more than the
            # arithmetic for a network this small.
            optimizer = torch.optim.Adam(module.parameters(), lr=self.learning_rate, fused=True)
            full_batch = len(segments) == 1
            pending: list[Any] = []  # full batch: the loss of the pass that measured the validation loss

            def validate() -> float:
                if not full_batch:
                    rows = (split,) if n_val else segments[-1]
                    return float(self._all_residuals(module, series, *rows).pow(2).mean())
                # One pass gives the training loss and, before the step, the validation loss (without
                # dropout, training and evaluation passes agree; a causal network cannot see ahead, so the
                # validation rows never feed a gradient).
                module.train()
                squared = self._residual_range(module, series, 0, len(series) - 1) ** 2
                loss = squared[first:split].mean()
                self._check_loss(loss)
                pending[:] = [loss]
                if n_val and self.dropout == 0:
                    return float(squared[split:].detach().mean())
                if n_val:
                    return float(self._all_residuals(module, series, split).pow(2).mean())
                return float(loss.detach())

            def step(index: Any, epoch: int) -> Any:
                if full_batch:
                    return descend(optimizer, pending.pop(), name)
                segment = segments[int(index[0])]
                return descend(optimizer, (self._residual_range(module, series, *segment) ** 2).mean(), name)

            history = train(
                module,
                step,
                validate,
                n_samples=len(segments),
                batch_size=1,
                epochs=self.epochs,
                patience=self.patience,
                generator=generator,
                name=name,
                validate_first=full_batch,
            )
        self.module_ = module
        self.epochs_trained_ = len(history)
        self.validation_loss_ = np.asarray(history, dtype=np.float64)
        residuals = self._all_residuals(module, series).double().cpu().numpy()
        self._fit_error_model(residuals[split:] if n_val else residuals[first:])

    # ------------------------------------------------------------------ scoring
    def _relative_errors(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        self._check_score_rows(values)
        torch = require_torch()
        device = next(self.module_.parameters()).device
        series = torch.from_numpy(self._inputs(values)).to(device)
        return self._rows_from_residuals(self._all_residuals(self.module_, series).double().cpu().numpy())

    def _check_score_rows(self, values: NDArray[np.float64]) -> None:
        rows = self._sample_rows()
        if values.shape[0] < rows:
            msg = (
                f"{type(self).__name__} needs at least {rows} rows (its receptive field, one row before it and "
                f"the row scored) to score, got {values.shape[0]}; stream rows through StreamScorer to score "
                "fewer at a time"
            )
            raise InvalidInputError(msg)

    def _rows_from_residuals(self, residuals: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-row, per-sensor score terms from the residuals of every row but the last."""
        terms = self._score_terms(residuals[self.context_rows - 1 :])
        # Rows without a full history take the score of the first row that has one (as windowed detectors do).
        head = np.repeat(terms[:1], self.context_rows, axis=0)
        return np.concatenate([head, terms], axis=0)
