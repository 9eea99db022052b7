"""The one training loop of Vigil's PyTorch models: seeding, device, batches, early stopping, progress.

A model family says what differs — how one batch is stepped (its loss and optimisers) and what its
validation loss is — and :func:`train` does the rest the same way for all of them:

* **batches**: the training samples are shuffled once per epoch (one permutation from the fit's own
  generator) and cut into consecutive batches, so an epoch visits each sample exactly once;
* **early stopping**: after each epoch the loss on a validation slice the caller held out is compared with
  the best so far; ``patience`` epochs without a relative improvement stop training, and the best epoch's
  weights are put back (:class:`EarlyStopping` also decides for a stack of fleet members at once);
* **progress**: a bar over the epochs when reporting is on (the CLI turns it on; the library is quiet),
  and one log line per epoch.

:func:`seeded` runs training on a forked, seeded torch RNG (the caller's global RNG is left as it was), and
:func:`torch_device` turns a ``device`` parameter into a device.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError, ModelFormatError, NumericalError
from vigil.progress import progress as progress_bar
from vigil.progress import reporting

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "EarlyStopping",
    "check_loss",
    "descend",
    "load_weight_arrays",
    "require_torch",
    "seeded",
    "threads",
    "torch_device",
    "train",
    "weight_arrays",
]

_LOG = logging.getLogger(__name__)


def require_torch():
    """Import torch, or explain how to install it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        msg = "this model needs PyTorch: pip install 'vigil[deep]'"
        raise ImportError(msg) from exc
    return torch


