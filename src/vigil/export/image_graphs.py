"""The scoring of Vigil's image detectors as plain torch modules that trace to ONNX: one graph per detector.

Each graph takes a float32 batch of shape (n, C, H, W) at the model's working size, with values in [0, 1]
(what :func:`~vigil.vision.base.check_images` makes of the frames), and returns ``(score, map)``: one score
per image and its anomaly map (n, H, W), computed as the detector computes them. The learned state (the
Gaussians of PaDiM and patch-gauss, PatchCore's memory) becomes constants of the graph.

Two steps are rewritten so that they trace, without changing what they compute:

- the antialiased resize to the backbone's working size is a linear map of each image axis, so it is two
  constant matrices, obtained by resizing the identity with the very call the detector makes;
- the Mahalanobis distances are computed in float64, as the detectors compute them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil.errors import InvalidInputError
from vigil.vision.base import ImageDetector, require_torch
from vigil.vision.embedding import local_features

__all__ = ["image_graph"]


def _resize_matrices(h: int, w: int, size: tuple[int, int]) -> tuple[Any, Any]:
    """(Hw × H) and (Ww × W) matrices doing what the detector's antialiased bilinear resize to ``size`` does."""
    require_torch()  # says which extra to install
    import torch

    functional = torch.nn.functional

    def resized(n: int, target: tuple[int, int]) -> Any:
        # The n × n identity resized along one axis only (the other keeps its size, which copies it exactly).
        identity = torch.eye(n).reshape(1, 1, n, n)
        out = functional.interpolate(identity, size=target, mode="bilinear", align_corners=False, antialias=True)
        return out[0, 0]

    return resized(h, (size[0], h)).contiguous(), resized(w, (w, size[1])).T.contiguous()


def image_graph(detector: ImageDetector) -> Any:
    """A torch module computing ``(scores, maps)`` of a fitted ``detector`` (padim, patchcore, patch-gauss).

    Raises
    ------
    InvalidInputError
        The detector has no graph (it is not one of those three, or uses a backbone module of the user's).
    """
    require_torch()
    from vigil.vision.padim import PadimDetector
    from vigil.vision.patch import PatchGaussianDetector
    from vigil.vision.patchcore import PatchCoreDetector

    if isinstance(detector, PadimDetector | PatchCoreDetector) and not detector.has_built_in_backbone:
        # An ONNX backbone runs in onnxruntime, outside the graph torch traces.
        msg = (
            "a detector with a backbone of your own (a module or an ONNX file) cannot be exported: export the "
            "backbone yourself"
        )
        raise InvalidInputError(msg)
    if isinstance(detector, PadimDetector):
        return _padim_graph(detector)
    if isinstance(detector, PatchCoreDetector):
        return _patchcore_graph(detector)
    if isinstance(detector, PatchGaussianDetector):
        return _patch_gauss_graph(detector)
    msg = f"{type(detector).__name__} has no ONNX export (exportable image detectors: padim, patchcore, patch-gauss)"
    raise InvalidInputError(msg)


def _embedding(detector: Any) -> Any:
    """The locally aware patch features of :class:`~vigil.vision.embedding.PretrainedPatchDetector`."""
    require_torch()  # says which extra to install
    import torch

    h, w, c = (int(v) for v in detector.image_shape_)
    size = detector.working_size()
    down, across = _resize_matrices(h, w, size) if (h, w) != size else (None, None)
    backbone = detector.backbone_module().eval()

    class Embedding(torch.nn.Module):
        down: torch.Tensor  # buffers: declared for type checkers, registered in __init__
        across: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            if down is not None:
                self.register_buffer("down", down)
                self.register_buffer("across", across)

        def forward(self, x: Any) -> Any:
            if c == 1:
                x = torch.cat([x, x, x], dim=1)
            if down is not None:
                x = torch.matmul(self.down, torch.matmul(x, self.across.T))
            return local_features(list(self.backbone(x)))

    return Embedding()


def _maps(detector: Any, h: int, w: int) -> Any:
    """Patch scores (n, h, w) → smoothed per-pixel maps, as ``PretrainedPatchDetector._to_maps``."""
    require_torch()  # says which extra to install
    import torch

    from vigil.vision.networks import gaussian_blur

    sigma = detector.map_sigma()

    class Maps(torch.nn.Module):
        def forward(self, patch: Any) -> Any:
            up = torch.nn.functional.interpolate(
                patch[:, None].float(), size=(h, w), mode="bilinear", align_corners=False
            )
            return torch.clamp(gaussian_blur(up, sigma)[:, 0], min=0.0)

    return Maps()


def _mahalanobis(mean: np.ndarray, precision: np.ndarray) -> Any:
    """(n, P, F) features → (n, P) distances to a Gaussian per position, in float64."""
    require_torch()  # says which extra to install
    import torch

    class Mahalanobis(torch.nn.Module):
        mean: torch.Tensor  # buffers: declared for type checkers, registered in __init__
        precision: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(np.asarray(mean, dtype=np.float64)))
            self.register_buffer("precision", torch.from_numpy(np.asarray(precision, dtype=np.float64)))

        def forward(self, features: Any) -> Any:
            centred = (features.double() - self.mean).transpose(0, 1)  # (P, n, F)
            squared = (torch.matmul(centred, self.precision) * centred).sum(dim=2).transpose(0, 1)
            return torch.sqrt(torch.clamp(squared, min=0.0))

    return Mahalanobis()


