"""Convolutional autoencoder image detector: score = reconstruction error, map = per-pixel error.

Each image is standardised (its own mean and standard deviation, which removes global exposure changes),
padded by edge replication to a multiple of the network's stride, and reconstructed by
:class:`~vigil.vision.networks.ConvAutoencoder`, trained on good images only with a squared-error loss.
The per-pixel squared error, averaged over channels and smoothed with a small Gaussian (a defect is a
region, not a pixel), divided by the mean error of the validation images, is the anomaly map; its maximum
is the image score.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import Interval
from vigil.vision.base import TorchImageDetector
from vigil.vision.registry import register_image_detector

__all__ = ["ConvAEImageDetector"]


def _widths_ok(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) > 0 and all(isinstance(v, int) and v > 0 for v in value)


@register_image_detector("image-ae", "Convolutional autoencoder; score and map = smoothed reconstruction error")
class ConvAEImageDetector(TorchImageDetector):
    """Reconstruction-error detector for images.

    Parameters
    ----------
    widths : tuple of int
        Channels of the stride-2 encoder stages (each halves the resolution).
    latent : int
        Channels of the bottleneck.
    smooth_sigma : float
        Blur (pixels at 128 px height, scaled with the image) of the squared-error map.
    epochs, batch_size, learning_rate, validation_fraction, patience, device, contamination, random_state
        See :class:`~vigil.vision.base.TorchImageDetector`.

    Attributes
    ----------
    module_ : ConvAutoencoder
    error_scale_ : float
        Mean smoothed pixel error of the validation images; maps are divided by it.

    Examples
    --------
    >>> from vigil.vision.synthetic import make_synthetic_set
    >>> data = make_synthetic_set(16, 2, size=16, seed=0)
    >>> det = ConvAEImageDetector(widths=(8, 16), latent=4, epochs=2, random_state=0).fit(data.images[:16])
    >>> det.score_samples(data.images[16:]).shape, det.anomaly_map(data.images[16:]).shape
    ((2,), (2, 16, 16))
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "widths": [_widths_ok],
        "latent": [Interval(int, 1, None)],
        "smooth_sigma": [Interval(float, 0.0, None)],
    }

    def __init__(
        self,
        *,
        widths: tuple[int, ...] = (32, 64, 128),
        latent: int = 32,
        smooth_sigma: float = 2.0,
        epochs: int = 40,
        batch_size: int = 32,
        learning_rate: float = 2e-3,
        validation_fraction: float = 0.15,
        patience: int = 6,
        device: str = "auto",
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            validation_fraction=validation_fraction,
            patience=patience,
            device=device,
            contamination=contamination,
            random_state=random_state,
        )
        self.widths = widths
        self.latent = latent
        self.smooth_sigma = smooth_sigma

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {
                "widths": (8, 16, 16),
                "latent": 4,
                "epochs": 15,
                "learning_rate": 1e-2,
                "batch_size": 8,
                "validation_fraction": 0.0,
                "random_state": 0,
            }
        ]

    def _build_module(self, channels: int):
        from vigil.vision.networks import ConvAutoencoder

        return ConvAutoencoder(channels, widths=tuple(self.widths), latent=int(self.latent))

    def _normalise(self, x):
        from vigil.vision.networks import standardise_and_pad

        return standardise_and_pad(x, 2 ** len(self.widths))

    def _pixel_errors(self, module, x):
        from vigil.vision.networks import gaussian_blur

        h, w = x.shape[2:]
        z = self._normalise(x)
        errors = ((module(z) - z) ** 2)[:, :, :h, :w].mean(dim=1, keepdim=True)
        sigma = float(self.smooth_sigma) * h / 128.0
        return gaussian_blur(errors, sigma)[:, 0]

    def _batch_loss(self, module, images, targets, generator):
        z = self._normalise(images)
        return ((module(z) - z) ** 2).mean()

    def _after_training(self, module, train: NDArray[np.float32], val: NDArray[np.float32]) -> None:
        errors = self._run(lambda x: self._pixel_errors(module, x), val).double().cpu().numpy()
        self.error_scale_ = float(max(errors.mean(), 1e-12))

    def _score_maps(self, images: NDArray[np.float32], *, want_maps: bool) -> tuple[Any, Any]:
        maps = self._run(lambda x: self._pixel_errors(self.module_, x), images).double().cpu().numpy()
        maps /= self.error_scale_
        return maps.reshape(len(maps), -1).max(axis=1), maps
