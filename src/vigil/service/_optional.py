"""Import the service's optional dependencies with an error that says how to install them."""

from __future__ import annotations

from types import ModuleType

from vigil import extras

__all__ = ["require"]


def require(module: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the extra to install.

    Examples
    --------
    >>> require("json").__name__
    'json'
    >>> require("no_such_module_for_vigil")
    Traceback (most recent call last):
    ...
    ImportError: the Vigil service needs no_such_module_for_vigil: pip install 'vigil[service]'
    """
    return extras.require(module, needed_by="the Vigil service needs", extra="service")
