"""Supervised flow classifier: a PyTorch MLP with a binary and a category head, trained with class weights.

For flow data sets that come with labels (NSL-KDD), a supervised model learns the known attacks far better
than an anomaly detector. Attack categories are heavily imbalanced (NSL-KDD's training set has 52 U2R rows
among 125,973), so each class's loss is weighted by ``(n / (k·n_c))^power``: ``power=1`` is the usual
"balanced" weighting, ``0.5`` (the default) tempers it so the rarest classes do not dominate.

A validation share of the training rows (stratified by class) is held out for early stopping; nothing here
looks at test data. It is a registered, supervised detector (``mlp``, tag ``requires_y``): ``fit(X, y)``,
and its score is P(attack).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    msg = "the flow classifier needs PyTorch: pip install 'vigil[deep]'"
    raise ImportError(msg) from exc

from vigil.base import BaseDetector, Interval
from vigil.detectors.training import descend, load_weight_arrays, seeded, threads, train, weight_arrays
from vigil.errors import InvalidInputError, ModelFormatError
from vigil.network.autoencoder import _positive_int_tuple
from vigil.network.torch_models import FlowMLP
from vigil.persistence import read_state
from vigil.registry import register

__all__ = ["FlowClassifier", "stratified_holdout"]


def stratified_holdout(labels: NDArray[Any], share: float, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Return a mask selecting ``share`` of the rows of each class (at least one row of classes with ≥ 2).

    Examples
    --------
    >>> mask = stratified_holdout(np.array(["a"] * 10 + ["b"] * 4), 0.25, np.random.default_rng(0))
    >>> int(mask[:10].sum()), int(mask[10:].sum())
    (2, 1)
    """
    mask = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        if len(rows) < 2:
            continue
        take = max(1, round(share * len(rows)))
        mask[rng.choice(rows, size=min(take, len(rows) - 1), replace=False)] = True
    return mask


_PREFIX = "net."


