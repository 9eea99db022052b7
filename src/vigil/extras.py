"""Import an optional dependency with an error that says which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, *, needed_by: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ImportError: "``needed_by`` ``module``: pip install 'vigil[``extra``]'".

    Examples
    --------
    >>> require("json", needed_by="the Vigil service needs", extra="service").__name__
    'json'
    >>> require("no_such_module_for_vigil", needed_by="Kafka workers need", extra="scale")
    Traceback (most recent call last):
    ...
    ImportError: Kafka workers need no_such_module_for_vigil: pip install 'vigil[scale]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{needed_by} {module}: pip install 'vigil[{extra}]'"
        raise ImportError(msg) from exc
