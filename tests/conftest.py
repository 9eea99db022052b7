from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark data folder from VIGIL_DATA_DIR; tests that need it skip with the reason when unset."""
    value = os.environ.get("VIGIL_DATA_DIR")
    if not value:
        pytest.skip("VIGIL_DATA_DIR is not set: the benchmark data sets are not available")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"VIGIL_DATA_DIR={value} is not a directory")
    return path


def pytest_configure(config):
    """One intra-op thread for PyTorch in tests: on a busy 2-core machine its default thread pool
    oversubscribes the cores and slows the suite several-fold. Library code never sets this."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
