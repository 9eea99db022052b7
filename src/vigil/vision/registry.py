"""The registry of image detectors, by name: what ``run_image_bench``, the image contract suite and ``load`` use.

Image detectors live in their own registry, apart from :mod:`vigil.registry` (tables of sensor readings);
:mod:`vigil.vision.base` says why. Families that need PyTorch register only when it is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from vigil.errors import UnknownDetectorError

if TYPE_CHECKING:
    from vigil.vision.base import ImageDetector

__all__ = [
    "available_image_detectors",
    "coerce_params",
    "image_detector_class",
    "make_image_detector",
    "register_image_detector",
]

_REGISTRY: dict[str, type[ImageDetector]] = {}
# (module, the optional package it needs)
_MODULES: tuple[tuple[str, str], ...] = (
    ("vigil.vision.patch", "torch"),
    ("vigil.vision.autoencoder", "torch"),
    ("vigil.vision.classifier", "torch"),
    ("vigil.vision.segmenter", "torch"),
    ("vigil.vision.ensemble", "torch"),
    ("vigil.vision.patchcore", "efficientnet_lite_pytorch"),
    ("vigil.vision.padim", "efficientnet_lite_pytorch"),
)
_loaded = False

D = TypeVar("D")


def register_image_detector(name: str, summary: str):
    """Class decorator registering an image detector under ``name`` with a one-line ``summary``."""

    def decorate(cls: D) -> D:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            msg = f"image detector name {name!r} is already taken by {_REGISTRY[name].__name__}"
            raise ValueError(msg)
        cls.name = name  # type: ignore[attr-defined]
        cls.summary = summary  # type: ignore[attr-defined]
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return decorate


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for module, dependency in _MODULES:
        if importlib.util.find_spec(dependency) is not None:
            importlib.import_module(module)
    _loaded = True


def available_image_detectors() -> dict[str, type[ImageDetector]]:
    """Return every registered image detector class by name, sorted by name.

    Examples
    --------
    >>> sorted(available_image_detectors())
    ['cnn-classifier', 'defect-seg', 'image-ae', 'image-ensemble', 'padim', 'patch-gauss', 'patchcore']
    """
    _load()
    return dict(sorted(_REGISTRY.items()))


def image_detector_class(name: str) -> type[ImageDetector]:
    """Return the image detector class registered under ``name``."""
    detectors = available_image_detectors()
    if name not in detectors:
        msg = f"no image detector named {name!r}; available: {', '.join(detectors)}"
        raise UnknownDetectorError(msg)
    return detectors[name]


def coerce_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as image detectors take them: JSON and the command line give lists where they take tuples.

    Examples
    --------
    >>> coerce_params({"widths": [8, 16], "grid": 8})
    {'widths': (8, 16), 'grid': 8}
    """
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def make_image_detector(name: str, **params: Any) -> ImageDetector:
    """Create the image detector registered under ``name`` with ``params``.

    Examples
    --------
    >>> make_image_detector("patch-gauss", grid=8)
    PatchGaussianDetector(grid=8)
    """
    return image_detector_class(name)(**coerce_params(params))
