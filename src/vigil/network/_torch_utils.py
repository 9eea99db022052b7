"""Small helpers shared by the network package's torch training code: determinism, threads, weights as npz."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without torch
    msg = "this model needs PyTorch: pip install 'vigil[deep]'"
    raise ImportError(msg) from exc

__all__ = ["load_state_arrays", "seeded", "state_arrays", "threads"]


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run a block with torch's CPU generator seeded, then restore the caller's generator state.

    Weight initialisation and dropout draw from torch's global generator; forking it keeps training
    reproducible for a given ``random_state`` without leaving the global generator changed.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block (None: leave torch's setting), then restore it."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def state_arrays(module: torch.nn.Module, prefix: str) -> dict[str, np.ndarray]:
    """A module's ``state_dict`` as float64/int64 numpy arrays keyed ``prefix + name`` (for npz, not pickle)."""
    return {f"{prefix}{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_state_arrays(module: torch.nn.Module, arrays: dict[str, np.ndarray], prefix: str) -> None:
    """Load arrays written by :func:`state_arrays` into ``module`` (strict: every key must match)."""
    state = {k[len(prefix) :]: torch.from_numpy(np.asarray(v)) for k, v in arrays.items() if k.startswith(prefix)}
    module.load_state_dict(state, strict=True)
