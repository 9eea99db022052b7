from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vigil.calibration.thresholds import POTThreshold, QuantileThreshold
from vigil.detectors.pca import PCADetector
from vigil.errors import InvalidInputError, ModelFormatError, NotFittedError, SchemaError
from vigil.pipeline import Pipeline
from vigil.registry import make_detector


@pytest.fixture
def frames():
    rng = np.random.default_rng(5)
    t = rng.normal(size=(500, 1))
    base = np.hstack([t, 2 * t, -t, 0.5 * t]) + 0.05 * rng.normal(size=(500, 4))
    names = ["speed", "flow", "valve", "current"]
    train = pd.DataFrame(base[:400] * [100, 3, 1, 10] + [1500, 40, 50, 20], columns=names)
    test = pd.DataFrame(base[400:] * [100, 3, 1, 10] + [1500, 40, 50, 20], columns=names)
    test.loc[test.index[-5:], "flow"] -= 10.0
    return train, test


def test_fit_leaves_the_given_detector_untouched(frames):
    train, _ = frames
    det = PCADetector(n_components=1)
    Pipeline(det).fit(train)
    assert not hasattr(det, "n_features_in_")


def test_broken_coupling_is_flagged_and_explained_by_the_right_sensor(frames):
    train, test = frames
    pipe = Pipeline(PCADetector(n_components=1)).fit(train)
    flags = pipe.predict(test)
    assert flags[-5:].all()
    assert flags[:-5].mean() < 0.05
    top = pipe.explain(test.iloc[-5:], top_k=2)
    assert all(row[0][0] == "flow" for row in top)
    shares = pipe.contributions(test)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_save_load_round_trip_gives_identical_scores(tmp_path, frames):
    train, test = frames
    for name in ("pca", "iforest", "mahalanobis", "online-zscore"):
        pipe = Pipeline(make_detector(name, random_state=0), threshold=POTThreshold()).fit(train)
        loaded = Pipeline.load(pipe.save(tmp_path / name))
        np.testing.assert_array_equal(loaded.score_samples(test), pipe.score_samples(test))
        assert loaded.threshold_ == pipe.threshold_
        assert loaded.version_ == pipe.version_
        assert loaded.explain(test.iloc[:3]) == pipe.explain(test.iloc[:3])


def test_columns_are_matched_by_name(frames):
    train, test = frames
    pipe = Pipeline(PCADetector(n_components=1)).fit(train)
    np.testing.assert_allclose(pipe.score_samples(test[test.columns[::-1]]), pipe.score_samples(test))
    with pytest.raises(SchemaError, match=r"missing \['valve'\]"):
        pipe.score_samples(test.drop(columns=["valve"]))


def test_threshold_is_calibrated_on_held_out_rows(frames):
    train, _ = frames
    held_out = Pipeline(PCADetector(n_components=1), threshold=QuantileThreshold(quantile=0.99), holdout=0.25)
    assert held_out.fit(train).thresholder_.n_scores_ == 100
    in_sample = Pipeline(PCADetector(n_components=1), threshold=QuantileThreshold(quantile=0.99), holdout=0.0)
    fitted = in_sample.fit(train)
    assert fitted.thresholder_.n_scores_ == 400
    assert fitted.threshold_ == pytest.approx(
        np.quantile(fitted.detector_.score_samples(fitted.scaler_.transform(train.to_numpy())), 0.99)
    )


def test_same_data_and_seed_give_the_same_version(frames):
    train, _ = frames
    a = Pipeline(make_detector("iforest", random_state=1)).fit(train)
    b = Pipeline(make_detector("iforest", random_state=1)).fit(train)
    c = Pipeline(make_detector("iforest", random_state=2)).fit(train)
    assert a.version_ == b.version_ != c.version_


def test_unfitted_and_bad_settings_are_reported(frames):
    train, test = frames
    with pytest.raises(NotFittedError):
        Pipeline(PCADetector()).score_samples(test)
    with pytest.raises(InvalidInputError, match="holdout"):
        Pipeline(PCADetector(), holdout=1.5).fit(train)
    with pytest.raises(InvalidInputError, match="unknown scaler"):
        Pipeline(PCADetector(), scaler="minmax").fit(train)


def test_corrupt_or_foreign_model_directories_are_refused(tmp_path, frames):
    train, _ = frames
    saved = Pipeline(PCADetector(n_components=1)).fit(train).save(tmp_path / "model")
    config = saved / "config.json"
    document = json.loads(config.read_text())

    config.write_text(json.dumps({**document, "format_version": 99}))
    with pytest.raises(ModelFormatError, match="format version 99"):
        Pipeline.load(saved)

    config.write_text(json.dumps({**document, "format": "something.else"}))
    with pytest.raises(ModelFormatError, match="not a saved Vigil pipeline"):
        Pipeline.load(saved)

    config.write_text("{ not json")
    with pytest.raises(ModelFormatError, match="corrupt"):
        Pipeline.load(saved)

    config.write_text(json.dumps(document))
    (saved / "detector" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(ModelFormatError, match="corrupt"):
        Pipeline.load(saved)

    with pytest.raises(ModelFormatError, match="not a directory"):
        Pipeline.load(tmp_path / "missing")


def test_a_saved_detector_cannot_name_an_arbitrary_class(tmp_path, frames):
    train, _ = frames
    saved = Pipeline(PCADetector(n_components=1)).fit(train).save(tmp_path / "model")
    config = saved / "detector" / "config.json"
    document = json.loads(config.read_text())
    config.write_text(json.dumps({**document, "detector": "os.system"}))
    with pytest.raises(ModelFormatError):
        Pipeline.load(saved)
