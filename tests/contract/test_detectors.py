"""Every registered detector × each of its test configurations × every contract check."""

from __future__ import annotations

import pytest

from vigil.registry import available_detectors
from vigil.testing import check_detector


def _cases():
    for name, cls in available_detectors().items():
        for i, params in enumerate(cls._test_params()):
            for check in check_detector(cls(**params)):
                yield pytest.param(cls, params, check, id=f"{name}[{i}]:{check.__name__}")


@pytest.mark.parametrize(("cls", "params", "check"), list(_cases()))
def test_contract(cls, params, check):
    check(cls(**params))
