"""PaDiM (Defard et al., ICPR 2020): a Gaussian per patch position over pretrained features.

For every position of the feature grid, the training images' locally aware pretrained features
(:mod:`vigil.vision.embedding`) get a mean and a regularised covariance; a test patch scores its Mahalanobis
distance to them. As in the paper, a seeded random subset of ``dims`` feature channels keeps the covariances
small (the paper found random selection as good as PCA). The image score is the largest value of the map.
Unlike PatchCore it needs every image at the same framing: a position means the same place on each part.

The threshold comes from out-of-fold scores: a training image's own Mahalanobis distance is biased low (its
patches helped estimate the covariance they are measured with), so each of ``calibration_folds`` folds of the
training images (whole groups when ``fit`` is given them) is scored by the Gaussians of the other folds.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import Interval
from vigil.errors import InvalidInputError
from vigil.vision.base import require_torch
from vigil.vision.embedding import PretrainedPatchDetector, chunks
from vigil.vision.registry import register_image_detector

__all__ = ["PadimDetector"]


@register_image_detector("padim", "PaDiM: Gaussian per patch position over pretrained patch features")
class PadimDetector(PretrainedPatchDetector):
    """Mahalanobis distance of each patch's pretrained features to the training patches at the same position.

    Parameters
    ----------
    backbone, layers, resolution
        See :class:`~vigil.vision.embedding.PretrainedPatchDetector`.
    dims : int
        Feature channels kept (a seeded random subset; all of them when there are fewer).
    regularisation : float
        Multiple of the identity added to each covariance (the paper's 0.01), relative to the mean variance.
    calibration_folds : int
        Folds of the training images whose out-of-fold scores set the threshold (1: the training images' own
        scores, which are biased low).
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`; the seed picks the channels.

    Attributes
    ----------
    channels_ : ndarray of int, shape (dims,)
        The feature channels kept.
    mean_ : ndarray, shape (h·w, dims)
    precision_ : ndarray, shape (h·w, dims, dims)
        Inverse regularised covariance at each position.

    Examples
    --------
    >>> from vigil.vision.synthetic import make_synthetic_set
    >>> data = make_synthetic_set(16, 4, size=32, seed=0)
    >>> det = PadimDetector(resolution=64, dims=32, random_state=0).fit(data.images[:16])
    >>> det.anomaly_map(data.images[16:]).shape
    (4, 32, 32)
    """

    feature_grid_: tuple[int, ...]
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "dims": [Interval(int, 1, None)],
        "regularisation": [Interval(float, 0.0, None, closed="neither")],
        "calibration_folds": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        *,
        backbone: Any = "efficientnet-lite0",
        layers: tuple[int, ...] | None = (7, 10),
        resolution: int = 224,
        dims: int = 100,
        regularisation: float = 0.01,
        calibration_folds: int = 5,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            layers=layers,
            resolution=resolution,
            contamination=contamination,
            random_state=random_state,
        )
        self.dims = dims
        self.regularisation = regularisation
        self.calibration_folds = calibration_folds

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"resolution": 64, "dims": 32}, {"resolution": 64, "layers": (10,), "dims": 200}]

    def _positions(self, images: NDArray[np.float32]) -> NDArray[np.float64]:
        """Chosen channels of every patch, shape (h·w, n, dims)."""
        torch = require_torch()
        parts = []
        for start in chunks(len(images), 32):
            features = self._embed(images[start : start + 32])
            if hasattr(self, "feature_grid_") and tuple(features.shape[2:]) != tuple(self.feature_grid_):
                msg = f"the backbone gave a {tuple(features.shape[2:])} feature grid, fitted on {self.feature_grid_}"
                raise InvalidInputError(msg)
            self._grid = tuple(features.shape[2:])
            picked = features[:, torch.from_numpy(self.channels_)] if hasattr(self, "channels_") else features
            parts.append(picked.flatten(2).permute(2, 0, 1).double().numpy())
        return np.concatenate(parts, axis=1)

    def _fit_images(self, images: NDArray[np.float32], y: Any, groups: Any) -> None:
        self._backbone_module = None
        total = int(self._embed(images[:1]).shape[1])
        keep = min(self.dims, total)
        self.channels_ = np.sort(self._rng().permutation(total)[:keep]).astype(np.int64)
        positions = self._positions(images)
        self.feature_grid_ = tuple(int(v) for v in self._grid)
        self.mean_, self.precision_ = self._gaussians(positions)
        self._fitted_positions, self._fitted_groups = positions, groups  # for the threshold, then dropped

    def _gaussians(self, positions: NDArray[np.float64]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Mean and regularised precision at each position, from ``positions`` (h·w, n, dims)."""
        n, keep = positions.shape[1], positions.shape[2]
        mean = positions.mean(axis=1)
        centred = positions - mean[:, None, :]
        covariance = np.einsum("pnf,png->pfg", centred, centred) / max(n - 1, 1)
        level = np.trace(covariance, axis1=1, axis2=2).mean() / keep
        eye = np.eye(keep)
        precision = np.linalg.inv(covariance + self.regularisation * max(level, 1e-12) * eye)
        return mean.astype(np.float32), precision.astype(np.float32)

    def _calibration_scores(self, images: NDArray[np.float32]) -> NDArray[np.float64]:
        positions, groups = self._fitted_positions, self._fitted_groups
        del self._fitted_positions, self._fitted_groups
        n = positions.shape[1]
        keys = np.asarray(groups) if groups is not None else np.arange(n)
        units = np.unique(keys)
        folds = min(self.calibration_folds, len(units))
        if folds < 2:
            return super()._calibration_scores(images)
        fold_of = {unit: i % folds for i, unit in enumerate(self._rng().permutation(units))}
        fold = np.array([fold_of[k] for k in keys])
        scores = np.empty(n)
        for f in range(folds):
            held = fold == f
            mean, precision = self._gaussians(positions[:, ~held])
            scores[held] = self._scores_maps_of(positions[:, held], mean, precision, want_maps=False)[0]
        return scores

    def _scores_maps_of(
        self,
        positions: NDArray[np.float64],
        mean: NDArray[np.float32],
        precision: NDArray[np.float32],
        *,
        want_maps: bool,
    ) -> tuple[Any, Any]:
        torch = require_torch()
        centred = positions - mean[:, None, :]  # (positions, n, dims)
        squared = (np.matmul(centred, precision) * centred).sum(axis=2).T  # (n, positions)
        h, w = self.feature_grid_
        distances = np.sqrt(np.maximum(squared, 0.0)).reshape(-1, h, w)
        maps = self._to_maps(torch.from_numpy(distances))
        scores = maps.reshape(len(maps), -1).max(axis=1)
        return scores, (maps if want_maps else None)

    def _score_maps(self, images: NDArray[np.float32], *, want_maps: bool) -> tuple[Any, Any]:
        return self._scores_maps_of(self._positions(images), self.mean_, self.precision_, want_maps=want_maps)

    def _restore_state(self, state: dict[str, Any]) -> None:
        super()._restore_state(state)
        self.feature_grid_ = tuple(int(v) for v in self.feature_grid_)
        self._backbone_module = None
