"""A dense autoencoder anomaly detector for tabular traffic features (encoded flow records).

Trained on normal rows only, it scores a row by its mean squared reconstruction error; each feature's
squared error is its contribution. The network is :class:`vigil.detectors.networks.DenseAutoencoder` (with
LayerNorm); this module is the training glue and the detector contract. Weights are saved as npz arrays, never pickled.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import BaseDetector, Interval
from vigil.registry import register

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without torch
    msg = "the flow autoencoder needs PyTorch: pip install 'vigil[deep]'"
    raise ImportError(msg) from exc

from vigil.detectors.networks import DenseAutoencoder
from vigil.detectors.training import descend, load_weight_arrays, seeded, threads, train, weight_arrays

__all__ = ["FlowAutoencoderDetector"]

_PREFIX = "net."


def _positive_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) >= 1 and all(isinstance(v, int) and v >= 1 for v in value)


@register("flow-ae", "Dense autoencoder (PyTorch) over encoded flow or packet features; score = reconstruction MSE")
class FlowAutoencoderDetector(BaseDetector):
    """Dense autoencoder trained on normal rows; the score is the mean squared reconstruction error.

    Parameters
    ----------
    hidden : tuple of int
        Widths of the encoder's hidden layers (the decoder mirrors them).
    latent : int
        Width of the bottleneck (``code`` before; that name still works, with a warning, for one release).
    epochs : int
        Most passes over the training rows; early stopping on a held-out share usually ends sooner.
    batch_size : int
    learning_rate, weight_decay : float
        AdamW settings.
    validation_fraction : float
        Share of the training rows (random) held out for early stopping (``validation`` before). Each epoch
        visits every other training row once, in a new random order.
    patience : int
        Epochs without a better validation loss before training stops.
    n_threads : int or None
        torch intra-op threads during fit and scoring (None: torch's default).
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(300, 1))
    >>> X = np.hstack([t, -t, 2 * t]) + 0.05 * rng.normal(size=(300, 3))
    >>> det = FlowAutoencoderDetector(hidden=(8,), latent=1, epochs=200, patience=20, batch_size=32, random_state=0)
    >>> det = det.fit(X)
    >>> det.predict([[0.5, -0.5, 1.0], [0.5, 0.5, 1.0]]).tolist()
    [False, True]
    """

    _renamed_params: ClassVar[dict[str, str]] = {"code": "latent", "validation": "validation_fraction"}
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden": [_positive_int_tuple],
        "latent": [Interval(int, 1, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0.0, None, closed="neither")],
        "weight_decay": [Interval(float, 0.0, None)],
        "validation_fraction": [Interval(float, 0.0, 0.5, closed="left")],
        "patience": [Interval(int, 1, None)],
        "n_threads": [None, Interval(int, 1, None)],
    }

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (64,),
        latent: int = 16,
        epochs: int = 20,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-5,
        validation_fraction: float = 0.1,
        patience: int = 3,
        n_threads: int | None = None,
        contamination: float = 0.01,
        random_state: int | None = None,
        **renamed: Any,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.hidden = hidden
        self.latent = latent
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.n_threads = n_threads
        self._take_renamed(renamed)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"hidden": (8,), "latent": 2, "epochs": 30, "batch_size": 32, "n_threads": 1}]

    def _min_fit_rows(self) -> int:
        return 4

    def _network(self) -> DenseAutoencoder:
        return DenseAutoencoder(self.n_features_in_, self.hidden, self.latent, layer_norm=True)

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        rng = self._rng()
        inputs = torch.from_numpy(values.astype(np.float32))
        n_val = round(self.validation_fraction * len(values))
        order = rng.permutation(len(values))
        val_rows, train_rows = (order[:n_val], order[n_val:]) if n_val >= 1 else (order, order)
        train_x, val = inputs[torch.from_numpy(train_rows)], inputs[torch.from_numpy(val_rows)]
        with seeded(int(rng.integers(2**31 - 1))) as generator, threads(self.n_threads):
            net = self._network()
            optimizer = torch.optim.AdamW(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)

            def step(rows: torch.Tensor, epoch: int) -> torch.Tensor:
                batch = train_x[rows]
                return descend(optimizer, ((net(batch) - batch) ** 2).mean(), type(self).__name__)

            def validate() -> float:
                net.eval()
                with torch.no_grad():
                    return float(((net(val) - val) ** 2).mean())

            history = train(
                net,
                step,
                validate,
                n_samples=len(train_x),
                batch_size=self.batch_size,
                epochs=self.epochs,
                patience=self.patience,
                generator=generator,
                name=type(self).__name__,
            )
        self.n_epochs_ = len(history)
        self.weights_ = weight_arrays(net, _PREFIX)
        self._net: DenseAutoencoder | None = net

    def _loaded_network(self) -> DenseAutoencoder:
        net = getattr(self, "_net", None)
        if net is None:
            net = self._network()
            load_weight_arrays(net, self.weights_, _PREFIX, "FlowAutoencoderDetector")
            net.eval()
            self._net = net
        return net

    def _squared_errors(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        net = self._loaded_network()
        inputs = torch.from_numpy(values.astype(np.float32))
        with threads(self.n_threads), torch.no_grad():
            parts = [(net(inputs[i : i + 8192]) - inputs[i : i + 8192]) ** 2 for i in range(0, len(inputs), 8192)]
        return torch.cat(parts).double().numpy()

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._squared_errors(values).mean(axis=1)

    def _contributions(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._squared_errors(values)

    # ------------------------------------------------------------------ persistence: weights as flat arrays
    def _learned_state(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k != "weights_"}
        for key, value in getattr(self, "weights_", {}).items():
            state[f"weight:{key}"] = value
        return state

    def _restore_state(self, state: dict[str, Any]) -> None:
        weights = {}
        for key, value in state.items():
            if key.startswith("weight:"):
                weights[key[len("weight:") :]] = np.asarray(value)
            else:
                setattr(self, key, value)
        self.hidden = tuple(self.hidden)
        self.weights_ = weights
        self._net = None
