"""Every exception Vigil raises on purpose.

The hierarchy::

    VigilError
    ├── InvalidInputError (also ValueError)     bad data or arguments: says what and where
    │   └── SchemaError                         a file or record does not match the expected columns
    ├── NotFittedError (also AttributeError)    a model was used before ``fit``
    ├── NotWarmError                            an online model has not seen enough data to score
    ├── NumericalError (also ArithmeticError)   a model *produced* non-finite values
    ├── ModelFormatError                        a saved model directory is corrupt, foreign or too new
    ├── DatasetNotFoundError (also FileNotFoundError)  a benchmark data set is not where it should be
    └── UnknownDetectorError (also KeyError)    no detector is registered under that name

Catch ``VigilError`` to handle anything Vigil raises deliberately.
"""

from __future__ import annotations

__all__ = [
    "DatasetNotFoundError",
    "InvalidInputError",
    "ModelFormatError",
    "NotFittedError",
    "NotWarmError",
    "NumericalError",
    "SchemaError",
    "UnknownDetectorError",
    "VigilError",
]


class VigilError(Exception):
    """Base class of every exception Vigil raises on purpose."""


class InvalidInputError(VigilError, ValueError):
    """Input data or an argument is invalid; the message names what and where."""


class SchemaError(InvalidInputError):
    """Columns or fields do not match what was expected (missing, extra, wrong type)."""


class NotFittedError(VigilError, AttributeError):
    """The model was used before ``fit`` (or ``learn_one``) gave it what it needs."""


class NotWarmError(VigilError):
    """An online model has not yet seen enough samples to score."""


class NumericalError(VigilError, ArithmeticError):
    """A model produced non-finite values (for example a diverged network)."""


class ModelFormatError(VigilError):
    """A saved model directory is missing files, corrupt, foreign, or of an unknown format version."""


class DatasetNotFoundError(VigilError, FileNotFoundError):
    """A benchmark data set is not at the expected path."""


class UnknownDetectorError(VigilError, KeyError):
    """No detector is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""
