"""Dependencies point one way, and no part imports another part's private names.

Model families (``detectors``, ``features``, ``calibration``, ``network``, ``vision``), the stages a pipeline
is made of (``alarms``, ``explain``) and the modules that define a model (``base``, ``pipeline``,
``validation``, ``registry``, ``persistence``) never import the parts that run them (``alerts``,
``streaming``, ``service``, ``scale``, ``plant``, ``cli``); a name or module that starts with ``_`` is private
to its part (``vigil.<part>``). Every import counts: lazy ones inside functions, relative ones, and
``importlib.import_module("vigil....")`` with a literal name. What breaks a rule today is listed below with
its reason: fix one and remove it from the list (the test fails on a listed exception that no longer
occurs, so the lists can only shrink).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import vigil

FAMILIES = (
    *("detectors", "features", "calibration", "network", "vision", "alarms", "explain"),
    *("base", "pipeline", "validation", "registry", "persistence"),
)
RUNNERS = ("alerts", "streaming", "service", "scale", "plant", "cli")

KNOWN_UPWARD: set[tuple[str, str]] = set()  # none left: the live sources sit in streaming/sources/

KNOWN_PRIVATE: set[tuple[str, str]] = set()  # none left: vigil.testing's helpers are public


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _is_private(dotted: str) -> bool:
    return any(seg.startswith("_") and not seg.startswith("__") for seg in dotted.split(".")[1:])


def imports_of(source: str, package: str = "vigil") -> list[str]:
    """Every ``vigil`` import of a module's source, as ``module`` or ``module.name``.

    ``package`` is the package the module is in, against which relative imports resolve.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [f"{base}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(node.args[0].value)
    return [name for name in found if name == "vigil" or name.startswith("vigil.")]


def violations(
    module: str, source: str, *, is_package: bool = False
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(upward imports, imports of another part's private names) of one module."""
    upward, private = set(), set()
    family = module.count(".") > 0 and module.split(".")[1] in FAMILIES
    package = module if is_package else module.rpartition(".")[0]
    for target in imports_of(source, package):
        if family and target.count(".") > 0 and target.split(".")[1] in RUNNERS:
            upward.add((module, target))
        if _part(target) != _part(module) and _is_private(target):
            private.add((module, target))
    return upward, private


@cache
def _modules() -> dict[str, tuple[str, bool]]:
    """Every module of the package: its source, and whether it is a package's ``__init__``."""
    root = Path(vigil.__file__).parent
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path.read_text(encoding="utf-8"), is_package)
    return out


def _scan() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    upward, private = set(), set()
    for module, (source, is_package) in _modules().items():
        up, priv = violations(module, source, is_package=is_package)
        upward |= up
        private |= priv
    return upward, private


def test_model_families_never_import_the_parts_that_run_them() -> None:
    upward, _ = _scan()
    # One edge per imported module: ``from vigil.alerts import A, B`` is the edge to vigil.alerts.
    found = {(module, _imported_module(target)) for module, target in upward}
    assert found - KNOWN_UPWARD == set(), "new upward imports (a model family importing a runner)"
    assert KNOWN_UPWARD - found == set(), "fixed: remove these from KNOWN_UPWARD"


def test_no_part_imports_another_parts_private_names() -> None:
    _, private = _scan()
    assert private - KNOWN_PRIVATE == set(), "new imports of another part's private names"
    assert KNOWN_PRIVATE - private == set(), "fixed: remove these from KNOWN_PRIVATE"


def _imported_module(target: str) -> str:
    """The module of an import target: its longest prefix that is a module of the package."""
    modules = set(_modules())
    parts = target.split(".")
    return next((".".join(parts[:end]) for end in range(len(parts), 0, -1) if ".".join(parts[:end]) in modules), target)


def test_the_checks_catch_what_they_forbid() -> None:
    source = "from vigil.streaming.runtime import Runtime\ndef f():\n    from vigil.service._optional import require\n"
    upward, private = violations("vigil.detectors.new", source)
    assert {_imported_module(t) for _, t in upward} == {"vigil.streaming.runtime", "vigil.service._optional"}
    assert private == {("vigil.detectors.new", "vigil.service._optional.require")}
    same_part = violations("vigil.service.app", "from vigil.service._optional import require\n")
    assert same_part == (set(), set())


def test_relative_and_importlib_imports_count() -> None:
    source = (
        "import importlib\nfrom ..streaming import runtime\nfrom . import _local\n"
        "def f():\n    return importlib.import_module('vigil.service.app')\n"
    )
    upward, private = violations("vigil.detectors.new", source)
    assert {_imported_module(t) for _, t in upward} == {"vigil.streaming.runtime", "vigil.service.app"}
    assert private == set()  # ``from . import _local`` stays inside vigil.detectors
    _, private = violations("vigil.vision", "from ..testing import _expect_invalid\n", is_package=True)
    assert private == {("vigil.vision", "vigil.testing._expect_invalid")}
