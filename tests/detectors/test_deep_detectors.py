"""Behaviour of the PyTorch detectors beyond the contract suite: sequences, drift, errors, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline
from vigil.registry import make_detector
from vigil.streaming.scorer import StreamScorer

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

SEQUENCE_DETECTORS = {
    "lstm-ae": {"window": 12, "hidden_size": 16, "latent": 4, "epochs": 40, "learning_rate": 1e-2},
    "lstm-forecaster": {"window": 8, "hidden_size": 16, "num_layers": 1, "epochs": 30, "learning_rate": 1e-2},
    "tcn-forecaster": {"window": 8, "filters": 16, "epochs": 30, "learning_rate": 1e-2},
    "tcn-sequence": {"window": 8, "filters": 16, "epochs": 150},
    "conv-ae": {"window": 16, "filters": (16, 8), "kernel_size": 5, "epochs": 40, "learning_rate": 1e-2},
    "usad": {"window": 8, "latent": 4, "epochs": 20, "batch_size": 32},
}


def _rotation(n: int, *, reverse: slice | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two sensors going round a circle; in ``reverse`` the rotation runs backwards.

    Every reversed row lies on the same circle as the normal ones, so no detector that looks at one row at
    a time can tell it apart: only the order of the rows gives it away (a collective anomaly).
    """
    step = np.full(n, 2 * np.pi / 20)
    label = np.zeros(n, dtype=bool)
    if reverse is not None:
        step[reverse] *= -1
        label[reverse] = True
    phase = np.cumsum(step)
    noise = 0.02 * np.random.default_rng(seed).normal(size=(n, 2))
    return np.column_stack([np.cos(phase), np.sin(phase)]) + noise, label


@pytest.fixture(scope="module")
def rotation():
    train, _ = _rotation(500, seed=1)
    test, label = _rotation(200, reverse=slice(100, 160), seed=2)
    return train, test, label


@pytest.mark.parametrize("name", ["lstm-ae", "lstm-forecaster", "tcn-forecaster", "tcn-sequence"])
def test_sequence_detector_finds_a_collective_anomaly_that_a_point_detector_misses(rotation, name):
    train, test, label = rotation
    point = make_detector("mahalanobis", random_state=0).fit(train).score_samples(test)
    detector = make_detector(name, random_state=0, **SEQUENCE_DETECTORS[name]).fit(train)
    deep = detector.score_samples(test)
    # Judge the rows whose whole input window lies inside one regime (no transition inside it).
    inside = np.ones(len(test), dtype=bool)
    span = max(16, detector.context_rows)
    inside[100 : 100 + span] = inside[160 : 160 + span] = False
    assert roc_auc_score(label[inside], point[inside]) < 0.7
    assert roc_auc_score(label[inside], deep[inside]) > 0.95


@pytest.mark.parametrize("name", sorted(SEQUENCE_DETECTORS))
def test_fitting_leaves_the_global_torch_rng_and_cudnn_flags_alone(rotation, name):
    train, _, _ = rotation
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    params = {**SEQUENCE_DETECTORS[name], "epochs": 2}
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    make_detector(name, random_state=7, **params).fit(train[:200])
    assert torch.equal(torch.rand(3), expected)
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == flags


@pytest.mark.parametrize("name", ["lstm-forecaster", "tcn-forecaster", "tcn-sequence", "usad"])
def test_different_seeds_give_different_models_and_equal_seeds_equal_ones(rotation, name):
    train, test, _ = rotation
    params = {**SEQUENCE_DETECTORS[name], "epochs": 3}
    a = make_detector(name, random_state=1, **params).fit(train).score_samples(test)
    b = make_detector(name, random_state=1, **params).fit(train).score_samples(test)
    c = make_detector(name, random_state=2, **params).fit(train).score_samples(test)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("error", ["mahalanobis", "standardised"])
def test_forecaster_blames_the_sensor_whose_prediction_failed(error):
    rng = np.random.default_rng(0)
    t = np.arange(700) / 5
    X = np.column_stack([np.sin(t), np.cos(t), np.sin(t + 1)]) + 0.02 * rng.normal(size=(700, 3))
    det = make_detector(
        "tcn-forecaster", window=8, filters=16, epochs=30, learning_rate=1e-2, error=error, random_state=0
    ).fit(X[:500])
    test = X[500:].copy()
    test[100, 2] += 1.0
    scores = det.score_samples(test)
    assert scores.argmax() == 100
    shares = det.feature_contributions(test)
    assert shares[100].argmax() == 2
    assert shares[100, 2] > 0.5


