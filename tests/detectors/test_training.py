"""The one trainer: each sample once per epoch, early stopping on the held-out slice, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vigil.detectors.autoencoders import AutoencoderDetector  # noqa: E402
from vigil.detectors.training import EarlyStopping, descend, seeded, train  # noqa: E402
from vigil.errors import NumericalError  # noqa: E402
from vigil.network.autoencoder import FlowAutoencoderDetector  # noqa: E402

pytestmark = pytest.mark.torch


def _line_fit(seed: int, *, epochs: int = 30, patience: int = 3, seen: list | None = None, noise: float = 0.3):
    x = torch.linspace(-1, 1, 50)[:, None]
    y = 2 * x + noise * torch.sin(37 * x)  # a floor the line cannot fit below: validation stops improving

    with seeded(seed) as generator:
        net = torch.nn.Linear(1, 1)
        adam = torch.optim.Adam(net.parameters(), lr=0.2)

        def step(rows, epoch):
            if seen is not None:
                seen.append((epoch, rows.tolist()))
            return descend(adam, ((net(x[rows]) - y[rows]) ** 2).mean(), "line")

        def validate():
            with torch.no_grad():
                return float(((net(x[40:]) - y[40:]) ** 2).mean())

        history = train(
            net, step, validate, n_samples=40, batch_size=16, epochs=epochs, patience=patience,
            generator=generator, name="line",
        )  # fmt: skip
    return net, history


def test_each_sample_is_seen_exactly_once_per_epoch_in_a_new_order():
    seen: list = []
    _, history = _line_fit(0, epochs=4, patience=10, seen=seen)
    assert len(history) == 4
    orders = []
    for epoch in range(4):
        batches = [rows for e, rows in seen if e == epoch]
        assert [len(b) for b in batches] == [16, 16, 8]  # consecutive batches of one permutation
        order = [i for b in batches for i in b]
        assert sorted(order) == list(range(40))
        orders.append(order)
    assert len({tuple(o) for o in orders}) == 4  # shuffled once per epoch, differently each epoch


def test_same_seed_gives_identical_weights_and_another_seed_others():
    a, _ = _line_fit(7)
    b, _ = _line_fit(7)
    c, _ = _line_fit(8)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)


def test_global_rng_is_left_alone():
    before = torch.random.get_rng_state()
    _line_fit(0)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch():
    net, history = _line_fit(0, epochs=200, patience=3)
    best = int(np.argmin(history))
    assert len(history) < 200
    assert len(history) == best + 1 + 3  # three epochs without improvement after the best
    x = torch.linspace(-1, 1, 50)[:, None]
    y = 2 * x + 0.3 * torch.sin(37 * x)
    with torch.no_grad():
        kept = float(((net(x[40:]) - y[40:]) ** 2).mean())
    assert kept == pytest.approx(history[best], rel=1e-6)


def test_stopping_rule_needs_a_relative_improvement_and_decides_per_member():
    rule = EarlyStopping(patience=2, n=2)
    assert rule.update([1.0, 1.0])[0].tolist() == [True, True]
    better, stop = rule.update([1.0 - 1e-9, 0.5])  # a rounding-sized gain is no improvement
    assert better.tolist() == [False, True] and stop.tolist() == [False, False]
    better, stop = rule.update([2.0, 0.6])
    assert stop.tolist() == [True, False]


def test_a_diverging_step_is_a_numerical_error():
    with seeded(0) as generator, pytest.raises(NumericalError, match="diverged"):
        train(
            torch.nn.Linear(1, 1), lambda rows, epoch: torch.tensor(float("nan")), lambda: 0.0, n_samples=4,
            batch_size=2, epochs=3, patience=1, generator=generator, name="broken",
        )  # fmt: skip


def _training_inputs(det_class, **params):
    """The detector, and a hook list that collects every batch its network sees in training mode."""
    seen: list = []

    def record(module, args, out):
        if module.training:
            seen.append(args[0].detach().clone())

    class Recording(det_class):
        def _build_module(self, n_features):
            module = super()._build_module(n_features)
            module.register_forward_hook(record)
            return module

        def _network(self):
            module = super()._network()
            module.register_forward_hook(record)
            return module

    return Recording(**params), seen


def _per_epoch(seen, n_train):
    rows = torch.cat([b.reshape(len(b), -1) for b in seen]).numpy()
    assert len(rows) % n_train == 0
    return np.split(rows, len(rows) // n_train)


def _sorted_rows(a):
    return a[np.lexsort(a.T[::-1])]


def test_torch_detector_trains_on_the_earlier_windows_each_once_per_epoch():
    X = np.random.default_rng(0).normal(size=(100, 3))
    det, seen = _training_inputs(AutoencoderDetector, latent=2, epochs=3, patience=10, batch_size=16, random_state=0)
    det.fit(X)
    train_rows = X[:80].astype(np.float32)  # validation_fraction=0.2: the latest 20 rows are held out
    for epoch in _per_epoch(seen, 80):
        np.testing.assert_array_equal(_sorted_rows(epoch), _sorted_rows(train_rows))


def test_flow_autoencoder_sees_each_training_row_once_per_epoch():
    X = np.random.default_rng(1).normal(size=(120, 4))
    params = {"hidden": (8,), "latent": 2, "epochs": 4, "patience": 10, "batch_size": 16, "random_state": 0}
    det, seen = _training_inputs(FlowAutoencoderDetector, **params)
    det.fit(X)
    n_val = round(0.1 * len(X))  # a seeded random share of the rows, as before
    held = np.random.default_rng(0).permutation(len(X))[:n_val]
    train_rows = np.delete(X, held, axis=0).astype(np.float32)
    epochs = _per_epoch(seen, len(train_rows))
    assert len(epochs) == det.n_epochs_ == 4
    for epoch in epochs:
        np.testing.assert_array_equal(_sorted_rows(epoch), _sorted_rows(train_rows))
