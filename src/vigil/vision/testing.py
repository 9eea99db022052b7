"""The image detector contract suite, shipped like :mod:`vigil.testing` so that any image detector can run it.

:func:`check_image_detector` yields checks; each takes an *unfitted* instance and raises ``AssertionError``
on failure. The data-independent checks of :mod:`vigil.testing` run verbatim; the others are their image
versions, on small synthetic surfaces (:mod:`vigil.vision.synthetic`), plus anomaly-map checks::

    for check in check_image_detector(MyImageDetector()):
        check(MyImageDetector())
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from vigil.errors import InvalidInputError, NotFittedError
from vigil.testing import (
    check_clone_and_params_round_trip,
    check_defaults_immutable,
    check_init_stores_only_params,
    expect_invalid,
    state_snapshot,
    states_equal,
)
from vigil.vision.base import ImageDetector
from vigil.vision.synthetic import make_synthetic_set

__all__ = ["check_image_detector", "make_image_contract_data"]

Check = Callable[[ImageDetector], None]


def make_image_contract_data(
    *, size: int = 32, n_train: int = 40, n_test: int = 16, channels: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Synthetic contract data: good training surfaces, and test surfaces whose second half hold scratches and holes.

    Returns a dict with ``X_train``, ``y_train`` (string types; for supervised detectors the training set
    also holds defects), ``X_test``, ``y_test`` (bool) and ``masks_test``.
    """
    n_defect = n_test // 2
    good = make_synthetic_set(n_train, 0, size=size, channels=channels, seed=seed)
    labelled = make_synthetic_set(n_train // 2, n_train // 2, size=size, channels=channels, seed=seed + 1)
    test = make_synthetic_set(n_test - n_defect, n_defect, size=size, channels=channels, seed=seed + 2)
    return {
        "X_train": good.images,
        "X_labelled": labelled.images,
        "y_labelled": labelled.types,
        "X_test": test.images,
        "y_test": test.labels,
        "masks_test": test.masks,
    }


def _fit(det: ImageDetector, data: dict[str, Any]) -> ImageDetector:
    if det.supervised:
        return det.fit(data["X_labelled"], data["y_labelled"])
    return det.fit(data["X_train"])


def check_image_fit_returns_self(det: ImageDetector) -> None:
    data = make_image_contract_data()
    assert _fit(det, data) is det
    assert tuple(det.image_shape_) == (32, 32, 1)
    assert np.isfinite(det.threshold_)


def check_image_not_fitted_error(det: ImageDetector) -> None:
    data = make_image_contract_data()
    for method in (det.score_samples, det.predict):
        try:
            method(data["X_test"])
        except NotFittedError:
            continue
        msg = f"{method.__name__} before fit did not raise NotFittedError"
        raise AssertionError(msg)


def check_image_rejects_nonfinite(det: ImageDetector) -> None:
    data = make_image_contract_data()
    train = data["X_labelled"] if det.supervised else data["X_train"]
    y = data["y_labelled"] if det.supervised else None
    for bad in (np.nan, np.inf, -np.inf):
        broken = train.astype(np.float64) / 255.0
        broken[3, 5, 7] = bad
        expect_invalid(partial(det.clone().fit, broken, y), f"fit with {bad}")
    _fit(det, data)
    for bad in (np.nan, np.inf):
        broken = data["X_test"].astype(np.float64) / 255.0
        broken[-1, 0, 0] = bad
        expect_invalid(partial(det.score_samples, broken), f"score_samples with {bad}")
        expect_invalid(partial(det.predict, broken), f"predict with {bad}")
        if det.localizes:
            expect_invalid(partial(det.anomaly_map, broken), f"anomaly_map with {bad}")


def check_image_rejects_empty_and_wrong_shape(det: ImageDetector) -> None:
    data = make_image_contract_data()
    y = data["y_labelled"] if det.supervised else None
    train = data["X_labelled"] if det.supervised else data["X_train"]
    expect_invalid(lambda: det.clone().fit(np.empty((0, 32, 32), np.uint8)), "fit on zero images")
    expect_invalid(lambda: det.clone().fit(train[0], None if y is None else y[:1]), "fit on one 2-D image")
    expect_invalid(lambda: det.clone().fit(train[..., None].repeat(2, axis=-1), y), "fit on 2-channel images")
    expect_invalid(lambda: det.clone().fit(np.full(train.shape, "a"), y), "fit on strings")
    _fit(det, data)
    expect_invalid(lambda: det.score_samples(data["X_test"][:, :16, :16]), "score_samples on smaller images")
    expect_invalid(lambda: det.score_samples(data["X_test"][..., None].repeat(3, axis=-1)), "RGB after grey fit")


def check_image_scores_shape_and_finite(det: ImageDetector) -> None:
    data = make_image_contract_data()
    _fit(det, data)
    scores = det.score_samples(data["X_test"])
    assert scores.shape == (len(data["X_test"]),), f"scores have shape {scores.shape}"
    assert np.isfinite(scores).all()
    assert det.score_samples(data["X_test"][:1]).shape == (1,)
    as_float = det.score_samples(data["X_test"].astype(np.float32) / np.float32(255.0))
    np.testing.assert_allclose(as_float, scores, rtol=1e-5, atol=1e-6)


def check_image_anomaly_map(det: ImageDetector) -> None:
    if not det.localizes:
        return
    data = make_image_contract_data()
    _fit(det, data)
    maps = det.anomaly_map(data["X_test"])
    assert maps.shape == (len(data["X_test"]), 32, 32), f"anomaly maps have shape {maps.shape}"
    assert np.isfinite(maps).all() and (maps >= 0).all(), "anomaly maps must be finite and non-negative"
    scores, maps_again = det.score_with_maps(data["X_test"])
    np.testing.assert_array_equal(maps, maps_again)
    np.testing.assert_array_equal(scores, det.score_samples(data["X_test"]))


def check_image_scoring_is_pure(det: ImageDetector) -> None:
    data = make_image_contract_data()
    _fit(det, data)
    before = state_snapshot(det)
    X = data["X_test"]
    copy = X.copy()
    first = det.score_samples(X)
    det.predict(X)
    if det.localizes:
        det.anomaly_map(X)
    assert np.array_equal(X, copy), "scoring modified its input"
    assert np.array_equal(first, det.score_samples(X)), "scoring the same images twice gave different scores"
    assert states_equal(before, state_snapshot(det)), "scoring changed the learned state"
    shuffled = det.score_samples(X[::-1])
    np.testing.assert_allclose(
        shuffled[::-1], first, rtol=1e-6, atol=1e-9, err_msg="an image's score depends on the batch"
    )


def check_image_predict_matches_threshold(det: ImageDetector) -> None:
    data = make_image_contract_data()
    _fit(det, data)
    assert np.array_equal(det.predict(data["X_test"]), det.score_samples(data["X_test"]) > det.threshold_)


def check_image_same_seed_same_scores(det: ImageDetector) -> None:
    data = make_image_contract_data()
    params = {**det.get_params(), "random_state": 42}
    a = _fit(type(det)(**params), data).score_samples(data["X_test"])
    b = _fit(type(det)(**params), data).score_samples(data["X_test"])
    np.testing.assert_array_equal(a, b)


def check_image_save_load_round_trip(det: ImageDetector) -> None:
    data = make_image_contract_data()
    _fit(det, data)
    with tempfile.TemporaryDirectory() as tmp:
        det.save(Path(tmp) / "model")
        loaded = ImageDetector.load(Path(tmp) / "model")
        assert not list(Path(tmp).rglob("*.pkl")), "save wrote a pickle"
    assert type(loaded) is type(det)
    assert loaded.get_params() == det.get_params()
    np.testing.assert_array_equal(loaded.score_samples(data["X_test"]), det.score_samples(data["X_test"]))
    if det.localizes:
        np.testing.assert_array_equal(loaded.anomaly_map(data["X_test"]), det.anomaly_map(data["X_test"]))
    assert loaded.threshold_ == det.threshold_


def check_image_detects_obvious_defects(det: ImageDetector) -> None:
    data = make_image_contract_data()
    scores = _fit(det, data).score_samples(data["X_test"])
    auc = roc_auc_score(data["y_test"], scores)
    assert auc >= 0.9, f"ROC-AUC on obvious synthetic defects is {auc:.3f}"


def check_image_colour_images(det: ImageDetector) -> None:
    data = make_image_contract_data(channels=3)
    _fit(det, data)
    assert tuple(det.image_shape_) == (32, 32, 3)
    scores = det.score_samples(data["X_test"])
    assert scores.shape == (len(data["X_test"]),) and np.isfinite(scores).all()


def check_image_invalid_parameter_rejected(det: ImageDetector) -> None:
    data = make_image_contract_data()
    expect_invalid(lambda: _fit(det.clone().set_params(contamination=2.0), data), "contamination=2.0")


def check_image_supervised_needs_labels(det: ImageDetector) -> None:
    if not det.supervised:
        return
    data = make_image_contract_data()
    expect_invalid(lambda: det.clone().fit(data["X_labelled"]), "a supervised fit without labels")
    expect_invalid(
        lambda: det.clone().fit(data["X_train"], np.array(["good"] * len(data["X_train"]))), "labels of one class"
    )


_CHECKS: tuple[Check, ...] = (
    check_init_stores_only_params,  # type: ignore[has-type]
    check_defaults_immutable,  # type: ignore[has-type]
    check_clone_and_params_round_trip,  # type: ignore[has-type]
    check_image_fit_returns_self,
    check_image_not_fitted_error,
    check_image_rejects_nonfinite,
    check_image_rejects_empty_and_wrong_shape,
    check_image_scores_shape_and_finite,
    check_image_anomaly_map,
    check_image_scoring_is_pure,
    check_image_predict_matches_threshold,
    check_image_same_seed_same_scores,
    check_image_save_load_round_trip,
    check_image_detects_obvious_defects,
    check_image_colour_images,
    check_image_invalid_parameter_rejected,
    check_image_supervised_needs_labels,
)


def check_image_detector(det: ImageDetector) -> Iterator[Check]:
    """Yield every contract check for image detector ``det`` (each takes a fresh unfitted instance).

    Examples
    --------
    >>> from vigil.vision.patch import PatchGaussianDetector
    >>> names = [check.__name__ for check in check_image_detector(PatchGaussianDetector())]
    >>> "check_image_save_load_round_trip" in names
    True
    """
    if not isinstance(det, ImageDetector):
        msg = f"{type(det).__name__} is not an ImageDetector; use vigil.testing.check_detector"
        raise InvalidInputError(msg)
    yield from _CHECKS