def test_sequence_tcn_predicts_each_row_from_its_receptive_field_alone():
    X, _ = _rotation(400)
    det = make_detector("tcn-sequence", window=8, filters=8, epochs=20, relative_drift=0.5, random_state=0)
    det.fit(X[:250])
    series = torch.from_numpy(det._inputs(X))
    residuals = det._all_residuals(det.module_, series).numpy()
    # Causal: changing row 300 leaves every earlier row's residual as it was, and moves row 300's.
    changed = X.copy()
    changed[300] += 5.0
    after = det._all_residuals(det.module_, torch.from_numpy(det._inputs(changed))).numpy()
    np.testing.assert_array_equal(after[:299], residuals[:299])
    assert not np.allclose(after[299], residuals[299])
    # A row's residual needs only its receptive field and one row more (first differences), so a series
    # that starts context_rows before it gives the same value, also across scoring chunks.
    start = 350 - det.context_rows
    alone = det._all_residuals(det.module_, torch.from_numpy(det._inputs(X[start:351]))).numpy()
    np.testing.assert_allclose(alone[-1], residuals[349], rtol=1e-5, atol=1e-6)


def test_sequence_tcn_stops_on_the_latest_training_rows_and_keeps_the_best_step():
    X, _ = _rotation(400)
    det = make_detector("tcn-sequence", window=8, filters=8, epochs=200, patience=3, random_state=0).fit(X)
    assert det.epochs_trained_ == len(det.validation_loss_) <= 200
    if det.epochs_trained_ < 200:
        assert det.epochs_trained_ == int(np.argmin(det.validation_loss_)) + 1 + 3
    residuals = det._all_residuals(det.module_, torch.from_numpy(det._inputs(X))).numpy()
    n_targets = len(X) - det.context_rows
    n_val = int(n_targets * det.validation_fraction)
    val = residuals[len(residuals) - n_val :]
    assert float((val.astype(np.float64) ** 2).mean()) == pytest.approx(det.validation_loss_.min(), rel=1e-4)


def test_sequence_tcn_learns_a_long_series_in_segments_of_step_rows(rotation):
    train, test, label = rotation
    params = {"window": 8, "filters": 16, "epochs": 60, "step_rows": 100, "random_state": 0}
    det = make_detector("tcn-sequence", **params).fit(train)
    # 500 rows: 16 of history, 387 training targets in 4 segments of at most 100, 96 validation targets.
    assert det.epochs_trained_ == len(det.validation_loss_) <= 60
    scores = det.score_samples(test)
    inside = np.ones(len(test), dtype=bool)
    inside[100 : 100 + det.context_rows] = inside[160 : 160 + det.context_rows] = False
    assert roc_auc_score(label[inside], scores[inside]) > 0.95
    np.testing.assert_array_equal(make_detector("tcn-sequence", **params).fit(train).score_samples(test), scores)


@settings(max_examples=40, deadline=None)
@given(
    window=st.integers(1, 70),
    kernel_size=st.integers(2, 5),
    base=st.integers(2, 5),
    persistence=st.booleans(),
    batch=st.integers(1, 5),
)
def test_tcn_last_step_forecast_equals_the_full_pass(window, kernel_size, base, persistence, batch):
    # forward() computes only the steps the last output depends on; predict_sequence() computes them all.
    from vigil.detectors.networks import TemporalConvForecaster

    base = min(base, kernel_size)
    torch.manual_seed(window)
    net = TemporalConvForecaster(2, window, 4, kernel_size, dilation_base=base, persistence=persistence)
    x = torch.randn(batch, window, 2)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.predict_sequence(x)[:, -1], rtol=1e-5, atol=1e-5)


def test_tcn_with_a_persistence_term_starts_from_the_last_row():
    from vigil.detectors.networks import TemporalConvForecaster

    torch.manual_seed(0)
    x = torch.randn(1, 50, 3)
    plain = TemporalConvForecaster(3, window=8, filters=8, persistence=False)
    persistent = TemporalConvForecaster(3, window=8, filters=8, persistence=True)
    with torch.no_grad():
        # Before any training the forecast of row t + 1 is row t plus a small correction.
        correction = persistent.predict_sequence(x) - x
        assert float(correction.abs().mean()) < 0.2 * float(x.abs().mean())
        assert float((plain.predict_sequence(x) - x).abs().mean()) > 0.5 * float(x.abs().mean())
        torch.testing.assert_close(persistent(x[:, :20]), persistent.predict_sequence(x[:, :20])[:, -1])


def test_mahalanobis_error_is_about_one_per_sensor_on_normal_rows():
    rng = np.random.default_rng(3)
    t = np.arange(900) / 4
    X = np.column_stack([np.sin(t), np.sin(t) + 0.1 * rng.normal(size=900), np.cos(t)])
    det = make_detector("lstm-forecaster", window=8, hidden_size=16, num_layers=1, epochs=20, learning_rate=1e-2)
    det.set_params(random_state=0).fit(X[:600])
    assert det.residual_precision_.shape == (3, 3)
    assert 0.5 < float(np.median(det.score_samples(X[600:]))) < 2.0


