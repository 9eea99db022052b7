"""The package ships ``py.typed``, so its annotations must hold: mypy checks ``src/vigil`` and finds nothing.

mypy runs with the ``[tool.mypy]`` section of ``pyproject.toml`` (not strict; libraries without stubs count as
``Any``) in a subprocess, so that its imports stay out of the test process; its cache (``.mypy_cache`` beside
``pyproject.toml``) makes a rerun take seconds instead of a minute. A failure shows mypy's report.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import vigil

PACKAGE = Path(vigil.__file__).resolve().parent
CONFIG = PACKAGE.parent.parent / "pyproject.toml"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed: pip install 'vigil[test]'")
@pytest.mark.skipif(not CONFIG.is_file(), reason="needs a source checkout (pyproject.toml beside src/)")
def test_mypy_finds_no_errors() -> None:
    command = [sys.executable, "-m", "mypy", "--config-file", str(CONFIG), "--no-error-summary", str(PACKAGE)]
    done = subprocess.run(command, cwd=CONFIG.parent, capture_output=True, text=True, timeout=540, check=False)
    report = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, f"mypy found errors in src/vigil:\n{report}"