@register("mlp", "Supervised MLP over encoded flow features, fit(X, y): P(attack) and the attack category")
class FlowClassifier(BaseDetector):
    """MLP over encoded flow features predicting attack/normal and the attack category.

    Parameters
    ----------
    hidden : tuple of int
        Widths of the shared hidden layers.
    dropout : float
    epochs : int
        Most passes over the training rows; early stopping usually ends sooner.
    batch_size : int
    learning_rate, weight_decay : float
        AdamW settings.
    class_weight_power : float
        Exponent of the inverse-frequency class weights (0: unweighted, 1: fully balanced).
    validation_fraction : float
        Stratified share of the training rows held out for early stopping (``validation`` before; that name
        still works, with a warning, for one release).
    patience : int
        Epochs without a better validation loss before training stops.
    threshold : float
        P(attack) above which :meth:`predict` says attack (``threshold_`` once fitted).
    random_state : int or None
        Seeds the split, the batch order, the initial weights and dropout.
    n_threads : int or None
        torch intra-op threads during fit and predict (None: torch's default).

    Attributes
    ----------
    categories_ : list of str
        The category head's classes (``"normal"`` first when present).
    n_epochs_ : int
        Epochs run; the weights are those of the best validation epoch.
    history_ : list of dict
        Training and validation loss per epoch.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> category = np.where(X[:, 0] > 0.5, "DoS", "normal")
    >>> clf = FlowClassifier(hidden=(16,), epochs=30, batch_size=16, random_state=0, n_threads=1)
    >>> clf = clf.fit(X, category != "normal", category)
    >>> clf.predict(np.array([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])).tolist()
    [True, False]
    >>> clf.predict_category(np.array([[2.0, 0.0, 0.0]])).tolist()
    ['DoS']
    """

    requires_y = True
    _renamed_params: ClassVar[dict[str, str]] = {"validation": "validation_fraction"}
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden": [_positive_int_tuple],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0.0, None, closed="neither")],
        "weight_decay": [Interval(float, 0.0, None)],
        "class_weight_power": [Interval(float, 0.0, 1.0)],
        "validation_fraction": [Interval(float, 0.0, 0.5, closed="neither")],
        "patience": [Interval(int, 1, None)],
        "threshold": [Interval(float, 0.0, 1.0, closed="neither")],
        "n_threads": [None, Interval(int, 1, None)],
    }

    def __init__(  # no contamination: the threshold is a probability, not a share of the training rows
        self,
        *,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.1,
        epochs: int = 40,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weight_power: float = 0.5,
        validation_fraction: float = 0.1,
        patience: int = 5,
        threshold: float = 0.5,
        random_state: int | None = None,
        n_threads: int | None = None,
        **renamed: Any,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.class_weight_power = class_weight_power
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.threshold = threshold
        self.random_state = random_state
        self.n_threads = n_threads
        self._take_renamed(renamed)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"hidden": (16,), "epochs": 20, "batch_size": 32, "random_state": 0, "n_threads": 1}]

    def fit(self, X: Any, y: Any = None, category: Sequence[str] | NDArray[Any] | None = None) -> Self:
        """Train on encoded rows ``X`` with attack labels ``y`` and, optionally, attack categories."""
        values = self._start_fit(X)
        self._fit(values, self._check_labels(y, len(values)), category)
        return self._finish_fit(values)

    def _training_threshold(self, scores: NDArray[np.float64]) -> float:
        return float(self.threshold)

    def _fit(self, values: NDArray[np.float64], y: Any, category: Any = None) -> None:
        y_bool = np.asarray(y, dtype=bool)
        if y_bool.all() or not y_bool.any():
            msg = "y must contain both normal (False) and attack (True) rows to train a classifier"
            raise InvalidInputError(msg)
        cats = np.where(y_bool, "attack", "normal").astype(object) if category is None else np.asarray(category)
        if cats.shape != y_bool.shape:
            msg = f"category has shape {cats.shape}, expected {y_bool.shape}"
            raise InvalidInputError(msg)
        names = sorted(set(cats.tolist()), key=lambda c: (c != "normal", c))
        self.categories_ = [str(c) for c in names]
        codes = pd.Index(self.categories_).get_indexer(cats.astype(str))
        rng = self._rng()
        held = stratified_holdout(codes, self.validation_fraction, rng)
        counts = np.bincount(codes[~held], minlength=len(self.categories_)).astype(np.float64)
        weights = np.where(counts > 0, (counts.sum() / (len(counts) * np.maximum(counts, 1))), 0.0)
        weights = weights**self.class_weight_power
        self.class_weights_ = weights / weights[counts > 0].mean()
        n_pos, n_neg = int(y_bool[~held].sum()), int((~y_bool[~held]).sum())
        pos_weight = (n_neg / max(n_pos, 1)) ** self.class_weight_power
        seed = None if self.random_state is None else int(self.random_state)
        inputs = torch.from_numpy(values.astype(np.float32))
        with seeded(seed) as generator, threads(self.n_threads):
            self._train(inputs, torch.from_numpy(y_bool.astype(np.float32)), torch.from_numpy(codes), held, rng,
                        pos_weight, generator)  # fmt: skip

    def _losses(self, pos_weight: float) -> tuple[nn.Module, nn.Module]:
        binary = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32))
        category = nn.CrossEntropyLoss(weight=torch.from_numpy(self.class_weights_.astype(np.float32)))
        return binary, category

    def _train(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        codes: torch.Tensor,
        held: NDArray[np.bool_],
        rng: np.random.Generator,
        pos_weight: float,
        generator: torch.Generator,
    ) -> None:
        self.network_ = self._network()
        optimizer = torch.optim.AdamW(self.network_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        binary_loss, category_loss = self._losses(pos_weight)
        train_rows = np.flatnonzero(~held)
        val = torch.from_numpy(np.flatnonzero(held))
        totals: dict[int, float] = {}  # each epoch's summed training loss

        def loss_of(rows: torch.Tensor) -> torch.Tensor:
            binary, category = self.network_(inputs[rows])
            return binary_loss(binary, targets[rows]) + category_loss(category, codes[rows])

        def step(rows: NDArray[np.intp], epoch: int) -> torch.Tensor:
            loss = descend(optimizer, loss_of(torch.from_numpy(rows)), "FlowClassifier")
            totals[epoch] = totals.get(epoch, 0.0) + float(loss.detach()) * len(rows)
            return loss

        def validate() -> float:
            self.network_.eval()
            with torch.no_grad():
                return float(loss_of(val))

        history = train(
            self.network_,
            step,
            validate,
            n_samples=len(train_rows),
            batch_size=self.batch_size,
            epochs=self.epochs,
            patience=self.patience,
            generator=generator,
            name="FlowClassifier",
            order=lambda: rng.permutation(train_rows),
        )
        self.history_ = [
            {"epoch": i + 1, "train_loss": total / len(train_rows), "val_loss": loss}
            for i, (total, loss) in enumerate(zip(totals.values(), history, strict=True))
        ]
        self.n_epochs_ = len(self.history_)

    def _network(self) -> FlowMLP:
        return FlowMLP(self.n_features_in_, len(self.categories_), hidden=self.hidden, dropout=self.dropout)

    def _outputs(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        inputs = torch.from_numpy(values.astype(np.float32))
        with threads(self.n_threads), torch.no_grad():
            outs = [self.network_(inputs[i : i + 8192]) for i in range(0, len(inputs), 8192)]
        binary, category = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
        return torch.sigmoid(binary).double().numpy(), torch.softmax(category, dim=1).double().numpy()

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._outputs(values)[0]

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """P(attack) of each row, from the binary head (the same as :meth:`score_samples`)."""
        return self.score_samples(X)

    def category_proba(self, X: Any) -> NDArray[np.float64]:
        """Probability of each class of ``categories_``, shape (n, k)."""
        return self._outputs(self._prepare(X))[1]

    def predict_category(self, X: Any) -> NDArray[np.object_]:
        """The most probable category of each row."""
        proba = self.category_proba(X)
        return np.asarray(self.categories_, dtype=object)[proba.argmax(axis=1)]

    # ------------------------------------------------------------------ persistence: weights as flat arrays
    def _learned_state(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k != "network_"}
        return {**state, **weight_arrays(self.network_, _PREFIX)}

    def _restore_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if not key.startswith(_PREFIX):
                setattr(self, key, value)
        self.categories_ = [str(c) for c in self.categories_]
        self.network_ = self._network()
        load_weight_arrays(self.network_, state, _PREFIX, type(self).__name__)
        self.network_.eval()

    @classmethod
    def load(cls, path: str | Path) -> FlowClassifier:
        """Load a classifier saved by :meth:`save`, or in the layout of Vigil before it was a detector."""
        try:
            document, arrays = read_state(Path(path), kind="flow_classifier")
        except ModelFormatError:
            loaded = super().load(path)
            assert isinstance(loaded, FlowClassifier)
            return loaded
        clf = cls(**cls.params_from_json(document["params"]))
        names = document.get("feature_names_in")
        clf._restore_state(
            {
                **{k: v for k, v in arrays.items() if k.startswith(_PREFIX)},
                **({} if names is None else {"feature_names_in_": [str(n) for n in names]}),
                "categories_": document["categories"],
                "n_features_in_": int(document["n_features_in"]),
                "history_": document["history"],
                "n_epochs_": len(document["history"]),
                "class_weights_": arrays["class_weights"],
                "threshold_": float(clf.threshold),
            }
        )
        return clf