def test_early_stopping_watches_the_latest_training_windows_and_keeps_the_best_epoch():
    X, _ = _rotation(300)
    det = make_detector("lstm-ae", window=6, hidden_size=8, latent=2, epochs=40, patience=2, random_state=0).fit(X)
    assert det.epochs_trained_ == len(det.validation_loss_) <= 40
    if det.epochs_trained_ < 40:  # stopped early: the last `patience` epochs were no better than the best
        best = int(np.argmin(det.validation_loss_))
        assert det.epochs_trained_ == best + 1 + 2
    # The kept weights are those of the best epoch: their validation error is the recorded minimum.
    windows = det._windows(X)
    n_val = det._split(len(windows))
    val = torch.from_numpy(windows[len(windows) - n_val :])
    assert det._validation_loss(det.module_, val) == pytest.approx(det.validation_loss_.min(), rel=1e-5)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("autoencoder", {"window": 4, "latent": 2, "epochs": 60, "learning_rate": 1e-2}),
        ("tcn-sequence", {"window": 4, "filters": 8, "epochs": 150}),
    ],
)
def test_drift_guard_judges_a_drifting_sensor_by_its_changes_not_its_level(name, params):
    rng = np.random.default_rng(0)
    n = 600
    t = np.arange(n) / 5
    drift = np.linspace(0.0, 6.0, n)  # a slowly heating temperature: its level leaves the training range
    X = np.column_stack([np.sin(t), np.cos(t), drift]) + 0.05 * rng.normal(size=(n, 3))
    train, test = X[:300], X[300:]
    guarded = make_detector(name, relative_drift=1.0, random_state=0, **params).fit(train)
    assert guarded.relative_features_.tolist() == [False, False, True]
    assert (guarded.score_samples(test) > guarded.threshold_).mean() < 0.05
    if name == "autoencoder":  # a reconstruction model without the guard alarms once the level has left
        plain = make_detector(name, random_state=0, **params).fit(train)
        assert not plain.relative_features_.any()
        assert (plain.score_samples(test) > plain.threshold_).mean() > 0.5
    # A jump of the drifting sensor is still a change: the windows that hold it score high.
    broken = test.copy()
    broken[150:, 2] += 1.0
    assert 150 <= guarded.score_samples(broken).argmax() < 154


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("lstm-forecaster", {"error": "absolute"}),
        ("lstm-ae", {"hidden_size": 0}),
        ("tcn-forecaster", {"kernel_size": 1}),
        ("tcn-sequence", {"filters": 0}),
        ("usad", {"alpha": 1.5}),
        ("usad", {"hidden": (8, 0)}),
        ("lstm-ae", {"relative_drift": 0.0}),
    ],
)
def test_invalid_hyperparameters_are_rejected_at_fit(name, bad):
    X, _ = _rotation(100)
    with pytest.raises(InvalidInputError, match=next(iter(bad))):
        make_detector(name, **bad).fit(X)


def test_hyperparameters_are_exposed():
    for name, expected in {
        "lstm-ae": {"window", "hidden_size", "latent", "num_layers", "dropout", "learning_rate", "epochs"},
        "lstm-forecaster": {"window", "hidden_size", "num_layers", "dropout", "learning_rate", "epochs", "error"},
        "tcn-forecaster": {"window", "filters", "kernel_size", "dropout", "learning_rate", "epochs", "error"},
        "tcn-sequence": {
            *("window", "filters", "kernel_size", "dilation_base", "persistence", "dropout", "learning_rate"),
            *("epochs", "step_rows", "error"),
        },
        "usad": {"window", "latent", "hidden", "alpha", "learning_rate", "epochs"},
    }.items():
        assert expected <= set(make_detector(name).get_params()), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_device_is_a_clear_error():
    X, _ = _rotation(100)
    with pytest.raises(InvalidInputError, match="no CUDA device"):
        make_detector("tcn-forecaster", window=4, epochs=1, device="cuda").fit(X)


@pytest.mark.parametrize("name", sorted(SEQUENCE_DETECTORS))
def test_pipeline_with_smoothing_round_trips_and_streams_like_batch(tmp_path, rotation, name):
    train, test, _ = rotation
    params = {**SEQUENCE_DETECTORS[name], "epochs": 3}
    pipe = Pipeline(make_detector(name, random_state=0, **params), smoothing=5).fit(train)
    assert pipe.context_rows == make_detector(name, **params).context_rows + 4
    loaded = Pipeline.load(pipe.save(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.score_samples(test), pipe.score_samples(test))
    assert loaded.threshold_ == pipe.threshold_ and loaded.smoothing == 5 and loaded.version_ == pipe.version_
    scorer = StreamScorer(loaded)
    streamed = np.concatenate([scorer.score(test[i : i + 40]).scores for i in range(0, len(test), 40)])
    np.testing.assert_allclose(streamed, pipe.score_samples(test), rtol=1e-5, atol=1e-7)
