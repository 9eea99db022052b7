"""The image detector contract, and the training glue of Vigil's CNN image detectors.

An :class:`ImageDetector` is a :class:`~vigil.base.BaseDetector` whose samples are images: ``fit``,
``score_samples`` and ``predict`` take an array of shape (n, H, W) (grey) or (n, H, W, C) with C = 1 or 3,
``uint8`` (divided by 255) or floats (grey levels, nominally in [0, 1]). On top of one score per image it
gives :meth:`~ImageDetector.anomaly_map`: one non-negative value per pixel, shape (n, H, W), higher where
the image looks anomalous. Parameters are checked in ``fit`` from ``_parameter_constraints``; learned
attributes end in ``_``; ``save``/``load`` write JSON and ``.npz`` (weights as arrays, never a pickle).

**Why image detectors have their own registry and contract suite.** The main registry
(:mod:`vigil.registry`) holds detectors of *tables of named sensor readings*: the CLI fits them on CSV
files through a :class:`~vigil.pipeline.Pipeline` that standardises every column, the streaming runtime
feeds them records keyed by sensor name, and :mod:`vigil.testing` checks them on 4-column Gaussian
tables, column order included. None of that means anything for pixels: a per-pixel scaler destroys the
illumination cues, a "column order" of pixels is not a property anyone needs, and a CNN on a 1×4 "image"
would pass the table suite without showing that it finds a scratch. Accepting flattened (n, H·W) rows
with a declared shape would make them *fit* that registry while inviting exactly those misuses. So image
detectors register in :mod:`vigil.vision.registry`, and :mod:`vigil.vision.testing` runs the same
contract — the data-independent checks of :mod:`vigil.testing` verbatim, and image versions of the rest
(NaN/inf, empty and wrong-shape input, shape and finiteness, purity, same seed, save/load round trip,
threshold, obvious defects) plus the anomaly-map checks — over every registered image detector.

Randomness comes from ``random_state`` through a forked torch RNG seeded in ``fit`` (the same recipe as
:class:`~vigil.detectors.torch_base.TorchDetector`): the global RNGs are left as they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from vigil.base import BaseDetector, Interval, Options
from vigil.detectors.training import (
    descend,
    load_weight_arrays,
    require_torch,
    seeded,
    torch_device,
    train,
    weight_arrays,
)
from vigil.errors import InvalidInputError, ModelFormatError, NotFittedError, NumericalError
from vigil.persistence import read_state

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ImageDetector", "TorchImageDetector", "check_images", "require_torch"]

_WEIGHT_PREFIX = "weights."
_CHUNK = 64  # images per scoring batch: bounds memory whatever the number of images


def check_images(X: Any, *, where: str = "X", min_images: int = 1) -> NDArray[np.float32]:
    """Validate a stack of images and return it as float32 of shape (n, C, H, W).

    Parameters
    ----------
    X : array-like, shape (n, H, W) or (n, H, W, C) with C in {1, 3}
        ``uint8`` is divided by 255; other numeric types are taken as grey levels as they are.
    where : str
        Name used in error messages.
    min_images : int
        Fewest images accepted.

    Raises
    ------
    InvalidInputError
        Not numeric, wrong number of dimensions or channels, too few images, NaN or infinity (located).

    Examples
    --------
    >>> check_images(np.zeros((2, 4, 5), np.uint8)).shape
    (2, 1, 4, 5)
    >>> bad = np.zeros((2, 4, 4)); bad[1, 2, 3] = np.nan
    >>> check_images(bad)
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: X[image 1, row 2, column 3] is NaN
    """
    try:
        array = np.asarray(X)
    except (TypeError, ValueError) as exc:
        msg = f"{where} could not be read as an array of images: {exc}"
        raise InvalidInputError(msg) from exc
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        msg = f"{where} must hold numbers, got dtype {array.dtype}"
        raise InvalidInputError(msg)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        msg = (
            f"{where} must have shape (n, H, W) or (n, H, W, C) with C = 1 or 3, got shape {np.shape(X)}; "
            "use vigil.vision.io to read image files"
        )
        raise InvalidInputError(msg)
    if array.shape[0] < min_images:
        msg = f"{where} holds {array.shape[0]} images, at least {min_images} needed"
        raise InvalidInputError(msg)
    if min(array.shape[1:3]) < 1:
        msg = f"{where} has empty images of shape {array.shape[1:3]}"
        raise InvalidInputError(msg)
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / np.float32(255.0)
    else:
        values = array.astype(np.float32)
        finite = np.isfinite(values)
        if not finite.all():
            n, row, col, channel = (int(v) for v in np.argwhere(~finite)[0])
            kind = "NaN" if np.isnan(values[n, row, col, channel]) else "infinite"
            at = f", channel {channel}" if array.shape[-1] > 1 else ""
            msg = f"{where}[image {n}, row {row}, column {col}{at}] is {kind}"
            raise InvalidInputError(msg)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


class ImageDetector(BaseDetector):
    """Base class of every image detector (see the module docstring for the contract).

    Subclasses implement ``_fit_images(images, y, groups)`` and ``_score_maps(images) -> (scores, maps)`` on
    float32 arrays of shape (n, C, H, W); ``maps`` is (n, H, W), or None when the detector does not localise.

    Attributes
    ----------
    image_shape_ : tuple of int
        (H, W, C) of the training images; later inputs must match it.
    threshold_ : float
        Training-score quantile at ``1 - contamination``.
    """

    supervised: ClassVar[bool] = False
    """True for detectors that need labels (``y``) in ``fit``."""
    localizes: ClassVar[bool] = True
    """True when :meth:`anomaly_map` is meaningful (the bench reports pixel ROC-AUC then)."""

    def _min_fit_images(self) -> int:
        return 2

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None, *, groups: Any = None) -> Self:
        """Learn normal appearance from the images ``X``.

        Parameters
        ----------
        X : array-like, shape (n, H, W) or (n, H, W, C)
        y : array-like of shape (n,), optional
            Labels, for supervised detectors only: bool/0-1 (defect or not) or strings (``"good"`` or the
            defect type).
        groups : array-like of shape (n,), optional
            Physical part of each image (for example a tile id); when given, a validation slice holds out
            whole groups so that no part is on both sides.
        """
        self._validate_params()
        images = check_images(X, where="X", min_images=self._min_fit_images())
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (images.shape[0],):
                msg = f"groups has shape {groups.shape}, expected ({images.shape[0]},)"
                raise InvalidInputError(msg)
        for attribute in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, attribute)
        _, c, h, w = images.shape
        self.image_shape_ = (h, w, c)
        self.n_features_in_ = h * w * c
        self._fit_images(images, y, groups)
        self.threshold_ = self._training_threshold(self._calibration_scores(images))
        return self

    def _prepare_images(self, X: Any, where: str = "X") -> NDArray[np.float32]:
        if not hasattr(self, "image_shape_"):
            msg = f"this {type(self).__name__} is not fitted yet: call fit first"
            raise NotFittedError(msg)
        images = check_images(X, where=where)
        shape = (images.shape[2], images.shape[3], images.shape[1])
        expected = tuple(int(v) for v in self.image_shape_)
        if shape != expected:
            msg = (
                f"{where} holds images of {shape[0]}×{shape[1]} px with {shape[2]} channel(s), but the detector "
                f"was fitted on {expected[0]}×{expected[1]} px with {expected[2]}; read them with the same size "
                "and mode"
            )
            raise InvalidInputError(msg)
        return images

    def _checked(self, images: NDArray[np.float32], *, want_maps: bool) -> tuple[NDArray[np.float64], Any]:
        score_parts, map_parts = [], []
        for start in range(0, images.shape[0], _CHUNK):
            scores, maps = self._score_maps(images[start : start + _CHUNK], want_maps=want_maps)
            score_parts.append(np.asarray(scores, dtype=np.float64))
            if want_maps:
                map_parts.append(np.asarray(maps, dtype=np.float64))
        scores = np.concatenate(score_parts)
        if scores.shape != (images.shape[0],):
            msg = f"{type(self).__name__} returned scores of shape {scores.shape} for {images.shape[0]} images"
            raise NumericalError(msg)
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            msg = f"{type(self).__name__} produced a non-finite score for image {bad}: the model may have diverged"
            raise NumericalError(msg)
        maps = np.concatenate(map_parts) if want_maps else None
        if maps is not None and not np.isfinite(maps).all():
            msg = f"{type(self).__name__} produced a non-finite anomaly map"
            raise NumericalError(msg)
        return scores, maps

    def score_samples(self, X: Any) -> NDArray[np.float64]:
        """Return one anomaly score per image; higher means more anomalous."""
        return self._checked(self._prepare_images(X), want_maps=False)[0]

    def anomaly_map(self, X: Any) -> NDArray[np.float64]:
        """Return a non-negative per-pixel anomaly map of shape (n, H, W) at the input resolution."""
        return self.score_with_maps(X)[1]

    def score_with_maps(self, X: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return ``(scores, maps)`` in one pass: what a report or an alert with a heat map needs."""
        if not self.localizes:
            msg = f"{type(self).__name__} does not localise anomalies"
            raise NotImplementedError(msg)
        return self._checked(self._prepare_images(X), want_maps=True)

    def predict(self, X: Any) -> NDArray[np.bool_]:
        """Return True for images whose score exceeds ``threshold_``."""
        return self.score_samples(X) > self.threshold_

    def feature_contributions(self, X: Any) -> NDArray[np.float64]:
        """Return each pixel's share of its image's anomaly map, shape (n, H·W), rows summing to 1."""
        maps = self.anomaly_map(X).reshape(len(X), -1)
        totals = maps.sum(axis=1, keepdims=True)
        uniform = np.full_like(maps, 1.0 / maps.shape[1])
        return np.where(totals > 0, maps / np.where(totals > 0, totals, 1.0), uniform)

    # ------------------------------------------------------------------ hooks
    def _calibration_scores(self, images: NDArray[np.float32]) -> NDArray[np.float64]:
        """Scores of good images the threshold is the quantile of; default: the training images as they are.

        Detectors that memorise their training patches override it (their own images would score too low).
        """
        return self._checked(images, want_maps=False)[0]

    def _fit_images(self, images: NDArray[np.float32], y: Any, groups: Any) -> None:
        raise NotImplementedError

    def _score_maps(self, images: NDArray[np.float32], *, want_maps: bool) -> tuple[Any, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------ persistence
    def _restore_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, tuple(value) if key == "image_shape_" else value)

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Saved parameters as the constructor wants them: JSON turned tuples into lists."""
        from vigil.vision.registry import coerce_params

        return coerce_params(params)

    @classmethod
    def load(cls, path: str | Path) -> ImageDetector:
        """Load an image detector saved by :meth:`save`; the class comes from the image registry."""
        from vigil.vision.registry import image_detector_class

        document, arrays = read_state(Path(path), kind="detector")
        klass = image_detector_class(document.get("detector", ""))
        if not issubclass(klass, cls):
            msg = f"{path} holds a {klass.__name__}, not a {cls.__name__}"
            raise ModelFormatError(msg)
        params = klass._params_from_json(dict(document.get("params", {})))
        try:
            detector = klass(**params)
        except TypeError as exc:
            msg = f"{path} has parameters {klass.__name__} does not accept: {exc}"
            raise ModelFormatError(msg) from exc
        detector._restore_state({**document.get("state", {}), **arrays})
        return detector


class TorchImageDetector(ImageDetector):
    """Base class of the image detectors that train a network: Adam, early stopping, forked RNG, npz weights.

    Parameters
    ----------
    epochs : int
        Most passes over the training images.
    batch_size : int
        Images per optimisation step.
    learning_rate : float
        Adam's step size.
    validation_fraction : float
        Share of the training images (whole ``groups`` when given) held out for early stopping.
    patience : int
        Epochs without a better validation loss before training stops.
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` is CUDA when available, else CPU.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Subclasses implement ``_build_module(channels)`` and ``_batch_loss(module, images, targets, generator)``
    (targets are None for unsupervised detectors), and may override ``_targets(y)``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0.0, 1.0, closed="right")],
        "validation_fraction": [Interval(float, 0.0, 0.5, closed="left")],
        "patience": [Interval(int, 1, None)],
        "device": [Options("auto", "cpu", "cuda")],
    }

    def __init__(
        self,
        *,
        epochs: int = 30,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.15,
        patience: int = 5,
        device: str = "auto",
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device

    # ------------------------------------------------------------------ hooks
    def _build_module(self, channels: int) -> nn.Module:
        raise NotImplementedError

    def _batch_loss(
        self,
        module: nn.Module,
        images: torch.Tensor,
        targets: torch.Tensor | None,
        generator: torch.Generator | None,  # None when scoring the validation images
    ) -> torch.Tensor:
        raise NotImplementedError

    def _targets(self, y: Any, n: int) -> NDArray[np.int64] | None:
        return None

    def _epoch_order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of the training images one epoch visits, in order; default: each once, shuffled."""
        torch = require_torch()
        return torch.randperm(n, generator=generator)

    def _after_training(self, module: nn.Module, train: NDArray[np.float32], val: NDArray[np.float32]) -> None:
        """Learn what scoring needs besides the weights (for example error scales); default: nothing."""

    # ------------------------------------------------------------------ plumbing
    def _torch_device(self) -> torch.device:
        return torch_device(self.device, type(self).__name__)

    def _seeded(self, device: torch.device):
        return seeded(int(self._rng().integers(2**31 - 1)), device)

    def _split(self, n: int, groups: Any, targets: Any) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Training and validation indices: a seeded share of the images, or of the groups when given."""
        rng = np.random.default_rng(None if self.random_state is None else self.random_state + 1)
        if groups is None:
            keys = np.arange(n)
        else:
            keys = np.unique(groups, return_inverse=True)[1]
        n_keys = int(keys.max()) + 1
        n_val = math.floor(n_keys * self.validation_fraction)
        if n_val == 0 or n_keys - n_val < 1:
            everything = np.arange(n)
            return everything, everything
        held = np.zeros(n_keys, dtype=bool)
        held[rng.permutation(n_keys)[:n_val]] = True
        val = np.flatnonzero(held[keys])
        train = np.flatnonzero(~held[keys])
        if len(train) < 2 or len(val) < 1:
            everything = np.arange(n)
            return everything, everything
        return train, val

    def _fit_images(self, images: NDArray[np.float32], y: Any, groups: Any) -> None:
        torch = require_torch()
        device = self._torch_device()
        targets = self._targets(y, images.shape[0])
        train_idx, val_idx = self._split(images.shape[0], groups, targets)
        x_train = torch.from_numpy(images[train_idx])
        x_val = torch.from_numpy(images[val_idx])
        t_train = None if targets is None else torch.from_numpy(targets[train_idx])
        t_val = None if targets is None else torch.from_numpy(targets[val_idx])
        with self._seeded(device) as generator:
            module = self._build_module(images.shape[1]).to(device)
            optimizer = torch.optim.Adam(module.parameters(), lr=self.learning_rate)

            def step(pick: Any, epoch: int) -> Any:
                target = None if t_train is None else t_train[pick].to(device)
                loss = self._batch_loss(module, x_train[pick].to(device), target, generator)
                return descend(optimizer, loss, type(self).__name__)

            history = train(
                module,
                step,
                lambda: self._validation_loss(module, x_val, t_val, device),
                n_samples=len(x_train),
                batch_size=self.batch_size,
                epochs=self.epochs,
                patience=self.patience,
                generator=generator,
                name=type(self).__name__,
                order=lambda: self._epoch_order(len(x_train), generator),
            )
        self.module_ = module.eval()
        self.epochs_trained_ = len(history)
        self.validation_loss_ = np.asarray(history, dtype=np.float64)
        self._after_training(self.module_, images[train_idx], images[val_idx])

    def _validation_loss(self, module: nn.Module, x_val: Any, t_val: Any, device: Any) -> float:
        torch = require_torch()
        module.eval()
        total, count = 0.0, 0
        with torch.inference_mode():
            for start in range(0, len(x_val), _CHUNK):
                batch = x_val[start : start + _CHUNK].to(device)
                target = None if t_val is None else t_val[start : start + _CHUNK].to(device)
                loss = self._batch_loss(module, batch, target, None)
                total += float(loss) * len(batch)
                count += len(batch)
        return total / max(count, 1)

    def _run(self, fn: Callable[[Any], Any], images: NDArray[np.float32]) -> Any:
        """Call ``fn`` on ``images`` as a tensor on the module's device, without gradients."""
        torch = require_torch()
        device = next(self.module_.parameters()).device
        with torch.inference_mode():
            return fn(torch.from_numpy(np.ascontiguousarray(images)).to(device))

    # ------------------------------------------------------------------ persistence
    def _learned_state(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k != "module_"}
        return {**state, **weight_arrays(self.module_, _WEIGHT_PREFIX)}

    def _restore_state(self, state: dict[str, Any]) -> None:
        super()._restore_state({k: v for k, v in state.items() if not k.startswith(_WEIGHT_PREFIX)})
        device = self._torch_device()
        with self._seeded(device):
            module = self._build_module(int(self.image_shape_[2]))
        load_weight_arrays(module, state, _WEIGHT_PREFIX, type(self).__name__)
        self.module_ = module.to(device).eval()
