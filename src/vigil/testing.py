"""The detector contract suite, shipped with Vigil so that every detector — built-in or yours — can run it.

:func:`check_detector` yields the checks that apply to a detector; each takes an *unfitted* instance and
raises ``AssertionError`` on failure. Supervised detectors (``requires_y``) are fitted with labels, on
training rows whose last sixth are labelled outliers, and must keep the same invariants. Vigil's own test
suite runs them over every registered detector × its ``_test_params()``; a third-party detector can do the
same::

    for check in check_detector(MyDetector()):
        check(MyDetector())
"""

from __future__ import annotations

import copy
import inspect
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from vigil.base import BaseDetector, OnlineDetector
from vigil.errors import InvalidInputError, NotFittedError

__all__ = ["check_detector", "expect_invalid", "make_contract_data", "state_snapshot", "states_equal"]

Check = Callable[[BaseDetector], None]


def make_contract_data(
    n_train: int = 240, n_test: int = 60, n_features: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated Gaussian training rows, and test rows whose last sixth are obvious outliers.

    Returns ``(X_train, X_test, y_test)``.
    """
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features) + np.eye(n_features)
    X_train = rng.normal(size=(n_train, n_features)) @ mixing
    X_test = rng.normal(size=(n_test, n_features)) @ mixing
    n_out = max(1, n_test // 6)
    X_test[-n_out:] += rng.choice([-1.0, 1.0], size=(n_out, n_features)) * 8.0
    y = np.zeros(n_test, dtype=bool)
    y[-n_out:] = True
    return X_train, X_test, y


def _data(det: BaseDetector) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """``(X, y, X_test, y_test)`` of the contract data; ``y`` is None unless ``det`` is supervised, whose
    training rows then end in a sixth of labelled outliers like the test's."""
    X, X_test, y_test = make_contract_data()
    if not det.requires_y:
        return X, None, X_test, y_test
    n_out = len(X) // 6
    X = X.copy()
    X[-n_out:] += np.random.default_rng(1).choice([-1.0, 1.0], size=(n_out, X.shape[1])) * 8.0
    return X, np.arange(len(X)) >= len(X) - n_out, X_test, y_test


def _plain(params: dict[str, object]) -> dict[str, object]:
    """Parameters comparable with ``==``: a detector parameter as its type and its own parameters."""
    return {k: (type(v), _plain(v.get_params())) if isinstance(v, BaseDetector) else v for k, v in params.items()}


def state_snapshot(det: BaseDetector) -> dict[str, object]:
    """A deep copy of ``det``'s learned state, to compare with :func:`states_equal` after a call that must not
    change it (scoring)."""
    return copy.deepcopy(det._learned_state())


def states_equal(a: dict[str, object], b: dict[str, object]) -> bool:
    """Whether two :func:`state_snapshot` results hold the same values (arrays compared element-wise)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(np.asarray(x), np.asarray(y)):
                return False
        elif x != y:
            return False
    return True


def check_init_stores_only_params(det: BaseDetector) -> None:
    params = set(type(det)._param_names())
    assert set(vars(det)) == params, f"__init__ set {sorted(set(vars(det)) - params)} besides its parameters"


def check_defaults_immutable(det: BaseDetector) -> None:
    for p in inspect.signature(type(det).__init__).parameters.values():
        if p.name == "self" or (p.kind == p.VAR_KEYWORD and type(det)._renamed_params):
            continue  # **renamed: old parameter names, accepted with a warning
        assert p.kind == p.KEYWORD_ONLY, f"parameter {p.name} must be keyword-only"
        assert isinstance(p.default, (type(None), bool, int, float, str, tuple)), (
            f"default of {p.name} is mutable: {p.default!r}"
        )


def check_clone_and_params_round_trip(det: BaseDetector) -> None:
    clone = det.clone()
    assert clone is not det
    assert _plain(clone.get_params()) == _plain(det.get_params())
    assert _plain(type(det)(**det.get_params()).get_params()) == _plain(det.get_params())
    try:
        det.set_params(no_such_parameter=1)
    except InvalidInputError:
        pass
    else:
        msg = "set_params accepted an unknown parameter"
        raise AssertionError(msg)


def check_fit_returns_self(det: BaseDetector) -> None:
    X, y, _, _ = _data(det)
    assert det.fit(X, y) is det
    assert det.n_features_in_ == X.shape[1]
    assert np.isfinite(det.threshold_)


def check_not_fitted_error(det: BaseDetector) -> None:
    _, X_test, _ = make_contract_data()
    try:
        det.score_samples(X_test)
    except NotFittedError:
        return
    msg = "score_samples before fit did not raise NotFittedError"
    raise AssertionError(msg)


def expect_invalid(call: Callable[[], object], what: str) -> None:
    """Call ``call`` and fail (``AssertionError`` naming ``what``) unless it raises ``InvalidInputError``."""
    try:
        call()
    except InvalidInputError:
        return
    msg = f"{what} was accepted; expected InvalidInputError"
    raise AssertionError(msg)


def check_rejects_nonfinite(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    for bad in (np.nan, np.inf, -np.inf):
        broken = X.copy()
        broken[3, 1] = bad
        expect_invalid(partial(det.clone().fit, broken, y), f"fit with {bad}")
    det.fit(X, y)
    for bad in (np.nan, np.inf):
        broken = X_test.copy()
        broken[-1, 0] = bad
        expect_invalid(partial(det.score_samples, broken), f"score_samples with {bad}")
        expect_invalid(partial(det.predict, broken), f"predict with {bad}")
    if isinstance(det, OnlineDetector):
        record = {f"x{j}": 0.0 for j in range(X.shape[1])}
        online = det.clone()
        expect_invalid(lambda: online.learn_one({**record, "x0": float("nan")}), "learn_one with NaN")
        for row in X[:50]:
            online.learn_one({f"x{j}": float(v) for j, v in enumerate(row)})
        expect_invalid(lambda: online.score_one({**record, "x1": float("inf")}), "score_one with inf")


def check_rejects_empty_and_wrong_shape(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    expect_invalid(lambda: det.clone().fit(np.empty((0, X.shape[1])), y), "fit on zero rows")
    expect_invalid(lambda: det.clone().fit(X[:, 0], y), "fit on a 1-D array")
    det.fit(X, y)
    expect_invalid(lambda: det.score_samples(X_test[:, :-1]), "score_samples with a missing feature")
    expect_invalid(lambda: det.score_samples(np.hstack([X_test, X_test[:, :1]])), "an extra feature")


def check_scores_shape_and_finite(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    scores = det.fit(X, y).score_samples(X_test)
    assert scores.shape == (X_test.shape[0],), f"scores have shape {scores.shape}"
    assert np.isfinite(scores).all()
    rows = det.context_rows + 1
    assert det.score_samples(X_test[:rows]).shape == (rows,)
    if det.context_rows:
        # Fewer rows than one window cannot be scored on their own: a clear error, never a padded guess.
        expect_invalid(lambda: det.score_samples(X_test[: rows - 1]), "fewer rows than one window")


def check_scoring_is_pure(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    det.fit(X, y)
    before = state_snapshot(det)
    X_copy = X_test.copy()
    first = det.score_samples(X_test)
    det.predict(X_test)
    det.feature_contributions(X_test)
    second = det.score_samples(X_test)
    assert np.array_equal(X_test, X_copy), "scoring modified its input"
    assert np.array_equal(first, second), "scoring the same rows twice gave different scores"
    assert states_equal(before, state_snapshot(det)), "scoring changed the learned state"
    if isinstance(det, OnlineDetector):
        record = {f"x{j}": float(v) for j, v in enumerate(X_test[0])}
        a = det.score_one(record)
        assert states_equal(before, state_snapshot(det)), "score_one changed the learned state"
        assert a == det.score_one(record)


def check_predict_matches_threshold(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    det.fit(X, y)
    assert np.array_equal(det.predict(X_test), det.score_samples(X_test) > det.threshold_)


def check_contributions(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    det.fit(X, y)
    for shares in (det.feature_contributions(X_test), det.occlusion_contributions(X_test)):
        assert shares.shape == X_test.shape
        assert np.isfinite(shares).all() and (shares >= 0).all()
        np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)


def check_scores_with_contributions(det: BaseDetector) -> None:
    """One pass gives the same scores as ``score_samples`` and the same shares as ``feature_contributions``,
    for any rows asked (a mask or indices); to float32 precision, as networks compute in float32 and a
    batch of other rows may round differently."""
    X, y, X_test, _ = _data(det)
    det.fit(X, y)
    scored = det.score_with_contributions(X_test)
    np.testing.assert_allclose(scored.scores, det.score_samples(X_test), rtol=1e-5, atol=1e-6)
    shares = det.feature_contributions(X_test)
    np.testing.assert_allclose(scored.contributions(), shares, rtol=1e-5, atol=1e-6)
    flagged = scored.scores > np.median(scored.scores)
    np.testing.assert_allclose(scored.contributions(flagged), shares[flagged], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scored.contributions([0, 2]), shares[[0, 2]], rtol=1e-5, atol=1e-6)


def check_expected_values(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    expected = det.fit(X, y).expected_values(X_test)
    if expected is not None:
        assert expected.shape == X_test.shape, f"expected_values has shape {expected.shape}"
        assert np.isfinite(expected).all()


def check_same_seed_same_scores(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    params = {**det.get_params(), "random_state": 42}
    a = type(det)(**params).fit(X, y).score_samples(X_test)
    b = type(det)(**params).fit(X, y).score_samples(X_test)
    np.testing.assert_array_equal(a, b)


def check_save_load_round_trip(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    det.fit(X, y)
    with tempfile.TemporaryDirectory() as tmp:
        det.save(Path(tmp) / "model")
        loaded = BaseDetector.load(Path(tmp) / "model")
        assert not list(Path(tmp).rglob("*.pkl")), "save wrote a pickle"
    assert type(loaded) is type(det)
    assert _plain(loaded.get_params()) == _plain(det.get_params())
    np.testing.assert_array_equal(loaded.score_samples(X_test), det.score_samples(X_test))
    assert loaded.threshold_ == det.threshold_


def check_column_order_does_not_matter(det: BaseDetector) -> None:
    X, y, X_test, _ = _data(det)
    names = [f"s{j}" for j in range(X.shape[1])]
    det.fit(pd.DataFrame(X, columns=names), y)
    expected = det.score_samples(pd.DataFrame(X_test, columns=names))
    shuffled = pd.DataFrame(X_test, columns=names)[names[::-1]]
    np.testing.assert_allclose(det.score_samples(shuffled), expected, rtol=1e-12, atol=1e-12)
    if isinstance(det, OnlineDetector):
        record = dict(zip(names, map(float, X_test[0]), strict=True))
        reversed_record = dict(reversed(list(record.items())))
        assert det.score_one(record) == det.score_one(reversed_record)


def check_detects_obvious_outliers(det: BaseDetector) -> None:
    X, y, X_test, y_test = _data(det)
    scores = det.fit(X, y).score_samples(X_test)
    auc = roc_auc_score(y_test, scores)
    assert auc >= 0.9, f"ROC-AUC on obvious outliers is {auc:.3f}"


def check_invalid_parameter_rejected(det: BaseDetector) -> None:
    X, y, _, _ = _data(det)
    name, bad = ("contamination", 2.0) if "contamination" in det.get_params() else ("random_state", -1)
    expect_invalid(lambda: det.clone().set_params(**{name: bad}).fit(X, y), f"{name}={bad}")


def check_labels_required(det: BaseDetector) -> None:
    X, y, _, _ = _data(det)
    assert y is not None
    expect_invalid(lambda: det.clone().fit(X), "fit of a supervised detector without y")
    expect_invalid(lambda: det.clone().fit(X, y[:-1]), "one label too few")


def check_online_learning(det: BaseDetector) -> None:
    assert isinstance(det, OnlineDetector)
    X, X_test, y = make_contract_data()
    names = [f"x{j}" for j in range(X.shape[1])]
    assert not det.is_warm
    # The contract says None; typed as returning anything, so the check also holds for detectors that break it.
    learn: Callable[[dict[str, float]], object] = det.learn_one
    for row in X:
        assert learn(dict(zip(names, map(float, row), strict=True))) is None
    assert det.is_warm
    scores = np.array([det.score_one(dict(zip(names, map(float, row), strict=True))) for row in X_test])
    assert np.isfinite(scores).all()
    assert roc_auc_score(y, scores) >= 0.9


_CHECKS: tuple[Check, ...] = (
    check_init_stores_only_params,
    check_defaults_immutable,
    check_clone_and_params_round_trip,
    check_fit_returns_self,
    check_not_fitted_error,
    check_rejects_nonfinite,
    check_rejects_empty_and_wrong_shape,
    check_scores_shape_and_finite,
    check_scoring_is_pure,
    check_predict_matches_threshold,
    check_contributions,
    check_scores_with_contributions,
    check_expected_values,
    check_same_seed_same_scores,
    check_save_load_round_trip,
    check_column_order_does_not_matter,
    check_detects_obvious_outliers,
    check_invalid_parameter_rejected,
)


def check_detector(det: BaseDetector) -> Iterator[Check]:
    """Yield every contract check that applies to ``det`` (each takes a fresh unfitted instance)."""
    yield from _CHECKS
    if isinstance(det, OnlineDetector):
        yield check_online_learning
    if det.requires_y:
        yield check_labels_required
