"""The pipeline's causal score smoothing: values, calibration, context, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vigil.calibration.thresholds import QuantileThreshold
from vigil.detectors.pca import PCADetector
from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline
from vigil.streaming.scorer import StreamScorer


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(500, 1))
    X = np.hstack([t, 2 * t, -t]) + 0.1 * rng.normal(size=(500, 3))
    return X[:400], X[400:]


def test_smoothed_score_is_the_causal_mean_of_the_last_k_raw_scores(data):
    train, test = data
    raw = Pipeline(PCADetector(n_components=1)).fit(train).score_samples(test)
    smooth = Pipeline(PCADetector(n_components=1), smoothing=4).fit(train).score_samples(test)
    expected = np.array([raw[max(0, i - 3) : i + 1].mean() for i in range(len(raw))])
    np.testing.assert_allclose(smooth, expected, rtol=1e-12)
    # Causal: changing a later row never changes an earlier score.
    changed = test.copy()
    changed[50] += 5.0
    again = Pipeline(PCADetector(n_components=1), smoothing=4).fit(train).score_samples(changed)
    np.testing.assert_array_equal(again[:50], smooth[:50])
    assert again[50] > smooth[50]


def test_threshold_is_calibrated_on_smoothed_held_out_scores(data):
    train, _ = data
    pipe = Pipeline(PCADetector(n_components=1), threshold=QuantileThreshold(quantile=1.0), smoothing=10).fit(train)
    scaled = pipe.scaler_.transform(train)
    raw = pipe.detector_.score_samples(scaled)
    smoothed = np.array([raw[max(0, i - 9) : i + 1].mean() for i in range(len(raw))])
    assert pipe.threshold_ == pytest.approx(smoothed[300:].max())
    assert pipe.threshold_ < raw[300:].max()


def test_smoothing_one_changes_nothing(data):
    train, test = data
    a = Pipeline(PCADetector(n_components=1)).fit(train)
    b = Pipeline(PCADetector(n_components=1), smoothing=1).fit(train)
    np.testing.assert_array_equal(a.score_samples(test), b.score_samples(test))
    assert a.version_ == b.version_ and a.context_rows == 0 and "smoothing" not in repr(a)


def test_context_rows_include_the_smoothing_span_and_streaming_matches_batch(data):
    train, test = data
    pipe = Pipeline(PCADetector(n_components=1), smoothing=7).fit(train)
    assert pipe.context_rows == 6
    scorer = StreamScorer(pipe)
    batches = [scorer.score(test[i : i + 9]) for i in range(0, len(test), 9)]
    np.testing.assert_array_equal(np.concatenate([b.scores for b in batches]), pipe.score_samples(test))
    shares = np.concatenate([b.shares for b in batches])
    np.testing.assert_allclose(shares, pipe.contributions(test), rtol=1e-12)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_smoothing_is_saved_and_older_saves_load_as_unsmoothed(tmp_path, data):
    train, test = data
    pipe = Pipeline(PCADetector(n_components=1), smoothing=3).fit(train)
    loaded = Pipeline.load(pipe.save(tmp_path / "m"))
    assert loaded.smoothing == 3 and loaded.context_rows == 2
    np.testing.assert_array_equal(loaded.score_samples(test), pipe.score_samples(test))
    plain = Pipeline(PCADetector(n_components=1)).fit(train)
    config = plain.save(tmp_path / "old") / "config.json"
    document = json.loads(config.read_text())
    del document["smoothing"]
    config.write_text(json.dumps(document))
    # saves from before the smoothing option also predate the manifest
    for manifest in (tmp_path / "old").rglob("manifest.json"):
        manifest.unlink()
    assert Pipeline.load(tmp_path / "old").smoothing == 1


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_invalid_smoothing_is_rejected(data, bad):
    with pytest.raises(InvalidInputError, match="smoothing"):
        Pipeline(PCADetector(n_components=1), smoothing=bad).fit(data[0])


def test_smoothing_different_seeds_fingerprint_differently(data):
    train, _ = data
    assert Pipeline(PCADetector(), smoothing=3).fit(train).version_ != Pipeline(PCADetector()).fit(train).version_


def test_raw_calibration_sets_the_threshold_from_unsmoothed_held_out_scores(tmp_path, data):
    train, test = data
    pipe = Pipeline(
        PCADetector(n_components=1), threshold=QuantileThreshold(quantile=1.0), smoothing=10, calibrate="raw"
    ).fit(train)
    raw = pipe.detector_.score_samples(pipe.scaler_.transform(train))
    assert pipe.threshold_ == pytest.approx(raw[300:].max())
    smoothed_calibration = Pipeline(
        PCADetector(n_components=1), threshold=QuantileThreshold(quantile=1.0), smoothing=10
    )
    assert pipe.threshold_ > smoothed_calibration.fit(train).threshold_
    # Scores are smoothed either way; only the threshold differs.
    np.testing.assert_array_equal(pipe.score_samples(test), smoothed_calibration.score_samples(test))
    loaded = Pipeline.load(pipe.save(tmp_path / "raw"))
    assert loaded.calibrate == "raw" and loaded.threshold_ == pipe.threshold_ and loaded.version_ == pipe.version_
    assert "calibrate='raw'" in repr(pipe)


def test_unknown_calibration_is_rejected(data):
    with pytest.raises(InvalidInputError, match="calibrate"):
        Pipeline(PCADetector(n_components=1), smoothing=3, calibrate="max").fit(data[0])


def test_cli_fit_saves_the_smoothing_and_calibration_it_was_given(tmp_path, data, capsys):
    import pandas as pd

    from vigil.cli import main

    train, _ = data
    csv = tmp_path / "train.csv"
    pd.DataFrame(train, columns=["a", "b", "c"]).to_csv(csv, index=False)
    model = tmp_path / "model"
    argv = ["fit", str(csv), "--detector", "pca", "--smoothing", "4", "--calibrate", "raw", "-o", str(model)]
    assert main(argv) == 0
    loaded = Pipeline.load(model)
    assert (loaded.smoothing, loaded.calibrate, loaded.context_rows) == (4, "raw", 3)
    assert main(["fit", str(csv), "--detector", "pca", "--smoothing", "0", "-o", str(tmp_path / "bad")]) == 2
    assert "smoothing" in capsys.readouterr().err
