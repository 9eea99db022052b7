"""USAD: UnSupervised Anomaly Detection on multivariate time series with two adversarial autoencoders."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import Interval
from vigil.detectors.torch_base import TorchDetector, require_torch
from vigil.registry import register

__all__ = ["USADDetector"]


def _usad_hidden(n_inputs: int, latent: int) -> tuple[int, ...]:
    # The paper halves the width twice between input and code; a cap keeps long windows of many sensors
    # (38 × 32 on SMD) affordable on a CPU, and a floor keeps few sensors from dead-ReLU bottlenecks.
    return tuple(max(16, 2 * latent, min(256, n_inputs // f)) for f in (2, 4))


@register("usad", "USAD: two autoencoders sharing an encoder, trained adversarially over sliding windows")
class USADDetector(TorchDetector):
    """USAD (Audibert et al., KDD 2020) over flattened windows of ``window`` rows.

    An encoder E and two decoders D1, D2 form two autoencoders. In epoch ``n`` AE1 = (E, D1) minimises
    ``‖w − w1‖²/n + (1 − 1/n)‖w − w3‖²`` and AE2 = (E, D2) minimises ``‖w − w2‖²/n − (1 − 1/n)‖w − w3‖²``,
    with ``w1 = D1(E(w))``, ``w2 = D2(E(w))`` and ``w3 = D2(E(w1))``: AE2 learns to tell real windows from
    AE1's reconstructions while AE1 learns to fool it, which amplifies the error of windows unlike the
    training data. Inputs are min-max scaled to [0, 1] on the training rows, as in the paper, and the
    decoders end in a sigmoid. Each sensor's error is ``alpha·‖w − w1‖² + (1 − alpha)·‖w − w3‖²`` over the window,
    divided by its mean on the validation windows; the score is the mean over sensors. Early stopping
    watches the plain reconstruction errors of both autoencoders on the validation windows, which, unlike
    the adversarial terms, should only go down.

    Parameters
    ----------
    latent : int
        Size of the shared code.
    hidden : tuple of int
        Widths of the hidden layers between input and code (mirrored in the decoders); the empty tuple
        (default) halves the flattened window twice, as in the paper, capped at 256 units.
    alpha : float
        Weight of AE1's reconstruction error in the score; ``1 - alpha`` weighs the adversarial one.
        Lower it to favour recall, raise it to favour precision (the paper's sensitivity knob).
    window : int
        Rows per window.
    epochs, batch_size, learning_rate, validation_fraction, patience, relative_drift, device
        See :class:`~vigil.detectors.torch_base.TorchDetector`; ``contamination`` and ``random_state`` as
        in :class:`~vigil.base.BaseDetector`.

    References
    ----------
    J. Audibert, P. Michiardi, F. Guyard, S. Marti, M. A. Zuluaga, "USAD: UnSupervised Anomaly Detection
    on Multivariate Time Series", KDD 2020.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(300) / 3
    >>> X = np.column_stack([np.sin(t), np.cos(t)]) + 0.02 * np.random.default_rng(0).normal(size=(300, 2))
    >>> det = USADDetector(window=4, latent=2, epochs=5, random_state=0).fit(X)
    >>> det.score_samples(X).shape, det.feature_contributions(X[:10]).shape
    ((300,), (10, 2))
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "latent": [Interval(int, 1, None)],
        "hidden": [lambda v: isinstance(v, tuple | list) and all(isinstance(h, int) and h > 0 for h in v)],
        "alpha": [Interval(float, 0.0, 1.0)],
    }

    def __init__(
        self,
        *,
        latent: int = 16,
        hidden: tuple[int, ...] = (),
        alpha: float = 0.5,
        window: int = 12,
        epochs: int = 60,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
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
        self.latent = latent
        self.hidden = hidden
        self.alpha = alpha

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"window": 3, "latent": 3, "epochs": 6, "random_state": 0},
            {"window": 2, "latent": 2, "hidden": (8, 4), "epochs": 3},
        ]

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        # The paper's min-max scaling to [0, 1], learned on the training rows: the sigmoid decoders can
        # then rebuild every normal value, and values outside the training range cannot be rebuilt.
        low, high = values.min(axis=0), values.max(axis=0)
        self.input_min_ = low
        self.input_range_ = np.where(high > low, high - low, 1.0)
        super()._fit(values, y)

    def _windows(self, values: NDArray[np.float64]) -> NDArray[np.float32]:
        return super()._windows((values - self.input_min_) / self.input_range_)

    def _build_module(self, n_features: int):
        require_torch()
        from vigil.detectors.networks import USADNetwork

        n_inputs = n_features * self.window
        hidden = tuple(int(h) for h in self.hidden) if self.hidden else _usad_hidden(n_inputs, self.latent)
        return USADNetwork(n_inputs, hidden, self.latent)

    def _errors(self, module, batch):
        w1, w3 = module(batch)
        return self.alpha * ((batch - w1) ** 2).mean(dim=1) + (1.0 - self.alpha) * ((batch - w3) ** 2).mean(dim=1)

    def _validation_loss(self, module, windows) -> float:
        def plain(net, batch):
            w1, w2, _ = net.reconstructions(batch)
            return ((batch - w1) ** 2).mean(dim=1) + ((batch - w2) ** 2).mean(dim=1)

        return float(self._batched(plain, module, windows).mean())

    def _optimizers(self, module):
        torch = require_torch()
        shared = list(module.encoder.parameters())
        return [
            torch.optim.Adam([*shared, *module.decoder1.parameters()], lr=self.learning_rate),
            torch.optim.Adam([*shared, *module.decoder2.parameters()], lr=self.learning_rate),
        ]

    def _train_step(self, module, batch, optimizers, epoch):
        weight = 1.0 / (epoch + 1)
        loss = None
        for which, optimizer in enumerate(optimizers):
            # Each autoencoder takes its step from a fresh forward pass and clean gradients (the reference
            # code lets AE1's loss leak gradients into D2's step).
            module.zero_grad(set_to_none=True)
            w1, w2, w3 = module.reconstructions(batch)
            adversarial = ((batch - w3) ** 2).mean()
            if which == 0:
                loss = weight * ((batch - w1) ** 2).mean() + (1.0 - weight) * adversarial
            else:
                loss = weight * ((batch - w2) ** 2).mean() - (1.0 - weight) * adversarial
            self._check_loss(loss)
            loss.backward()
            optimizer.step()
        module.zero_grad(set_to_none=True)
        return loss
