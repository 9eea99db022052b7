"""The vision modules export exactly what they define."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "vigil.vision",
    "vigil.vision.io",
    "vigil.vision.synthetic",
    "vigil.vision.registry",
    "vigil.vision.base",
    "vigil.vision.report",
    "vigil.vision.bench",
    "vigil.vision.testing",
    "vigil.vision.networks",
    "vigil.vision.patch",
    "vigil.vision.autoencoder",
    "vigil.vision.classifier",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_unique(name):
    if name.rsplit(".", 1)[-1] in ("networks", "patch", "autoencoder", "classifier", "testing", "bench"):
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    assert len(set(module.__all__)) == len(module.__all__)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names missing {member}"