def _padim_graph(detector: Any) -> Any:
    require_torch()  # says which extra to install
    import torch

    h, w = (int(v) for v in detector.image_shape_[:2])
    gh, gw = (int(v) for v in detector.feature_grid_)
    embed, maps = _embedding(detector), _maps(detector, h, w)
    distance = _mahalanobis(detector.mean_, detector.precision_)
    channels = torch.from_numpy(np.asarray(detector.channels_, dtype=np.int64))

    class Padim(torch.nn.Module):
        channels: torch.Tensor  # a buffer: declared for type checkers, registered in __init__

        def __init__(self) -> None:
            super().__init__()
            self.embed, self.maps, self.distance = embed, maps, distance
            self.register_buffer("channels", channels)

        def forward(self, x: Any) -> Any:
            features = torch.index_select(self.embed(x), 1, self.channels)  # (n, dims, gh, gw)
            rows = features.flatten(2).transpose(1, 2)  # (n, P, dims)
            heat = self.maps(self.distance(rows).reshape(-1, gh, gw))
            return heat.flatten(1).max(dim=1).values, heat

    return Padim()


def _patchcore_graph(detector: Any) -> Any:
    require_torch()  # says which extra to install
    import torch

    h, w = (int(v) for v in detector.image_shape_[:2])
    gh, gw = (int(v) for v in detector.feature_grid_)
    embed, maps = _embedding(detector), _maps(detector, h, w)
    memory = torch.from_numpy(np.asarray(detector.memory_, dtype=np.float32))
    neighbours = torch.from_numpy(np.asarray(detector.memory_neighbours_, dtype=np.int64))
    reweight = detector.neighbours > 1 and neighbours.shape[1] > 1

    class PatchCore(torch.nn.Module):
        memory: torch.Tensor  # buffers: declared for type checkers, registered in __init__
        memory_norms: torch.Tensor
        neighbours: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.embed, self.maps = embed, maps
            self.register_buffer("memory", memory)
            self.register_buffer("memory_norms", (memory * memory).sum(dim=1))
            self.register_buffer("neighbours", neighbours)

        def forward(self, x: Any) -> Any:
            features = self.embed(x)
            d = features.shape[1]
            rows = features.permute(0, 2, 3, 1).reshape(-1, d)  # (n·P, D), images then positions
            squared = (rows * rows).sum(dim=1, keepdim=True) - 2.0 * rows @ self.memory.T + self.memory_norms[None]
            nearest_squared, nearest = torch.clamp(squared, min=0.0).min(dim=1)
            distances = torch.sqrt(nearest_squared).reshape(-1, gh * gw)  # (n, P)
            best, worst = distances.max(dim=1)
            scores = best.double()
            if reweight:
                per_image = rows.reshape(-1, gh * gw, d)
                picked = worst[:, None, None].expand(-1, 1, d)
                query = torch.gather(per_image, 1, picked)[:, 0]  # (n, D): each image's worst patch
                entry = torch.gather(nearest.reshape(-1, gh * gw), 1, worst[:, None])[:, 0]
                support = self.memory[self.neighbours[entry]]  # (n, b, D), the nearest entry first
                to_support = torch.sqrt(((query[:, None, :] - support) ** 2).sum(dim=2))
                weight = 1.0 - torch.softmax(to_support.double(), dim=1)[:, 0]
                scores = weight * scores
            return scores, self.maps(distances.reshape(-1, gh, gw))

    return PatchCore()


def _patch_gauss_graph(detector: Any) -> Any:
    require_torch()  # says which extra to install
    import torch

    h, w = (int(v) for v in detector.image_shape_[:2])
    g = int(detector.grid)
    if h % g or w % g:
        # The filter bank pools adaptively: with uneven cells it has no fixed-size ONNX equivalent.
        msg = (
            f"patch-gauss exports only when the grid ({g}) divides the image size ({h}×{w} px); refit with such a grid"
        )
        raise InvalidInputError(msg)
    from vigil.vision.networks import FilterBank

    base = detector.filter_bank()
    cell = (h // g, w // g)

    class FixedCells(FilterBank):
        """The same filter bank, pooling cells of a fixed size: the traced graph has no adaptive pooling."""

        def mean_pool(self, m: Any) -> Any:
            return torch.nn.functional.avg_pool2d(m, cell)

        def max_pool(self, m: Any) -> Any:
            return torch.nn.functional.max_pool2d(m, cell)

    bank = FixedCells(grid=base.grid, flat_sigma=base.flat_sigma, scales=base.scales)
    distance = _mahalanobis(detector.mean_, detector.precision_)
    scale = torch.from_numpy(np.asarray(detector.feature_scale_, dtype=np.float64))
    map_scale = float(detector.map_scale_)

    class PatchGauss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bank, self.distance = bank, distance
            self.register_buffer("scale", scale)

        def forward(self, x: Any) -> Any:
            features = self.bank(x).double()  # (n, F, g, g)
            rows = features.flatten(2).transpose(1, 2) / self.scale  # (n, g², F)
            patch = (self.distance(rows) / map_scale).reshape(-1, g, g)
            # onnxruntime resizes float32 only; Vigil float64: the map differs in the 7th digit, the score not at all.
            heat = torch.nn.functional.interpolate(
                patch[:, None].float(), size=(h, w), mode="bilinear", align_corners=False
            )
            return patch.flatten(1).max(dim=1).values, heat[:, 0]

    return PatchGauss()
