"""Public modules export exactly what they define, and every exception sits where errors.py says."""

from __future__ import annotations

import importlib
import inspect

import pytest

import vigil.errors as errors

MODULES = [
    "vigil.errors",
    "vigil.validation",
    "vigil.base",
    "vigil.registry",
    "vigil.pipeline",
    "vigil.persistence",
    "vigil.scoring",
    "vigil.fitting",
    "vigil.tuning.compare",
    "vigil.testing",
    "vigil.calibration.thresholds",
    "vigil.features.scaling",
    "vigil.evaluation.metrics",
    "vigil.evaluation.runner",
    "vigil.evaluation.table_bench",
    "vigil.evaluation.report",
    "vigil.data.tables",
    "vigil.data.simulator",
    "vigil.alerts",
    "vigil.alerts.asset_incidents",
    "vigil.alerts.model",
    "vigil.alerts.sink",
    "vigil.alerts.store",
    "vigil.alerts.tracker",
    "vigil.times",
    "vigil.streaming.scorer",
    "vigil.demo",
    "vigil.demo_incident",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_unique(name):
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names missing {member}"


def test_errors_exports_every_exception_it_defines():
    defined = {
        n
        for n, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)
    for name in defined:
        assert name in errors.__doc__, f"{name} is missing from the hierarchy drawn in errors.py"


@pytest.mark.parametrize(
    ("exc", "bases"),
    [
        (errors.InvalidInputError, (errors.VigilError, ValueError)),
        (errors.SchemaError, (errors.InvalidInputError,)),
        (errors.NotFittedError, (errors.VigilError, AttributeError)),
        (errors.NotWarmError, (errors.VigilError,)),
        (errors.NumericalError, (errors.VigilError, ArithmeticError)),
        (errors.ModelFormatError, (errors.VigilError,)),
        (errors.DatasetNotFoundError, (errors.VigilError, FileNotFoundError)),
        (errors.UnknownDetectorError, (errors.VigilError, KeyError)),
    ],
)
def test_exception_hierarchy(exc, bases):
    for base in bases:
        assert issubclass(exc, base)
