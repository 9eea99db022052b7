"""The flow models as registered detectors: labels required, renamed parameters, saved files of before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from vigil.base import BaseDetector
from vigil.detectors.training import weight_arrays
from vigil.errors import InvalidInputError
from vigil.network.autoencoder import FlowAutoencoderDetector
from vigil.network.classifier import FlowClassifier
from vigil.network.hybrid import HybridFlowModel
from vigil.persistence import FORMAT_VERSION, read_state, write_state
from vigil.pipeline import Pipeline
from vigil.registry import detector_class, make_detector

pytestmark = pytest.mark.torch


def _flows(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 4))
    return X, X[:, 0] > 1.0


@pytest.mark.parametrize("name", ["mlp", "mlp+ae"])
def test_supervised_detectors_are_registered_and_refuse_to_fit_without_labels(name: str) -> None:
    assert detector_class(name).requires_y
    X, _ = _flows()
    with pytest.raises(InvalidInputError, match=r"is supervised: fit\(X, y\) needs labels y"):
        make_detector(name).fit(X)
    with pytest.raises(InvalidInputError, match="supervised"):
        Pipeline(make_detector(name)).fit(X)


def test_hybrid_fits_clones_of_its_parts_and_seeds_unseeded_ones() -> None:
    X, y = _flows()
    clf = FlowClassifier(hidden=(8,), epochs=5, batch_size=32, n_threads=1)
    model = HybridFlowModel(classifier=clf, novelty=FlowAutoencoderDetector(hidden=(4,), latent=2, epochs=5))
    model.set_params(random_state=3).fit(X, y)
    assert not hasattr(clf, "n_features_in_")  # the parameter is left as it was given
    assert model.classifier_.random_state == model.novelty_.random_state == 3


@pytest.mark.parametrize(
    ("cls", "old", "new", "value"),
    [
        (FlowAutoencoderDetector, "code", "latent", 2),
        (FlowAutoencoderDetector, "validation", "validation_fraction", 0.2),
        (FlowClassifier, "validation", "validation_fraction", 0.2),
    ],
)
def test_old_parameter_name_warns_and_gives_the_same_model(cls, old: str, new: str, value) -> None:
    X, y = _flows()
    small = {"hidden": (8,), "epochs": 5, "batch_size": 32, "random_state": 0}
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated.*use '{new}'"):
        legacy = cls(**small, **{old: value})
    with pytest.warns(DeprecationWarning, match=f"use '{new}'"):
        assert cls(**small).set_params(**{old: value}).get_params() == legacy.get_params()
    current = cls(**small, **{new: value})
    assert legacy.get_params() == current.get_params() and old not in legacy.get_params()
    assert legacy.clone().get_params() == current.get_params()  # no warning: the clone uses the new name
    labels = y if cls.requires_y else None
    np.testing.assert_array_equal(legacy.fit(X, labels).score_samples(X), current.fit(X, labels).score_samples(X))
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such'"):
        cls(no_such=1)


def _rewrite_config(directory: Path, edit) -> None:
    """Rewrite a saved model's config.json (and its manifest) as an older Vigil would have written it."""
    document, arrays = read_state(directory, kind="detector")
    write_state(directory, edit(document), arrays)


def test_flow_autoencoder_saved_with_the_old_parameter_names_still_loads(tmp_path: Path) -> None:
    X, _ = _flows()
    det = FlowAutoencoderDetector(hidden=(8,), latent=2, validation_fraction=0.2, epochs=5, random_state=0).fit(X)
    path = det.save(tmp_path / "ae")

    def old_names(document):
        params = document["params"]
        params["code"], params["validation"] = params.pop("latent"), params.pop("validation_fraction")
        return document

    _rewrite_config(path, old_names)
    assert '"code": 2' in (path / "config.json").read_text()
    loaded = BaseDetector.load(path)  # no warning (filterwarnings = error): the file is not the user's code
    assert loaded.get_params() == det.get_params()
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))


def test_hybrid_saves_its_parts_by_name_and_loads_them(tmp_path: Path) -> None:
    X, y = _flows()
    model = make_detector("mlp+ae", **HybridFlowModel._test_params()[0]).fit(X, y)
    path = model.save(tmp_path / "hybrid")
    params = json.loads((path / "config.json").read_text())["params"]
    assert params["classifier"]["detector"] == "mlp" and params["novelty"]["params"]["hidden"] == [4]
    loaded = BaseDetector.load(path)
    np.testing.assert_array_equal(loaded.predict_category(X), model.predict_category(X))
    assert loaded.novelty_threshold_ == model.novelty_threshold_


def test_classifier_saved_in_the_layout_before_it_was_a_detector_still_loads(tmp_path: Path) -> None:
    X, y = _flows()
    category = np.where(y, "DoS", "normal")
    clf = FlowClassifier(hidden=(8,), epochs=5, batch_size=32, random_state=0, n_threads=1).fit(X, y, category)
    old = {
        "format": "vigil.flow_classifier",
        "format_version": FORMAT_VERSION,
        "params": {**clf.get_params(), "hidden": [8], "validation": 0.1},
        "categories": clf.categories_,
        "n_features_in": 4,
        "feature_names_in": None,
        "history": clf.history_,
    }
    del old["params"]["validation_fraction"]
    write_state(tmp_path / "old", old, {**weight_arrays(clf.network_, "net."), "class_weights": clf.class_weights_})
    loaded = FlowClassifier.load(tmp_path / "old")
    assert loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.predict_category(X).tolist() == clf.predict_category(X).tolist()
    assert isinstance(FlowClassifier.load(clf.save(tmp_path / "new")), FlowClassifier)


def test_flow_autoencoder_weights_keep_the_layout_saved_models_have() -> None:
    # Names of the weights flow-ae models were saved with before the two dense autoencoders became one.
    det = FlowAutoencoderDetector(hidden=(8, 4), latent=2, epochs=2, random_state=0).fit(_flows()[0])
    layers = {"encoder": (0, 1, 3, 4, 6), "decoder": (0, 1, 3, 4, 6)}
    expected = {f"net.{part}.{i}.{kind}" for part, idx in layers.items() for i in idx for kind in ("weight", "bias")}
    assert set(det.weights_) == expected
