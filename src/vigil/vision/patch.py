"""Patch-statistics image detector: a Gaussian per patch position over fixed convolutional texture features.

PaDiM-style (Defard et al., ICPR 2020), with the pretrained backbone replaced by
:class:`~vigil.vision.networks.FilterBank`, a fixed convolutional filter bank that needs no downloaded
weights: for every position of a ``grid`` × ``grid`` patch layout, the training images' feature vectors get
a mean and a shrunk covariance, and a new patch scores its Mahalanobis distance to them. The image score is
the largest patch distance; the anomaly map is the patch distances, bilinearly upsampled to the image.

Why this design (chosen on synthetic defects pasted into held-out *training* images; the numbers are in
``docs/benchmarks-vision.md``): fixed random CNN features and k-nearest-neighbour memory banks over all
patches scored near chance on these textures, because the striped surface and its lighting vary more
between good images than a small defect changes a random feature; position-wise Gaussians over features
that divide out illumination (log ratio to a blurred copy) found holes, scratches and foreign patches.
Fitting is closed-form (no training loop), so it is deterministic and takes seconds.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import Interval
from vigil.errors import InvalidInputError
from vigil.vision.base import ImageDetector, require_torch
from vigil.vision.registry import register_image_detector

__all__ = ["PatchGaussianDetector"]


def _positive_scales(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) > 0 and all(isinstance(v, (int, float)) and v > 0 for v in value)


@register_image_detector("patch-gauss", "Gaussian per patch position over fixed CNN texture features (PaDiM-style)")
class PatchGaussianDetector(ImageDetector):
    """Mahalanobis distance of each patch's texture features to the training patches at the same position.

    Parameters
    ----------
    grid : int
        Patches per image side; each patch covers (H / grid) × (W / grid) pixels.
    flat_sigma : float
        Blur, in pixels *at 128 px image height*, of the illumination estimate divided out of every image
        (scaled with the image height).
    scales : tuple of float
        Blurs of the texture responses, in pixels at 128 px height (scaled likewise).
    shrinkage : float
        Weight of the scaled identity mixed into each covariance: 0 is the sample covariance, 1 ignores
        correlations. Needed because the training images (hundreds) are few for the feature count (~30).
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`; fitting uses no randomness.

    Attributes
    ----------
    mean_ : ndarray, shape (grid², F)
        Mean standardised feature vector at each patch position.
    precision_ : ndarray, shape (grid², F, F)
        Inverse of the shrunk covariance at each position.
    feature_scale_ : ndarray, shape (F,)
        Standard deviation of each feature over all training patches (features are divided by it).
    map_scale_ : float
        Mean training patch distance; maps are divided by it, so 1 is a typical normal patch.

    Examples
    --------
    >>> from vigil.vision.synthetic import make_synthetic_set
    >>> data = make_synthetic_set(24, 4, size=32, seed=0)
    >>> det = PatchGaussianDetector(grid=8).fit(data.images[:24])
    >>> scores = det.score_samples(data.images[24:])
    >>> bool(scores.min() > np.median(det.score_samples(data.images[:24])))
    True
    >>> det.anomaly_map(data.images[24:]).shape
    (4, 32, 32)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "grid": [Interval(int, 1, None)],
        "flat_sigma": [Interval(float, 0.0, None, closed="neither")],
        "scales": [_positive_scales],
        "shrinkage": [Interval(float, 0.0, 1.0)],
    }

    def __init__(
        self,
        *,
        grid: int = 16,
        flat_sigma: float = 8.0,
        scales: tuple[float, ...] = (1.0, 2.0, 4.0),
        shrinkage: float = 0.05,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.grid = grid
        self.flat_sigma = flat_sigma
        self.scales = scales
        self.shrinkage = shrinkage

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"grid": 8}, {"grid": 4, "scales": (1.0,), "shrinkage": 0.5}]

    def filter_bank(self):
        """The fixed :class:`~vigil.vision.networks.FilterBank` of this fitted detector's image size."""
        return self._bank()

    def _bank(self):
        from vigil.vision.networks import FilterBank

        factor = float(self.image_shape_[0]) / 128.0
        return FilterBank(
            grid=int(self.grid),
            flat_sigma=float(self.flat_sigma) * factor,
            scales=tuple(float(s) * factor for s in self.scales),
        )

    def _features(self, images: NDArray[np.float32]) -> NDArray[np.float64]:
        """Standardised features, shape (n, grid², F)."""
        torch = require_torch()
        bank = self._bank()
        with torch.inference_mode():
            features = bank(torch.from_numpy(images)).double().numpy()
        n, f = features.shape[:2]
        features = features.reshape(n, f, -1).transpose(0, 2, 1)
        if hasattr(self, "feature_scale_"):
            features = features / self.feature_scale_
        return features

    def _fit_images(self, images: NDArray[np.float32], y: Any, groups: Any) -> None:
        h, w = self.image_shape_[:2]
        if self.grid > min(h, w):
            msg = f"grid={self.grid} is larger than the images ({h}×{w} px)"
            raise InvalidInputError(msg)
        features = self._features(images)
        scale = features.reshape(-1, features.shape[2]).std(axis=0)
        self.feature_scale_ = np.maximum(scale, max(float(scale.max()), 1e-12) * 1e-6)
        features = features / self.feature_scale_
        n, _, f = features.shape
        self.mean_ = features.mean(axis=0)
        centred = features - self.mean_
        covariance = np.einsum("nlf,nlg->lfg", centred, centred) / max(n - 1, 1)
        level = np.trace(covariance, axis1=1, axis2=2)[:, None, None] / f
        eye = np.eye(f)
        shrunk = (1.0 - self.shrinkage) * covariance + self.shrinkage * level * eye + 1e-6 * eye
        self.precision_ = np.linalg.inv(shrunk)
        self.map_scale_ = 1.0
        distances = self._distances(images)
        self.map_scale_ = float(max(distances.mean(), 1e-12))

    def _distances(self, images: NDArray[np.float32]) -> NDArray[np.float64]:
        centred = (self._features(images) - self.mean_).transpose(1, 0, 2)  # (positions, images, features)
        squared = (np.matmul(centred, self.precision_) * centred).sum(axis=2).T
        g = int(self.grid)
        return np.sqrt(np.maximum(squared, 0.0)).reshape(-1, g, g) / self.map_scale_

    def _score_maps(self, images: NDArray[np.float32], *, want_maps: bool) -> tuple[Any, Any]:
        distances = self._distances(images)
        scores = distances.reshape(len(distances), -1).max(axis=1)
        if not want_maps:
            return scores, None
        torch = require_torch()
        h, w = int(self.image_shape_[0]), int(self.image_shape_[1])
        grid = torch.from_numpy(distances)[:, None]
        maps = torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        return scores, maps[:, 0].numpy()
