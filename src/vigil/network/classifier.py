"""Supervised flow classifier: a PyTorch MLP with a binary and a category head, trained with class weights.

For flow data sets that come with labels (NSL-KDD), a supervised model learns the known attacks far better
than an anomaly detector. Attack categories are heavily imbalanced (NSL-KDD's training set has 52 U2R rows
among 125,973), so each class's loss is weighted by ``(n / (k·n_c))^power``: ``power=1`` is the usual
"balanced" weighting, ``0.5`` (the default) tempers it so the rarest classes do not dominate.

A validation share of the training rows (stratified by class) is held out for early stopping; nothing here
looks at test data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    msg = "the flow classifier needs PyTorch: pip install 'vigil[deep]'"
    raise ImportError(msg) from exc

from vigil.detectors.training import descend, load_weight_arrays, seeded, threads, train, weight_arrays
from vigil.errors import InvalidInputError, NotFittedError
from vigil.network.torch_models import FlowMLP
from vigil.persistence import FORMAT_VERSION, read_state, write_state
from vigil.validation import check_array, check_features

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


class FlowClassifier:
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
    validation : float
        Stratified share of the training rows held out for early stopping.
    patience : int
        Epochs without a better validation loss before training stops.
    threshold : float
        P(attack) above which :meth:`predict` says attack.
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

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.1,
        epochs: int = 40,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weight_power: float = 0.5,
        validation: float = 0.1,
        patience: int = 5,
        threshold: float = 0.5,
        random_state: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.class_weight_power = class_weight_power
        self.validation = validation
        self.patience = patience
        self.threshold = threshold
        self.random_state = random_state
        self.n_threads = n_threads

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        names = (
            "hidden", "dropout", "epochs", "batch_size", "learning_rate", "weight_decay", "class_weight_power",
            "validation", "patience", "threshold", "random_state", "n_threads",
        )  # fmt: skip
        return {n: getattr(self, n) for n in names}

    def _check_params(self) -> None:
        checks = {
            "epochs": isinstance(self.epochs, int) and self.epochs >= 1,
            "batch_size": isinstance(self.batch_size, int) and self.batch_size >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "validation": 0.0 < self.validation < 0.5,
            "threshold": 0.0 < self.threshold < 1.0,
            "class_weight_power": 0.0 <= self.class_weight_power <= 1.0,
            "hidden": len(self.hidden) >= 1 and all(isinstance(h, int) and h >= 1 for h in self.hidden),
        }
        for name, ok in checks.items():
            if not ok:
                msg = f"FlowClassifier({name}={getattr(self, name)!r}) is invalid"
                raise InvalidInputError(msg)

    def _tensor(self, X: Any, where: str) -> torch.Tensor:
        values, names = check_array(X, where=where)
        if hasattr(self, "n_features_in_"):
            values = check_features(
                values,
                names,
                n_features=self.n_features_in_,
                feature_names=getattr(self, "feature_names_in_", None),
                where=where,
            )
        elif names is not None:
            self.feature_names_in_ = names
        return torch.from_numpy(values.astype(np.float32))

    def fit(self, X: Any, y: Any, category: Sequence[str] | NDArray[Any] | None = None) -> Self:
        """Train on encoded rows ``X`` with attack labels ``y`` and, optionally, attack categories."""
        self._check_params()
        for attribute in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, attribute)
        inputs = self._tensor(X, "X")
        y_bool = np.asarray(y, dtype=bool)
        if y_bool.shape != (len(inputs),):
            msg = f"y has shape {y_bool.shape}, expected ({len(inputs)},)"
            raise InvalidInputError(msg)
        if y_bool.all() or not y_bool.any():
            msg = "y must contain both normal (False) and attack (True) rows to train a classifier"
            raise InvalidInputError(msg)
        cats = np.where(y_bool, "attack", "normal").astype(object) if category is None else np.asarray(category)
        if cats.shape != y_bool.shape:
            msg = f"category has shape {cats.shape}, expected {y_bool.shape}"
            raise InvalidInputError(msg)
        names = sorted(set(cats.tolist()), key=lambda c: (c != "normal", c))
        self.categories_ = [str(c) for c in names]
        self.n_features_in_ = inputs.shape[1]
        codes = pd.Index(self.categories_).get_indexer(cats.astype(str))
        rng = np.random.default_rng(self.random_state)
        held = stratified_holdout(codes, self.validation, rng)
        counts = np.bincount(codes[~held], minlength=len(self.categories_)).astype(np.float64)
        weights = np.where(counts > 0, (counts.sum() / (len(counts) * np.maximum(counts, 1))), 0.0)
        weights = weights**self.class_weight_power
        self.class_weights_ = weights / weights[counts > 0].mean()
        n_pos, n_neg = int(y_bool[~held].sum()), int((~y_bool[~held]).sum())
        pos_weight = (n_neg / max(n_pos, 1)) ** self.class_weight_power
        seed = None if self.random_state is None else int(self.random_state)
        with seeded(seed) as generator, threads(self.n_threads):
            self._train(inputs, torch.from_numpy(y_bool.astype(np.float32)), torch.from_numpy(codes), held, rng,
                        pos_weight, generator)  # fmt: skip
        return self

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
        self.network_ = FlowMLP(self.n_features_in_, len(self.categories_), hidden=self.hidden, dropout=self.dropout)
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

    def _outputs(self, X: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if not hasattr(self, "network_"):
            msg = "FlowClassifier is not fitted yet: call fit() first"
            raise NotFittedError(msg)
        inputs = self._tensor(X, "X")
        with threads(self.n_threads), torch.no_grad():
            outs = [self.network_(inputs[i : i + 8192]) for i in range(0, len(inputs), 8192)]
        binary = torch.cat([o[0] for o in outs]) if outs else torch.zeros(0)
        category = torch.cat([o[1] for o in outs]) if outs else torch.zeros(0, len(self.categories_))
        return torch.sigmoid(binary).double().numpy(), torch.softmax(category, dim=1).double().numpy()

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """P(attack) of each row, from the binary head."""
        return self._outputs(X)[0]

    def predict(self, X: Any) -> NDArray[np.bool_]:
        """True for rows whose P(attack) exceeds ``threshold``."""
        return self.predict_proba(X) > self.threshold

    def category_proba(self, X: Any) -> NDArray[np.float64]:
        """Probability of each class of ``categories_``, shape (n, k)."""
        return self._outputs(X)[1]

    def predict_category(self, X: Any) -> NDArray[np.object_]:
        """The most probable category of each row."""
        proba = self.category_proba(X)
        return np.asarray(self.categories_, dtype=object)[proba.argmax(axis=1)]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write parameters, classes and weights (npz, no pickle) to directory ``path``."""
        if not hasattr(self, "network_"):
            msg = "FlowClassifier is not fitted yet: call fit() first"
            raise NotFittedError(msg)
        document = {
            "format": "vigil.flow_classifier",
            "format_version": FORMAT_VERSION,
            "params": {**self.get_params(), "hidden": list(self.hidden)},
            "categories": self.categories_,
            "n_features_in": self.n_features_in_,
            "feature_names_in": getattr(self, "feature_names_in_", None),
            "history": self.history_,
        }
        arrays = {**weight_arrays(self.network_, "net."), "class_weights": self.class_weights_}
        directory = Path(path)
        write_state(directory, json.loads(json.dumps(document)), arrays)
        return directory

    @classmethod
    def load(cls, path: str | Path) -> FlowClassifier:
        """Read a classifier written by :meth:`save`."""
        document, arrays = read_state(Path(path), kind="flow_classifier")
        params = dict(document["params"])
        params["hidden"] = tuple(params["hidden"])
        clf = cls(**params)
        clf.categories_ = [str(c) for c in document["categories"]]
        clf.n_features_in_ = int(document["n_features_in"])
        if document.get("feature_names_in") is not None:
            clf.feature_names_in_ = [str(n) for n in document["feature_names_in"]]
        clf.history_ = document["history"]
        clf.n_epochs_ = len(clf.history_)
        clf.class_weights_ = arrays["class_weights"]
        clf.network_ = FlowMLP(clf.n_features_in_, len(clf.categories_), hidden=clf.hidden, dropout=clf.dropout)
        load_weight_arrays(clf.network_, arrays, "net.", "FlowClassifier")
        clf.network_.eval()
        return clf
