"""Patch embeddings from a pretrained backbone: what PatchCore and PaDiM share.

Each image is brought to the backbone's working resolution *keeping its aspect ratio* (the shorter side
becomes ``resolution``; the longer side follows, rounded to the backbone's coarsest stride), grey is repeated
into three channels, and the feature maps of the chosen ``layers`` are made *locally aware* (a 3 × 3 average,
as PatchCore does, so a cell sees its neighbourhood), brought to the finest chosen layer's grid and
concatenated: one feature vector per patch position. Anomaly maps are patch scores upsampled to the input
size and smoothed by a Gaussian of 4 working pixels (the PatchCore paper's σ).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import Interval
from vigil.errors import ModelFormatError
from vigil.vision.backbones import BACKBONES, backbone_features, is_module, pretrained_backbone
from vigil.vision.base import ImageDetector, require_torch
from vigil.vision.onnx_backbone import is_onnx_path, onnx_backbone

if TYPE_CHECKING:
    import torch

__all__ = ["PretrainedPatchDetector"]

_MAP_SIGMA = 4.0  # working pixels: the PatchCore paper's smoothing of the upsampled patch scores


def _backbone_param(value: Any) -> bool:
    return (isinstance(value, str) and value in BACKBONES) or is_onnx_path(value) or is_module(value)


def _layers_param(value: Any) -> bool:
    if value is None:
        return True
    return (
        isinstance(value, tuple)
        and len(value) > 0
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    )


class PretrainedPatchDetector(ImageDetector):
    """Base of the image detectors on pretrained patch features (see the module docstring).

    Parameters
    ----------
    backbone : str or torch.nn.Module
        A built-in backbone name (``"efficientnet-lite0"``), the path of an ONNX file (``"x.onnx"``, run by
        onnxruntime: :mod:`vigil.vision.onnx_backbone`), or a module of your own (see
        :mod:`vigil.vision.backbones` for what either must take and return). A detector with a module of
        your own scores and localises like any other, but cannot be saved (the module is not a parameter
        JSON can hold); one with an ONNX file saves the path and the file's SHA-256, and refuses to score
        with a file that changed since.
    layers : tuple of int, optional
        Built-in backbone: block indices (0–15 for EfficientNet-Lite0). An ONNX file or a module of your
        own: positions in what it returns (None: all of it).
    resolution : int
        Shorter side of the image the backbone sees, in pixels.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "backbone": [_backbone_param],
        "layers": [_layers_param],
        "resolution": [Interval(int, 16, 4096)],
    }

    def __init__(
        self,
        *,
        backbone: Any = "efficientnet-lite0",
        layers: tuple[int, ...] | None = (7, 10),
        resolution: int = 224,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.backbone = backbone
        self.layers = layers
        self.resolution = resolution

    # ------------------------------------------------------------------ backbone
    def _module(self) -> torch.nn.Module:
        # Not a learned attribute: the weights are the installed package's (checked by hash), not the fit's.
        module = getattr(self, "_backbone_module", None)
        if module is None:
            if is_onnx_path(self.backbone):
                module = onnx_backbone(self.backbone, getattr(self, "backbone_sha256_", None))
            elif isinstance(self.backbone, str):
                module = pretrained_backbone(self.backbone, self.layers or (4, 10))
            else:
                module = self.backbone.eval()
            self._backbone_module = module
        if is_onnx_path(self.backbone):
            self.backbone_sha256_ = module.sha256  # learned with the fit: a loaded model's file must match it
        return module

    @property
    def has_built_in_backbone(self) -> bool:
        """True for a built-in backbone name; False for an ONNX file or a module of your own."""
        return isinstance(self.backbone, str) and not is_onnx_path(self.backbone)

    def backbone_module(self) -> torch.nn.Module:
        """The backbone module this detector runs (what an ONNX export traces)."""
        return self._module()

    def working_size(self) -> tuple[int, int]:
        """(height, width) of the image the backbone sees: the shorter side at ``resolution``, aspect kept."""
        return self._working_size()

    def map_sigma(self) -> float:
        """Input pixels of the Gaussian that smooths the upsampled patch scores into the anomaly map."""
        return _MAP_SIGMA * int(self.image_shape_[0]) / self._working_size()[0]

    def _working_size(self) -> tuple[int, int]:
        h, w = int(self.image_shape_[0]), int(self.image_shape_[1])
        scale = self.resolution / min(h, w)
        step = 32 if self.has_built_in_backbone else 1
        return (
            max(step, round(h * scale / step) * step),
            max(step, round(w * scale / step) * step),
        )

    def _embed(self, images: NDArray[np.float32]) -> torch.Tensor:
        """Locally aware patch features, shape (n, D, h, w), on the finest chosen layer's grid."""
        torch = require_torch()
        functional = torch.nn.functional
        x = torch.from_numpy(np.ascontiguousarray(images))
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self._working_size()
        if tuple(x.shape[2:]) != size:
            x = functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        picks = None if self.has_built_in_backbone else self.layers
        with torch.inference_mode():
            maps = backbone_features(self._module(), x.contiguous(), picks)
            return local_features(maps)

    def _to_maps(self, patch_scores: torch.Tensor) -> NDArray[np.float64]:
        """Patch scores (n, h, w) → smoothed per-pixel maps (n, H, W) at the input size."""
        torch = require_torch()
        from vigil.vision.networks import gaussian_blur

        h, w = int(self.image_shape_[0]), int(self.image_shape_[1])
        with torch.inference_mode():
            up = torch.nn.functional.interpolate(
                patch_scores[:, None].float(), size=(h, w), mode="bilinear", align_corners=False
            )
            return gaussian_blur(up, self.map_sigma())[:, 0].clamp_min(0.0).double().numpy()

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        if not isinstance(self.backbone, str):  # a built-in name or an ONNX file's path is a parameter JSON holds
            msg = (
                f"this {type(self).__name__} uses a backbone module of your own ({type(self.backbone).__name__}), "
                "which cannot be saved as parameters; save your module's weights yourself, or use a built-in "
                f"backbone ({', '.join(BACKBONES)})"
            )
            raise ModelFormatError(msg)
        return super().save(path)


def local_features(maps: list[torch.Tensor]) -> torch.Tensor:
    """Feature maps of several layers → one (n, ΣD, h, w) tensor on the finest grid, each position averaged
    over its 3 × 3 neighbourhood (PatchCore's "locally aware" features); also traced by the ONNX export."""
    torch = require_torch()
    functional = torch.nn.functional
    grid = max((tuple(m.shape[2:]) for m in maps), key=lambda shape: shape[0] * shape[1])
    parts = []
    for m in maps:
        m = functional.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False)
        if tuple(m.shape[2:]) != grid:
            m = functional.interpolate(m, size=grid, mode="bilinear", align_corners=False)
        parts.append(m)
    return torch.cat(parts, dim=1)


def patch_rows(features: torch.Tensor) -> torch.Tensor:
    """(n, D, h, w) → (n·h·w, D), row-major over images then positions."""
    n, d, h, w = features.shape
    return features.permute(0, 2, 3, 1).reshape(n * h * w, d)


def chunks(n: int, size: int) -> range:
    """Start indices of ``size``-long chunks of ``n`` rows."""
    return range(0, n, max(1, size))
