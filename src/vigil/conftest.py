"""Doctest collection: modules whose optional dependency is not installed are skipped, not failed.

Every optional part raises an ImportError naming its ``pip install 'vigil[...]'`` extra when its
dependency is missing; that is the only ImportError ignored here, so a real import bug still fails.
"""

from __future__ import annotations

import importlib
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if collection_path.suffix != ".py" or collection_path.name in ("conftest.py", "__main__.py"):
        return None
    module = ".".join(collection_path.resolve().relative_to(_SOURCE_ROOT).with_suffix("").parts)
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if "pip install 'vigil[" in str(exc) or (exc.name or "").split(".")[0] in _OPTIONAL_PACKAGES:
            return True
        raise
    return None


_OPTIONAL_PACKAGES = frozenset(
    {
        "torch",
        "dpkt",
        "PIL",
        "optuna",
        "fastapi",
        "uvicorn",
        "paho",
        "psycopg",
        "prometheus_client",
        "playwright",
        "ray",
        "confluent_kafka",
        "pyarrow",
    }
)
