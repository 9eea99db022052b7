"""KitNET: an ensemble of small autoencoders over correlated feature clusters, judged by an output autoencoder.

The detector of Kitsune (Mirsky et al., "Kitsune: An Ensemble of Autoencoders for Online Network Intrusion
Detection", NDSS 2018), in vectorised numpy:

1. **Feature mapping.** Features are clustered by correlation distance (1 − Pearson r, single linkage) into
   groups of at most ``max_ae_size``.
2. **Ensemble.** One denoising-autoencoder-style network with tied weights and sigmoid units per group
   (hidden width ⌈``hidden_ratio`` · group size⌉), on inputs min–max normalised with training ranges. Each
   network's reconstruction RMSE is one input of
3. **the output autoencoder**, whose own RMSE is the anomaly score.

All networks of the ensemble are stored padded in one ``(K, D, H)`` weight tensor, so a forward or training
step for a batch of rows (or for one record) is a handful of batched ``matmul`` calls across every group at once,
never a Python loop over rows or groups. The update rule is the original's (the gradient of the
cross-entropy loss of a sigmoid autoencoder, plain SGD).

``fit`` trains on a table in mini-batches for ``epochs`` passes; ``learn_one`` follows the original online
schedule: the first ``fm_grace`` records only feed the feature-correlation statistics, then the groups are
formed and every further record trains the ensemble and the output network by one SGD step.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.hierarchy import linkage, to_tree

from vigil.base import Interval, OnlineDetector
from vigil.errors import NotWarmError
from vigil.registry import register

__all__ = ["KitNETDetector", "correlation_clusters"]


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def correlation_clusters(corr: NDArray[np.float64], max_size: int) -> list[list[int]]:
    """Group features by the single-linkage dendrogram of ``1 − corr``, cutting until groups have ≤ ``max_size``.

    Examples
    --------
    >>> corr = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.1], [0.0, 0.1, 1.0]])
    >>> correlation_clusters(corr, 2)
    [[2], [0, 1]]
    """
    d = corr.shape[0]
    if d <= max_size:
        return [list(range(d))]
    distance = np.clip(1.0 - corr, 0.0, None)
    condensed = distance[np.triu_indices(d, 1)]
    root = to_tree(linkage(condensed, method="single"))
    groups: list[list[int]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.get_count() <= max_size:
            groups.append(sorted(node.pre_order()))
        else:
            stack += [node.get_right(), node.get_left()]
    return groups


class _Ensemble:
    """Padded tied-weight sigmoid autoencoders, one per group, as arrays (a view over the detector's state).

    Inputs are laid out group-major, ``(K, B, D)``, so each step is a batched ``matmul`` over the K groups.
    """

    def __init__(self, W, hbias, vbias, vmask, hmask) -> None:
        self.W, self.hbias, self.vbias, self.vmask, self.hmask = W, hbias, vbias, vmask, hmask

    def forward(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        h = _sigmoid(np.matmul(x, self.W) + self.hbias[:, None, :]) * self.hmask[:, None, :]
        z = _sigmoid(np.matmul(h, self.W.transpose(0, 2, 1)) + self.vbias[:, None, :]) * self.vmask[:, None, :]
        return h, z

    def rmse(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Reconstruction RMSE of each row in each group, shape (B, K)."""
        _, z = self.forward(x)
        return np.sqrt(((x - z) ** 2).sum(axis=2) / self.vmask.sum(axis=1)[:, None]).T

    def step(self, x: NDArray[np.float64], lr: float) -> None:
        h, z = self.forward(x)
        lv = (x - z) * self.vmask[:, None, :]
        lh = np.matmul(lv, self.W) * h * (1.0 - h)
        grad = np.matmul(x.transpose(0, 2, 1), lh) + np.matmul(lv.transpose(0, 2, 1), h)
        scale = lr / x.shape[1]
        self.W += scale * grad
        self.hbias += scale * lh.sum(axis=1)
        self.vbias += scale * lv.sum(axis=1)


@register("kitnet", "KitNET (Kitsune): ensemble of small autoencoders over correlated feature groups; online")
class KitNETDetector(OnlineDetector):
    """Kitsune's KitNET anomaly detector, vectorised (see the module docstring).

    Parameters
    ----------
    max_ae_size : int
        Largest feature group (inputs of one ensemble autoencoder).
    hidden_ratio : float
        Hidden width of each autoencoder as a share of its inputs.
    learning_rate : float
        SGD step size.
    epochs : int
        Passes over the training rows in ``fit``.
    batch_size : int
        Rows per SGD step in ``fit`` (``learn_one`` steps on one record).
    fm_grace : int
        Records ``learn_one`` uses to learn the feature groups before any training.
    ad_grace : int
        Records ``learn_one`` trains on after that before the detector is warm.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`.

    Attributes
    ----------
    groups_ : numpy.ndarray of int, shape (K, D)
        Feature indices of each group, padded with −1.

    References
    ----------
    Y. Mirsky, T. Doitshman, Y. Elovici, A. Shabtai, "Kitsune: An Ensemble of Autoencoders for Online Network
    Intrusion Detection", NDSS 2018.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(400, 2))
    >>> X = np.hstack([t, t @ [[1.0, 0.5], [0.2, 1.0]]]) + 0.05 * rng.normal(size=(400, 4))
    >>> det = KitNETDetector(max_ae_size=2, epochs=20, random_state=0).fit(X)
    >>> det.groups_.shape[0]
    2
    >>> bool(det.score_samples([[0.0, 0.0, 0.0, 0.0]])[0] < det.score_samples([[4.0, -4.0, 4.0, 4.0]])[0])
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "max_ae_size": [Interval(int, 1, None)],
        "hidden_ratio": [Interval(float, 0.0, 1.0, closed="right")],
        "learning_rate": [Interval(float, 0.0, None, closed="neither")],
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "fm_grace": [Interval(int, 2, None)],
        "ad_grace": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        *,
        max_ae_size: int = 10,
        hidden_ratio: float = 0.75,
        learning_rate: float = 0.1,
        epochs: int = 1,
        batch_size: int = 16,
        fm_grace: int = 5000,
        ad_grace: int = 50000,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.max_ae_size = max_ae_size
        self.hidden_ratio = hidden_ratio
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.fm_grace = fm_grace
        self.ad_grace = ad_grace

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"max_ae_size": 2, "epochs": 5, "fm_grace": 20, "ad_grace": 25}]

    @property
    def warm_up(self) -> int:
        return self.fm_grace + self.ad_grace

    # ------------------------------------------------------------------ building blocks
    def _build(self, groups: list[list[int]], rng: np.random.Generator) -> None:
        k = len(groups)
        d = max(len(g) for g in groups)
        hidden = [max(1, math.ceil(self.hidden_ratio * len(g))) for g in groups]
        h = max(hidden)
        self.groups_ = np.full((k, d), -1, dtype=np.int64)
        self.W_ = np.zeros((k, d, h))
        for i, g in enumerate(groups):
            self.groups_[i, : len(g)] = g
            a = 1.0 / len(g)
            self.W_[i, : len(g), : hidden[i]] = rng.uniform(-a, a, (len(g), hidden[i]))
        self.hmask_ = (np.arange(h)[None, :] < np.asarray(hidden)[:, None]).astype(np.float64)
        self.hbias_ = np.zeros((k, h))
        self.vbias_ = np.zeros((k, d))
        h_out = max(1, math.ceil(self.hidden_ratio * k))
        self.out_W_ = rng.uniform(-1.0 / k, 1.0 / k, (1, k, h_out))
        self.out_hbias_ = np.zeros((1, h_out))
        self.out_vbias_ = np.zeros((1, k))

    def _vmask(self) -> NDArray[np.float64]:
        return (self.groups_ >= 0).astype(np.float64)

    def _ensemble(self) -> _Ensemble:
        return _Ensemble(self.W_, self.hbias_, self.vbias_, self._vmask(), self.hmask_)

    def _output(self) -> _Ensemble:
        k = self.groups_.shape[0]
        return _Ensemble(self.out_W_, self.out_hbias_, self.out_vbias_, np.ones((1, k)), np.ones_like(self.out_hbias_))

    def _grouped(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        span = self.norm_max_ - self.norm_min_
        normal = (values - self.norm_min_) / np.where(span > 0, span, 1.0)
        padded = np.concatenate([normal, np.zeros((len(values), 1))], axis=1)
        return np.ascontiguousarray(padded.T[self.groups_].transpose(0, 2, 1))  # (K, B, D); −1 picks the zeros

    def _out_input(self, rmse: NDArray[np.float64]) -> NDArray[np.float64]:
        span = self.out_max_ - self.out_min_
        return ((rmse - self.out_min_) / np.where(span > 0, span, 1.0))[None, :, :]  # (1, B, K)

    # ------------------------------------------------------------------ batch API
    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        rng = self._rng()
        with np.errstate(invalid="ignore", divide="ignore"):  # a constant feature has no correlation: 0
            corr = np.corrcoef(values, rowvar=False) if values.shape[1] > 1 else np.ones((1, 1))
        corr = np.where(np.isfinite(corr), corr, 0.0)
        self._build(correlation_clusters(np.atleast_2d(corr), self.max_ae_size), rng)
        self.norm_min_ = values.min(axis=0)
        self.norm_max_ = values.max(axis=0)
        grouped = self._grouped(values)
        ensemble = self._ensemble()
        for _ in range(self.epochs):
            order = rng.permutation(len(values))
            for start in range(0, len(order), self.batch_size):
                ensemble.step(grouped[:, order[start : start + self.batch_size]], self.learning_rate)
        rmse = ensemble.rmse(grouped)
        self.out_min_ = rmse.min(axis=0)
        self.out_max_ = rmse.max(axis=0)
        out_input = self._out_input(rmse)
        output = self._output()
        for _ in range(self.epochs):
            order = rng.permutation(len(values))
            for start in range(0, len(order), self.batch_size):
                output.step(out_input[:, order[start : start + self.batch_size]], self.learning_rate)
        self.n_seen_ = len(values) + self.warm_up  # a table-fitted model is warm

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        if not hasattr(self, "groups_"):
            msg = f"KitNETDetector has seen {self.n_seen_} records; its feature groups form after {self.fm_grace}"
            raise NotWarmError(msg)
        out = np.empty(len(values))
        for start in range(0, len(values), 4096):
            chunk = values[start : start + 4096]
            rmse = self._ensemble().rmse(self._grouped(chunk))
            out[start : start + 4096] = self._output().rmse(self._out_input(rmse))[:, 0]
        return out

    def _contributions(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """A feature's squared reconstruction error in its group, times its group's share of the output error."""
        grouped = self._grouped(values)
        _, z = self._ensemble().forward(grouped)
        feature_error = ((grouped - z) ** 2).transpose(1, 0, 2)  # (B, K, D)
        rmse = np.sqrt(feature_error.sum(axis=2) / self._vmask().sum(axis=1))
        out_input = self._out_input(rmse)
        _, out_z = self._output().forward(out_input)
        group_error = (out_input - out_z)[0] ** 2 + 1e-12  # (B, K)
        weights = feature_error / (feature_error.sum(axis=2, keepdims=True) + 1e-12) * group_error[:, :, None]
        result = np.zeros((len(values), values.shape[1] + 1))
        # numpy's stubs take only integer arrays as indices; ufunc.at takes any index tuple, slices too.
        np.add.at(result, (slice(None), self.groups_), weights)  # type: ignore[arg-type]
        return result[:, :-1]

    # ------------------------------------------------------------------ online API
    def _init_online(self, n_features: int) -> None:
        self.n_seen_ = 0
        self.corr_mean_ = np.zeros(n_features)
        self.corr_m2_ = np.zeros((n_features, n_features))

    def _learn_one(self, values: NDArray[np.float64]) -> None:
        self.n_seen_ += 1
        if self.n_seen_ <= self.fm_grace:
            delta = values - self.corr_mean_
            self.corr_mean_ = self.corr_mean_ + delta / self.n_seen_
            self.corr_m2_ = self.corr_m2_ + np.outer(delta, values - self.corr_mean_)
            if self.n_seen_ == self.fm_grace:
                std = np.sqrt(np.diag(self.corr_m2_))
                denom = np.outer(std, std)
                corr = np.where(denom > 0, self.corr_m2_ / np.where(denom > 0, denom, 1.0), 0.0)
                self._build(correlation_clusters(corr, self.max_ae_size), self._rng())
                self.norm_min_ = values.copy()
                self.norm_max_ = values.copy()
                self.out_min_ = np.full(self.groups_.shape[0], np.inf)
                self.out_max_ = np.full(self.groups_.shape[0], -np.inf)
            return
        # as in KitNET, normalisation ranges grow with every training record
        self.norm_min_ = np.minimum(self.norm_min_, values)
        self.norm_max_ = np.maximum(self.norm_max_, values)
        grouped = self._grouped(values[None, :])
        ensemble = self._ensemble()
        ensemble.step(grouped, self.learning_rate)
        rmse = ensemble.rmse(grouped)[0]
        self.out_min_ = np.minimum(self.out_min_, rmse)
        self.out_max_ = np.maximum(self.out_max_, rmse)
        self._output().step(self._out_input(rmse[None, :]), self.learning_rate)

    def _online_threshold(self) -> float:
        # no training scores exist yet; an RMSE of sigmoid outputs on [0, 1] inputs is below 1 in range
        return 1.0

    def _learned_state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k.endswith("_")}
