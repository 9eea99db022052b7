"""Reconstruction detectors with feed-forward, convolutional and recurrent networks."""

from __future__ import annotations

from typing import Any, ClassVar

from vigil.base import Interval
from vigil.detectors.torch_base import TorchDetector, require_torch
from vigil.registry import register

__all__ = ["AutoencoderDetector", "ConvAutoencoderDetector", "LSTMAutoencoderDetector"]


class _ReconstructionDetector(TorchDetector):
    """Score = per-feature squared reconstruction error, averaged over the window's time steps."""

    def _errors(self, module, batch):
        return ((module(batch) - batch) ** 2).mean(dim=1)


def _hidden_sizes(n_inputs: int, latent: int) -> tuple[int, ...]:
    # One hidden layer halfway (in log scale) between input and code; at least 16 units so that few
    # sensors still get a layer wide enough not to lose whole directions to dead ReLUs.
    return (max(16, 2 * latent, round((n_inputs * latent) ** 0.5)),)


@register("autoencoder", "Dense autoencoder of (windowed) readings; score = per-sensor reconstruction error")
class AutoencoderDetector(_ReconstructionDetector):
    """Fully connected autoencoder over flattened windows of ``window`` rows.

    Parameters
    ----------
    latent : int
        Size of the code layer.
    dropout : float
        Dropout after each hidden layer during training.
    window, epochs, batch_size, learning_rate, validation_fraction, patience, relative_drift, device
        See :class:`~vigil.detectors.torch_base.TorchDetector`; ``contamination`` and ``random_state`` as
        in :class:`~vigil.base.BaseDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(300, 1))
    >>> X = np.hstack([t, -t, 2 * t]) + 0.05 * rng.normal(size=(300, 3))
    >>> det = AutoencoderDetector(latent=1, epochs=50, learning_rate=1e-2, random_state=0).fit(X)
    >>> s = det.score_samples([[1.0, -1.0, 2.0], [1.0, 1.0, 2.0]])
    >>> bool(s[1] > 10 * s[0])
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "latent": [Interval(int, 1, None)],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
    }

    def __init__(
        self,
        *,
        latent: int = 4,
        dropout: float = 0.0,
        window: int = 1,
        epochs: int = 100,
        batch_size: int = 64,
        learning_rate: float = 5e-3,
        validation_fraction: float = 0.2,
        patience: int = 5,
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
        self.latent = latent
        self.dropout = dropout

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"latent": 2, "epochs": 15, "random_state": 0}, {"latent": 2, "window": 4, "epochs": 10}]

    def _build_module(self, n_features: int):
        require_torch()
        from vigil.detectors.networks import DenseAutoencoder

        n_inputs = n_features * self.window
        return DenseAutoencoder(n_inputs, _hidden_sizes(n_inputs, self.latent), self.latent, self.dropout)


@register("conv-ae", "1-D convolutional autoencoder over sliding windows (SKAB's leading architecture)")
class ConvAutoencoderDetector(_ReconstructionDetector):
    """Convolutional autoencoder over windows of ``window`` rows.

    Parameters
    ----------
    filters : tuple of int
        Channels of the two encoder convolutions.
    kernel_size : int
        Odd kernel length of every convolution.
    dropout : float
        Dropout after the first encoder and decoder layers.
    window, epochs, batch_size, learning_rate, validation_fraction, patience, relative_drift, device
        See :class:`~vigil.detectors.torch_base.TorchDetector`; ``contamination`` and ``random_state`` as
        in :class:`~vigil.base.BaseDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 30, 400)
    >>> X = np.column_stack([np.sin(t), np.cos(t)]) + 0.05 * np.random.default_rng(0).normal(size=(400, 2))
    >>> det = ConvAutoencoderDetector(window=16, filters=(8, 4), epochs=20, random_state=0).fit(X)
    >>> det.score_samples(X).shape
    (400,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "filters": [lambda v: isinstance(v, tuple | list) and len(v) == 2 and all(int(f) == f > 0 for f in v)],
        "kernel_size": [lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1 and v % 2 == 1],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
    }

    def __init__(
        self,
        *,
        filters: tuple[int, int] = (32, 16),
        kernel_size: int = 7,
        dropout: float = 0.2,
        window: int = 60,
        epochs: int = 100,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        patience: int = 5,
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

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"window": 8, "filters": (8, 4), "kernel_size": 3, "epochs": 10, "random_state": 0}]

    def _build_module(self, n_features: int):
        require_torch()
        from vigil.detectors.networks import ConvAutoencoder

        wide, narrow = (int(f) for f in self.filters)
        return ConvAutoencoder(n_features, (wide, narrow), self.kernel_size, self.dropout)


@register("lstm-ae", "LSTM sequence-to-sequence autoencoder of windows; score = per-sensor reconstruction error")
class LSTMAutoencoderDetector(_ReconstructionDetector):
    """LSTM encoder-decoder that rebuilds each window of ``window`` rows from a ``latent``-sized code.

    Parameters
    ----------
    hidden_size : int
        Units of the encoder and decoder LSTMs.
    latent : int
        Size of the code the window is squeezed through.
    num_layers : int
        Stacked LSTM layers in the encoder and in the decoder.
    dropout : float
        Dropout on the code and the decoder states (and between stacked layers), during training.
    window : int
        Rows per window (the sequence length); a row's score is that of the window ending at it.
    epochs, batch_size, learning_rate, validation_fraction, patience, relative_drift, device
        See :class:`~vigil.detectors.torch_base.TorchDetector`; ``contamination`` and ``random_state`` as
        in :class:`~vigil.base.BaseDetector`.

    References
    ----------
    P. Malhotra et al., "LSTM-based Encoder-Decoder for Multi-sensor Anomaly Detection", ICML Anomaly
    Detection Workshop 2016.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(300) / 3
    >>> X = np.column_stack([np.sin(t), np.cos(t)]) + 0.02 * np.random.default_rng(0).normal(size=(300, 2))
    >>> det = LSTMAutoencoderDetector(window=8, hidden_size=8, latent=4, epochs=10, random_state=0).fit(X)
    >>> det.score_samples(X).shape
    (300,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden_size": [Interval(int, 1, None)],
        "latent": [Interval(int, 1, None)],
        "num_layers": [Interval(int, 1, None)],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
    }

    def __init__(
        self,
        *,
        hidden_size: int = 32,
        latent: int = 8,
        num_layers: int = 1,
        dropout: float = 0.0,
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
        self.latent = latent
        self.num_layers = num_layers
        self.dropout = dropout

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"window": 4, "hidden_size": 8, "latent": 4, "epochs": 5, "random_state": 0},
            {"window": 3, "hidden_size": 4, "latent": 2, "num_layers": 2, "dropout": 0.1, "epochs": 3},
        ]

    def _build_module(self, n_features: int):
        require_torch()
        from vigil.detectors.recurrent_networks import LSTMAutoencoder

        return LSTMAutoencoder(n_features, self.hidden_size, self.latent, self.num_layers, self.dropout)