def torch_device(choice: str, owner: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"`` as a device; ``owner`` names the
    model in the error when CUDA is asked for and absent."""
    torch = require_torch()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        msg = f"{owner}(device='cuda') but no CUDA device is available"
        raise InvalidInputError(msg)
    return torch.device(choice)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | None = None) -> Iterator[torch.Generator]:
    """Seed a forked torch RNG for the block and yield a CPU generator with the same seed (batch order).

    Weight initialisation and dropout draw from torch's global RNG; forking it keeps a fit reproducible for a
    given seed without changing the caller's RNG. On CUDA, cuDNN is also asked for deterministic algorithms
    for the duration (its fastest convolution gradients add in a varying order), and its flags come back after.
    None draws a fresh seed.
    """
    torch = require_torch()
    on_cuda = device is not None and device.type == "cuda"
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark)
    with torch.random.fork_rng(devices=[device.index or 0] if on_cuda and device is not None else []):
        if on_cuda:
            cudnn.deterministic, cudnn.benchmark = True, False
        try:
            torch.manual_seed(seed)
            yield torch.Generator(device="cpu").manual_seed(seed)
        finally:
            cudnn.deterministic, cudnn.benchmark = before


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block (None: leave torch's setting), then restore it."""
    torch = require_torch()
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def weight_arrays(module: nn.Module, prefix: str) -> dict[str, NDArray[Any]]:
    """A module's ``state_dict`` as numpy arrays keyed ``prefix + name`` (saved as npz, never pickled)."""
    return {f"{prefix}{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_weight_arrays(module: nn.Module, arrays: dict[str, Any], prefix: str, owner: str) -> None:
    """Load the arrays under ``prefix`` (as written by :func:`weight_arrays`) into ``module``; every key must
    match, or the error says the weights do not fit ``owner``'s parameters."""
    torch = require_torch()
    state = {k[len(prefix) :]: torch.from_numpy(np.asarray(v)) for k, v in arrays.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as exc:
        msg = f"saved weights do not fit {owner} with these parameters: {exc}"
        raise ModelFormatError(msg) from exc


def check_loss(loss: torch.Tensor, owner: str) -> None:
    """Refuse a non-finite training loss: the model diverged."""
    if not bool(loss.isfinite()):
        msg = f"{owner} training diverged (loss {loss.item()}); lower learning_rate"
        raise NumericalError(msg)


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, owner: str) -> torch.Tensor:
    """One gradient step of ``optimizer`` on ``loss`` (checked first); returns the loss."""
    check_loss(loss, owner)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


class EarlyStopping:
    """Each model's best validation loss and epochs since it, for one model or a stack of fleet members.

    An epoch improves on the best when its loss is lower by more than ``1e-6`` of it (scale-free: losses
    are non-negative, and the best starts at infinity); ``patience`` epochs in a row without improving
    stop a model. Where the weights are kept is the caller's (a state dict, or rows of stacked weights).
    """

    def __init__(self, patience: int, n: int = 1) -> None:
        self.patience = patience
        self.best_loss = np.full(n, math.inf)
        self.stale = np.zeros(n, dtype=np.int64)

    def update(self, losses: Any) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Record an epoch's losses; returns (which models improved, which stop now)."""
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        better = losses < self.best_loss * (1.0 - 1e-6)
        self.best_loss = np.where(better, losses, self.best_loss)
        self.stale = np.where(better, 0, self.stale + 1)
        return better, ~better & (self.stale >= self.patience)

    def keep(self, index: Any) -> None:
        """Keep the models at positions ``index`` only (members that left a fleet)."""
        self.best_loss, self.stale = self.best_loss[index], self.stale[index]


def train(
    module: nn.Module,
    step: Callable[[Any, int], Any],
    validate: Callable[[], float],
    *,
    n_samples: int,
    batch_size: int,
    epochs: int,
    patience: int,
    generator: torch.Generator,
    name: str,
    order: Callable[[], Any] | None = None,
    validate_first: bool = False,
    progress: bool | None = None,
) -> list[float]:
    """Train ``module`` with early stopping; returns the validation loss of each epoch run.

    Parameters
    ----------
    module : torch.nn.Module
        Put in training mode before each epoch's steps; left with the best epoch's weights.
    step : callable
        ``step(indices, epoch)`` takes one optimisation step on the samples ``indices`` (a tensor of sample
        numbers) and returns its loss, which is checked for divergence. Custom schemes (USAD's two
        adversarial losses, several optimisers) live here.
    validate : callable
        The validation loss of the current weights, as a float.
    n_samples, batch_size : int
        Training samples, and samples per step.
    epochs, patience : int
        Most epochs; epochs without an improvement before stopping (see :class:`EarlyStopping`).
    generator : torch.Generator
        Draws each epoch's order: one permutation of the samples, cut into consecutive batches.
    name : str
        The model's name in progress, log lines and errors.
    order : callable, optional
        ``order()`` gives the epoch's sample order instead (for example a fixed number of random draws).
    validate_first : bool
        Measure the weights before an epoch's steps rather than after (a full-batch step whose forward pass
        also gives the validation loss): the best weights are then those the loss was measured on.
    progress : bool, optional
        Show a bar over the epochs; None: when the application turned reporting on.

    Examples
    --------
    >>> import torch
    >>> x = torch.linspace(-1, 1, 40)[:, None]
    >>> with seeded(0) as generator:
    ...     net = torch.nn.Linear(1, 1)
    ...     adam = torch.optim.Adam(net.parameters(), lr=0.1)
    ...     loss = lambda rows: ((net(x[rows]) - 3 * x[rows]) ** 2).mean()
    ...     history = train(net, lambda rows, epoch: descend(adam, loss(rows), "line"),
    ...                     lambda: loss(slice(None)).item(), n_samples=40, batch_size=8, epochs=200,
    ...                     patience=3, generator=generator, name="line")
    >>> len(history) < 200, round(net.weight.item(), 1)
    (True, 3.0)
    """
    torch = require_torch()
    stopping = EarlyStopping(patience)
    best_state: dict[str, Any] | None = None
    history: list[float] = []
    enabled = reporting() if progress is None else progress
    bar = progress_bar(total=epochs, desc=f"training {name}", unit="epoch", enabled=enabled)

    def measure() -> bool:
        nonlocal best_state
        loss = float(validate())
        history.append(loss)
        bar.set_postfix_str(f"validation loss {loss:.4g}")
        bar.update(1)
        _LOG.info("%s epoch %d/%d: validation loss %.5g", name, len(history), epochs, loss)
        better, stop = stopping.update(loss)
        if better[0]:
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return bool(stop[0])

    try:
        for epoch in range(epochs):
            if validate_first and measure():
                break
            module.train()
            visit = order() if order is not None else torch.randperm(n_samples, generator=generator)
            for start in range(0, len(visit), batch_size):
                check_loss(step(visit[start : start + batch_size], epoch), name)
            if not validate_first and measure():
                break
    finally:
        bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history
