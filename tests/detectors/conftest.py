from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These networks are tiny: on a busy machine one thread is several times faster than many (OpenMP
    threads wait for each other), and the result does not depend on it. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
