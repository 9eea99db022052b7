"""Import the scale-out dependencies (confluent-kafka, Ray, pyarrow) with an error that says how to install them."""

from __future__ import annotations

from types import ModuleType

from vigil import extras

__all__ = ["require"]


def require(module: str, *, purpose: str = "scaling out") -> ModuleType:
    """Import ``module`` or raise ImportError naming the extra to install.

    Parameters
    ----------
    module : str
        Dotted module name, for example ``"confluent_kafka"``.
    purpose : str
        What needs it, for the message.

    Examples
    --------
    >>> require("json").__name__
    'json'
    >>> require("no_such_module_for_vigil", purpose="Kafka workers")
    Traceback (most recent call last):
    ...
    ImportError: Kafka workers need no_such_module_for_vigil: pip install 'vigil[scale]'
    """
    return extras.require(module, needed_by=f"{purpose[:1].upper()}{purpose[1:]} need", extra="scale")
