"""Prediction detectors: a network forecasts each row from the rows before it; the error is the score.

After training, the prediction residuals of the validation windows (the latest training windows, never
used for a gradient step) define "normal" error. With ``error="standardised"`` each sensor's squared
residual is divided by its mean on those windows and the score is their mean over sensors. With
``error="mahalanobis"`` (Malhotra et al. 2015) a Gaussian is fitted to the residual vectors (Ledoit-Wolf
shrinkage, as a few hundred windows estimate a covariance poorly) and the score is the squared
Mahalanobis distance divided by the number of sensors, so that both kinds score about 1 on normal rows.
Correlated sensors then share their error instead of counting it once each.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import Interval, Options
from vigil.detectors.torch_base import TorchDetector, require_torch
from vigil.features.windows import rows_from_windows
from vigil.registry import register

__all__ = ["ForecastDetector", "LSTMForecasterDetector", "TCNForecasterDetector"]


class ForecastDetector(TorchDetector):
    """Base class of the forecasters: a sample is ``window`` rows of input and the row that follows.

    Subclasses implement ``_build_module(n_features)`` returning a network that maps (batch, window, d) to
    (batch, d). A row's score is the error of its own prediction, so ``context_rows`` is ``window``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"error": [Options("mahalanobis", "standardised")]}
    error: str  # set by each subclass's __init__

    def _sample_rows(self) -> int:
        return self.window + 1

    def _residuals(self, module, batch):
        return module(batch[:, :-1]) - batch[:, -1]

    def _errors(self, module, batch):
        return self._residuals(module, batch) ** 2

    def _after_fit(self, module, validation) -> None:
        self._fit_error_model(self._batched(self._residuals, module, validation))

    def _fit_error_model(self, residuals: NDArray[np.float64]) -> None:
        """Learn "normal" error from the validation residuals (n, d): each sensor's mean squared residual
        (``error_scale_``) and, for ``error="mahalanobis"``, their Gaussian."""
        scale = (residuals**2).mean(axis=0)
        self.error_scale_ = np.maximum(scale, max(float(scale.max()), 1e-12) * 1e-6)
        if self.error == "mahalanobis":
            from sklearn.covariance import LedoitWolf

            self.residual_mean_ = residuals.mean(axis=0)
            if len(residuals) > 1:
                covariance = LedoitWolf().fit(residuals).covariance_
            else:
                covariance = np.diag(self.error_scale_)
            d = covariance.shape[0]
            # A small ridge keeps the precision finite when a sensor is predicted perfectly (zero variance).
            ridge = 1e-6 * max(float(np.trace(covariance)) / d, 1e-12)
            self.residual_precision_ = np.linalg.inv(covariance + ridge * np.eye(d))

    def _score_terms(self, residuals: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-sensor score terms of residuals (n, d); their mean over sensors is the score."""
        if self.error == "standardised":
            return residuals**2 / self.error_scale_
        # Per-sensor terms r_j * (P r)_j sum to the squared Mahalanobis distance rᵀ P r, so their mean is the
        # score and their (absolute) sizes say which sensors carried it.
        centred = residuals - self.residual_mean_
        return centred * (centred @ self.residual_precision_)

    def _relative_errors(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._rows_from_residuals(self._batched(self._residuals, self.module_, self._windows(values)))

    def _rows_from_residuals(self, residuals: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-row, per-sensor score terms from the residuals of every window (batched scoring in
        :mod:`vigil.detectors.fleet` computes the residuals of many members at once)."""
        return rows_from_windows(self._score_terms(residuals), self._sample_rows())


@register("lstm-forecaster", "LSTM that predicts each row from the previous ones; score = Mahalanobis prediction error")
class LSTMForecasterDetector(ForecastDetector):
    """Stacked LSTM forecaster in the style of Malhotra et al. (2015): predict the next row, score its error.

    Parameters
    ----------
    hidden_size : int
        Units of each LSTM layer.
    num_layers : int
        Stacked LSTM layers.
    dropout : float
        Dropout between the LSTM layers and before the output layer, during training.
    error : {"mahalanobis", "standardised"}
        How the residual vector becomes a score (see the module docstring).
    window : int
        Rows of history each prediction sees (the sequence length).
    epochs, batch_size, learning_rate, validation_fraction, patience, relative_drift, device
        See :class:`~vigil.detectors.torch_base.TorchDetector`; ``contamination`` and ``random_state`` as
        in :class:`~vigil.base.BaseDetector`.

    Attributes
    ----------
    error_scale_ : ndarray of shape (n_features,)
        Mean squared residual of each sensor on the validation windows.
    residual_mean_, residual_precision_ : ndarray
        The Gaussian of the validation residuals (``error="mahalanobis"`` only).

    References
    ----------
    P. Malhotra, L. Vig, G. Shroff, P. Agarwal, "Long Short Term Memory Networks for Anomaly Detection in
    Time Series", ESANN 2015. (Here one step ahead; the paper also predicts several.)

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(400) / 4
    >>> X = np.column_stack([np.sin(t), np.cos(t)]) + 0.02 * np.random.default_rng(0).normal(size=(400, 2))
    >>> det = LSTMForecasterDetector(window=8, hidden_size=8, epochs=10, random_state=0).fit(X)
    >>> broken = X.copy(); broken[300, 0] += 1.0
    >>> s = det.score_samples(broken)
    >>> int(s.argmax()), s.shape
    (300, (400,))
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden_size": [Interval(int, 1, None)],
        "num_layers": [Interval(int, 1, None)],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
    }

    def __init__(
        self,
        *,
        hidden_size: int = 32,
        num_layers: int = 2,
        dropout: float = 0.0,
        error: str = "mahalanobis",
        window: int = 32,
        epochs: int = 60,
        batch_size: int = 64,
        learning_rate: float = 3e-3,
        validation_fraction: float = 0.2,
        patience: int = 8,
        relative_drift: float | None = None,
        device: str = "auto",
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            window=window,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            validation_fraction=validation_fraction,
            patience=patience,
            relative_drift=relative_drift,
            device=device,
            contamination=contamination,
            random_state=random_state,
        )
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.error = error

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"window": 4, "hidden_size": 8, "num_layers": 1, "epochs": 5, "random_state": 0},
            {"window": 3, "hidden_size": 4, "epochs": 3, "error": "standardised", "learning_rate": 1e-2},
        ]

    def _build_module(self, n_features: int):
        require_torch()
        from vigil.detectors.recurrent_networks import LSTMForecaster

        return LSTMForecaster(n_features, self.hidden_size, self.num_layers, self.dropout)


@register("tcn-forecaster", "Temporal convolutional network predicting each row; score = Mahalanobis prediction error")
class TCNForecasterDetector(ForecastDetector):
    """Causal dilated convolutional (TCN) forecaster: predict each row from the window before it.

    Convolutional forecasters are the strongest deep family on multivariate telemetry in the TSB-AD
    benchmark (its "CNN", a DeepAnT-style forecaster, leads the TSB-AD-M VUS-PR leaderboard), and they
    train and score much faster than recurrent ones: every time step is computed in parallel.

    Parameters
    ----------
    filters : int
        Channels of every convolution.
    kernel_size : int
        Kernel length of the dilated convolutions (≥ 2); the number of levels follows from it and
        ``window`` (dilations 1, 2, 4, … until the receptive field spans the window).
    dropout : float
        Dropout inside each residual block, during training.
    error : {"mahalanobis", "standardised"}
        How the residual vector becomes a score (see the module docstring).
    window : int
        Rows of history each prediction sees.
    epochs, batch_size, learning_rate, validation_fraction, patience, relative_drift, device
        See :class:`~vigil.detectors.torch_base.TorchDetector`; ``contamination`` and ``random_state`` as
        in :class:`~vigil.base.BaseDetector`.

    References
    ----------
    S. Bai, J. Z. Kolter, V. Koltun, "An Empirical Evaluation of Generic Convolutional and Recurrent
    Networks for Sequence Modeling", 2018. M. Munir et al., "DeepAnT", IEEE Access 2019.
    Q. Liu, J. Paparrizos, "The Elephant in the Room: Towards A Reliable Time-Series Anomaly Detection
    Benchmark" (TSB-AD), NeurIPS 2024.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(400) / 4
    >>> X = np.column_stack([np.sin(t), np.cos(t)]) + 0.02 * np.random.default_rng(0).normal(size=(400, 2))
    >>> det = TCNForecasterDetector(window=8, filters=8, epochs=10, random_state=0).fit(X)
    >>> broken = X.copy(); broken[300, 0] += 1.0
    >>> int(det.score_samples(broken).argmax())
    300
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "filters": [Interval(int, 1, None)],
        "kernel_size": [Interval(int, 2, None)],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
    }

    def __init__(
        self,
        *,
        filters: int = 32,
        kernel_size: int = 3,
        dropout: float = 0.0,
        error: str = "mahalanobis",
        window: int = 32,
        epochs: int = 60,
        batch_size: int = 64,
        learning_rate: float = 3e-3,
        validation_fraction: float = 0.2,
        patience: int = 8,
        relative_drift: float | None = None,
        device: str = "auto",
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            window=window,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            validation_fraction=validation_fraction,
            patience=patience,
            relative_drift=relative_drift,
            device=device,
            contamination=contamination,
            random_state=random_state,
        )
        self.filters = filters
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.error = error

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"window": 6, "filters": 8, "epochs": 5, "random_state": 0},
            {"window": 4, "filters": 4, "kernel_size": 2, "epochs": 3, "error": "standardised"},
        ]

    def _build_module(self, n_features: int):
        require_torch()
        from vigil.detectors.networks import TemporalConvForecaster

        return TemporalConvForecaster(n_features, self.window, self.filters, self.kernel_size, self.dropout)
