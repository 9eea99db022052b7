"""Training and scoring glue shared by every PyTorch detector; the networks live in their own modules.

A :class:`TorchDetector` cuts the (already scaled) rows into sliding windows, trains its network with Adam
on the earlier windows, stops early on the loss of the later ones (a validation slice carved from the
training rows only, in time order), and keeps the best weights. Each window gets a per-feature error;
dividing it by that feature's mean error on the validation windows makes sensors comparable, and their
mean is the window's score. A row's score is that of the window ending at it.

Randomness comes from ``random_state`` through a forked RNG: the global torch RNG is left as it was.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import BaseDetector, Interval, Options, RawContributions
from vigil.detectors.training import (
    check_loss,
    descend,
    load_weight_arrays,
    require_torch,
    seeded,
    torch_device,
    train,
    weight_arrays,
)
from vigil.errors import InvalidInputError
from vigil.features.windows import rows_from_windows, sliding_windows

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["TorchDetector", "require_torch"]

_WEIGHT_PREFIX = "weights."


class TorchDetector(BaseDetector):
    """Base class of the PyTorch detectors (see the module docstring for what ``fit`` does).

    Parameters
    ----------
    window : int
        Rows per window (1 = each row on its own).
    epochs : int
        Most passes over the training windows.
    batch_size : int
        Windows per optimisation step.
    learning_rate : float
        Adam's step size.
    validation_fraction : float
        Share of the training windows, the latest ones, held out for early stopping and error scales.
    patience : int
        Epochs without a better validation loss before training stops.
    relative_drift : float or None
        Drift guard, decided on the training rows alone. A feature whose mean over the latest
        ``validation_fraction`` of the training rows lies more than ``relative_drift`` standard deviations
        (of the earlier rows) from its earlier mean is *drifting* (a slowly heating temperature, say): the
        network then sees it relative to the last input row of each window, that is by how it moves rather
        than where it is, so its level wandering past the training range raises no alarm. The mask is
        ``relative_features_``. None (default) keeps every feature's level.
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Subclasses implement ``_build_module(n_features)`` and ``_errors(module, batch)`` (per-feature errors,
    shape (batch, n_features)); reconstruction models can rely on the default ``_loss``. Other hooks:
    ``_sample_rows`` (rows one sample spans), ``_optimizers`` and ``_train_step`` (training schemes with
    several losses), ``_validation_loss`` (what early stopping watches) and ``_after_fit`` (the error
    model learned from the validation windows; by default each feature's mean error, ``error_scale_``).

    Performance note: PyTorch's CPU kernels use every core by default. The networks here are small, and on
    a machine whose cores are busy with other work, one thread is often several times faster than many;
    set ``torch.set_num_threads`` in the application, where the load is known.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "window": [Interval(int, 1, None)],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0.0, 1.0, closed="right")],
        "validation_fraction": [Interval(float, 0.0, 0.5, closed="left")],
        "patience": [Interval(int, 1, None)],
        "relative_drift": [None, Interval(float, 0.0, None, closed="neither")],
        "device": [Options("auto", "cpu", "cuda")],
    }

    def __init__(
        self,
        *,
        window: int = 1,
        epochs: int = 50,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.2,
        patience: int = 5,
        relative_drift: float | None = None,
        device: str = "auto",
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.window = window
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.relative_drift = relative_drift
        self.device = device

    # ------------------------------------------------------------------ hooks
    def _build_module(self, n_features: int) -> nn.Module:
        raise NotImplementedError

    def _sample_rows(self) -> int:
        """Rows one training sample spans (a forecaster needs one more than its input window)."""
        return self.window

    def _loss(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return self._errors(module, batch).mean()

    def _errors(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _optimizers(self, module: nn.Module) -> list[torch.optim.Optimizer]:
        """The optimisers ``_train_step`` uses (one Adam over every parameter by default)."""
        torch = require_torch()
        return [torch.optim.Adam(module.parameters(), lr=self.learning_rate)]

    def _train_step(
        self, module: nn.Module, batch: torch.Tensor, optimizers: list[torch.optim.Optimizer], epoch: int
    ) -> torch.Tensor:
        """One optimisation step on ``batch``; returns the loss, checked for divergence by the caller.

        Override for training schemes with several losses (USAD's two adversarial decoders).
        """
        (optimizer,) = optimizers
        return descend(optimizer, self._loss(module, batch), type(self).__name__)

    def _check_loss(self, loss: torch.Tensor) -> None:
        check_loss(loss, type(self).__name__)

    def _validation_loss(self, module: nn.Module, windows: torch.Tensor) -> float:
        """What early stopping minimises: the mean per-feature error of the validation windows."""
        return float(self._batched_errors(module, windows).mean())

    def _after_fit(self, module: nn.Module, validation: torch.Tensor) -> None:
        """Learn the error model from the validation windows: each feature's mean error, its scale."""
        scale = self._batched_errors(module, validation).mean(axis=0)
        self.error_scale_ = np.maximum(scale, max(float(scale.max()), 1e-12) * 1e-6)

    # ------------------------------------------------------------------ plumbing
    @property
    def context_rows(self) -> int:
        return self._sample_rows() - 1

    def _min_fit_rows(self) -> int:
        return self._sample_rows() + 4

    def _min_fit_rows_reason(self) -> str:
        return (
            f"one training sample spans {self._sample_rows()} rows and a few samples are needed to train; "
            "a shorter window (--param window=N) needs fewer"
        )

    def _torch_device(self) -> torch.device:
        return torch_device(self.device, type(self).__name__)

    def _seeded(self, device: torch.device):
        """The fit's forked torch RNG (see :func:`~vigil.detectors.training.seeded`), seeded from ``random_state``."""
        return seeded(int(self._rng().integers(2**31 - 1)), device)

    def _windows(self, values: NDArray[np.float64]) -> NDArray[np.float32]:
        rows = self._sample_rows()
        if values.shape[0] < rows:
            msg = (
                f"{type(self).__name__} needs at least {rows} rows (one window) to score, got {values.shape[0]}; "
                "stream rows through StreamScorer to score fewer at a time"
            )
            raise InvalidInputError(msg)
        windows = np.array(sliding_windows(values, rows), dtype=np.float32)  # a writable copy
        drifting = getattr(self, "relative_features_", None)
        if drifting is not None and drifting.any():
            now = self.window - 1  # the last row the network is given as input
            windows[:, :, drifting] -= windows[:, now : now + 1, drifting]
        return windows

    def _drifting_features(self, values: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Features whose level moved by more than ``relative_drift`` σ within the training rows."""
        n_late = math.floor(len(values) * self.validation_fraction)
        if self.relative_drift is None or n_late < 2 or len(values) - n_late < 2:
            return np.zeros(values.shape[1], dtype=bool)
        early, late = values[: len(values) - n_late], values[len(values) - n_late :]
        shift = np.abs(late.mean(axis=0) - early.mean(axis=0))
        spread = early.std(axis=0)
        return shift > self.relative_drift * np.maximum(spread, 1e-12)

    def _split(self, n_windows: int) -> int:
        """Number of validation windows: the latest ``validation_fraction``, none if too few remain."""
        n_val = math.floor(n_windows * self.validation_fraction)
        return 0 if n_val and n_windows - n_val < 2 else n_val

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        torch = require_torch()
        device = self._torch_device()
        self.relative_features_ = self._drifting_features(values)
        windows = self._windows(values)
        n_val = self._split(len(windows))
        train_windows = torch.from_numpy(windows[: len(windows) - n_val]).to(device)
        val = torch.from_numpy(windows[len(windows) - n_val :]).to(device) if n_val else train_windows
        with self._seeded(device) as generator:
            module = self._build_module(values.shape[1]).to(device)
            optimizers = self._optimizers(module)
            history = train(
                module,
                lambda rows, epoch: self._train_step(module, train_windows[rows.to(device)], optimizers, epoch),
                lambda: self._validation_loss(module, val),
                n_samples=len(train_windows),
                batch_size=self.batch_size,
                epochs=self.epochs,
                patience=self.patience,
                generator=generator,
                name=type(self).__name__,
            )
        self.module_ = module.eval()
        self.epochs_trained_ = len(history)
        self.validation_loss_ = np.asarray(history, dtype=np.float64)
        self._after_fit(module, val)

    def _batched_errors(self, module: nn.Module, windows: Any, chunk: int | None = None) -> NDArray[np.float64]:
        return self._batched(self._errors, module, windows, chunk)

    def _batched(self, fn: Any, module: nn.Module, windows: Any, chunk: int | None = None) -> NDArray[np.float64]:
        """``fn(module, batch)`` over ``windows`` in chunks, without gradients, as one float64 array.

        On a CPU, chunks of a few hundred windows keep a network's activations in the processor's cache:
        an LSTM-AE over windows of 32 × 8 scores about 2.5 times faster in chunks of 256 than of 8,192.
        A GPU wants large chunks.
        """
        torch = require_torch()
        device = next(module.parameters()).device
        if chunk is None:
            chunk = 8192 if device.type == "cuda" else 256
        module.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(windows), chunk):
                batch = windows[start : start + chunk]
                if not isinstance(batch, torch.Tensor):
                    batch = torch.from_numpy(batch)
                out.append(fn(module, batch.to(device)).double().cpu().numpy())
        return np.concatenate(out, axis=0)

    def _relative_errors(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        errors = self._batched_errors(self.module_, self._windows(values)) / self.error_scale_
        return rows_from_windows(errors, self._sample_rows())

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._relative_errors(values).mean(axis=1)

    def _contributions(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._relative_errors(values)

    def _score_and_contributions(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], RawContributions]:
        errors = self._relative_errors(values)  # one pass through the network explains every row it scored
        return errors.mean(axis=1), lambda rows: errors[rows]

    # ------------------------------------------------------------------ persistence
    def _learned_state(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k != "module_"}
        return {**state, **weight_arrays(self.module_, _WEIGHT_PREFIX)}

    def _restore_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if not key.startswith(_WEIGHT_PREFIX):
                setattr(self, key, value)
        device = self._torch_device()
        with self._seeded(device):
            module = self._build_module(int(self.n_features_in_))
        load_weight_arrays(module, state, _WEIGHT_PREFIX, type(self).__name__)
        self.module_ = module.to(device).eval()
