"""Import the service's optional dependencies with an error that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]

INSTALL_HINT = "pip install 'vigil[service]'"


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
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"the Vigil service needs {module}: {INSTALL_HINT}"
        raise ImportError(msg) from exc
