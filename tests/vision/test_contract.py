"""Every registered image detector × each of its test configurations × every image contract check."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from vigil.vision.registry import available_image_detectors
from vigil.vision.testing import check_image_detector


def _cases():
    for name, cls in available_image_detectors().items():
        for i, params in enumerate(cls._test_params()):
            for check in check_image_detector(cls(**params)):
                yield pytest.param(cls, params, check, id=f"{name}[{i}]:{check.__name__}")


@pytest.mark.torch
@pytest.mark.parametrize(("cls", "params", "check"), list(_cases()))
def test_image_contract(cls, params, check):
    check(cls(**params))
