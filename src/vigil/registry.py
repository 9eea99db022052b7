"""The registry of detectors, by name: what the CLI, the contract suite and ``load`` look up.

Detector modules register themselves with :func:`register`; :func:`available_detectors` imports the
built-in families on first use, so the registry is complete whichever module was imported first. Families
that need an optional dependency (PyTorch) register only when it is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, TypeVar

from vigil.base import BaseDetector
from vigil.errors import UnknownDetectorError

__all__ = ["available_detectors", "detector_class", "make_detector", "register"]

_REGISTRY: dict[str, type[BaseDetector]] = {}
_BUILTIN_MODULES = (
    "vigil.detectors.pca",
    "vigil.detectors.iforest",
    "vigil.detectors.mahalanobis",
    "vigil.detectors.online_zscore",
    "vigil.detectors.ensemble",
    "vigil.network.kitnet",
)
# (module, the optional package it needs): registered only where that package is installed.
_OPTIONAL_MODULES: tuple[tuple[str, str], ...] = (
    ("vigil.detectors.autoencoders", "torch"),
    ("vigil.detectors.forecasters", "torch"),
    ("vigil.detectors.sequence_forecaster", "torch"),
    ("vigil.detectors.usad", "torch"),
    ("vigil.network.autoencoder", "torch"),
    ("vigil.network.classifier", "torch"),
    ("vigil.network.hybrid", "torch"),
)
_loaded = False

D = TypeVar("D", bound=type[BaseDetector])


def register(name: str, summary: str):
    """Class decorator registering a detector under ``name`` with a one-line ``summary``."""

    def decorate(cls: D) -> D:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            msg = f"detector name {name!r} is already taken by {_REGISTRY[name].__name__}"
            raise ValueError(msg)
        cls.name = name
        cls.summary = summary
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for module, dependency in _OPTIONAL_MODULES:
        if importlib.util.find_spec(dependency) is not None:
            importlib.import_module(module)
    _loaded = True


def available_detectors() -> dict[str, type[BaseDetector]]:
    """Return every registered detector class by name, sorted by name."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def detector_class(name: str) -> type[BaseDetector]:
    """Return the class registered under ``name``."""
    detectors = available_detectors()
    if name not in detectors:
        msg = f"no detector named {name!r}; available: {', '.join(detectors)} (see `vigil detectors`)"
        raise UnknownDetectorError(msg)
    return detectors[name]


def make_detector(name: str, **params: Any) -> BaseDetector:
    """Create the detector registered under ``name`` with ``params``.

    A detector that draws random numbers gets ``random_state=0`` unless ``params`` names one, so that two
    fits on the same data give the same scores, as they do from the command line (``--seed``); pass
    ``random_state=None`` for fresh randomness. Supervised detectors (``cls.requires_y``) are made the same
    way; their ``fit`` without labels ``y`` says so.

    Examples
    --------
    >>> make_detector("pca", n_components=2)
    PCADetector(n_components=2, random_state=0)
    >>> make_detector("iforest").random_state, make_detector("iforest", random_state=None).random_state
    (0, None)
    """
    cls = detector_class(name)
    if "random_state" not in params and "random_state" in cls._param_names():
        params = {**params, "random_state": 0}
    return cls(**params)
