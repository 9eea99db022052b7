"""Fleet training gives each member what its own fit gives, and a bad member harms only itself."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.detectors.fleet import fit_fleet, supports_fleet
from vigil.detectors.forecasters import TCNForecasterDetector
from vigil.detectors.pca import PCADetector
from vigil.detectors.sequence_forecaster import SequenceTCNForecasterDetector
from vigil.errors import InvalidInputError, NumericalError
from vigil.fleet import fit_pipelines
from vigil.pipeline import Pipeline

pytestmark = pytest.mark.torch

WINDOWED = TCNForecasterDetector(
    window=8, filters=6, epochs=12, patience=2, learning_rate=3e-2, relative_drift=1.0, random_state=3
)
SEQUENCE = SequenceTCNForecasterDetector(window=8, filters=6, epochs=40, patience=3, relative_drift=1.0, random_state=3)


def _series(seed: int, n: int, d: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / 6.0
    drift = np.linspace(0, 2, n)[:, None] * (np.arange(d) == 0)  # the first sensor drifts: the guard acts
    return np.sin(t * (1 + 0.2 * np.arange(d)) + seed) + drift + 0.1 * rng.normal(size=(n, d))


def _assets() -> dict[str, np.ndarray]:
    # Different lengths (ragged last batches, different batch counts) and one asset with another sensor count.
    return {"a": _series(0, 260), "b": _series(1, 180), "c": _series(2, 320), "wide": _series(3, 200, d=4)}


def _assert_same_model(fleet_det, single, X) -> None:
    assert fleet_det.epochs_trained_ == single.epochs_trained_
    for (name, w), w_single in zip(
        fleet_det.module_.state_dict().items(), single.module_.state_dict().values(), strict=True
    ):
        np.testing.assert_allclose(w.numpy(), w_single.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(fleet_det.score_samples(X), single.score_samples(X), rtol=1e-4)
    assert fleet_det.threshold_ == pytest.approx(single.threshold_, rel=1e-4)


@pytest.mark.parametrize("template", [WINDOWED, SEQUENCE], ids=["windowed", "sequence"])
def test_each_member_equals_its_own_fit(template):
    data = _assets()
    fleet = fit_fleet(template, data)
    assert list(fleet.fitted) == list(data) and not fleet.failed
    assert fleet.batched == list(data)
    in_pairs = fit_fleet(template, data, max_members=2)  # bounded memory: groups of two, one after the other
    epochs = set()
    for name, X in data.items():
        single = template.clone().fit(X)
        _assert_same_model(fleet.fitted[name], single, X)
        _assert_same_model(in_pairs.fitted[name], single, X)
        np.testing.assert_array_equal(fleet.fitted[name].relative_features_, single.relative_features_)
        epochs.add(single.epochs_trained_)
    # Members stopped at different epochs, so the masks and the shrinking stack were exercised.
    assert len(epochs) > 1


@pytest.mark.parametrize("template", [WINDOWED, SEQUENCE], ids=["windowed", "sequence"])
def test_bad_members_get_their_own_error_and_the_others_train_as_without_them(template):
    good = {"a": _series(0, 260), "b": _series(1, 180)}
    constant = _series(2, 240)
    constant[:, 1] = 4.0
    nan = _series(3, 240)
    nan[100, 2] = np.nan
    data = {
        "a": good["a"],
        "too-short": _series(4, template._min_fit_rows() - 1),
        "nan": nan,
        "constant": constant,
        "huge": _series(5, 240) * 1e30,  # finite in float64, its squared errors overflow: training diverges
        "b": good["b"],
    }
    fleet = fit_fleet(template, data)
    assert list(fleet.fitted) == ["a", "constant", "b"]
    assert set(fleet.failed) == {"too-short", "nan", "huge"}
    assert isinstance(fleet.failed["too-short"], InvalidInputError)
    assert fleet.reasons["too-short"].startswith("too-short: ")
    assert "needs at least" in fleet.reasons["too-short"]
    assert isinstance(fleet.failed["nan"], InvalidInputError)
    assert "NaN" in fleet.reasons["nan"] and fleet.reasons["nan"].startswith("nan: ")
    assert isinstance(fleet.failed["huge"], NumericalError)
    assert "diverged" in fleet.reasons["huge"]
    with pytest.raises(NumericalError):
        template.clone().fit(data["huge"])
    alone = fit_fleet(template, good)
    for name in ("a", "b", "constant"):
        _assert_same_model(fleet.fitted[name], template.clone().fit(data[name]), data[name])
    for name in good:  # to float rounding: the grouped convolutions block their sums by the fleet's size
        _assert_same_model(fleet.fitted[name], alone.fitted[name], data[name])


def test_detectors_without_a_batched_loop_fit_one_at_a_time():
    assert not supports_fleet(PCADetector())
    assert not supports_fleet(TCNForecasterDetector(dropout=0.1))
    assert supports_fleet(WINDOWED) and supports_fleet(SEQUENCE)
    data = {"a": _series(0, 100), "short": _series(1, 1)}
    fleet = fit_fleet(PCADetector(n_components=1), data)
    assert list(fleet.fitted) == ["a"] and fleet.batched == []
    np.testing.assert_allclose(
        fleet.fitted["a"].score_samples(data["a"]), PCADetector(n_components=1).fit(data["a"]).score_samples(data["a"])
    )
    assert fleet.reasons["short"].startswith("short: ")


def test_fleet_pipelines_equal_one_at_a_time_pipelines(tmp_path):
    data = {"a": _series(0, 300), "b": _series(1, 260), "empty": np.empty((0, 3))}
    template = Pipeline(WINDOWED, smoothing=3)
    fleet = fit_pipelines(template, data)
    assert list(fleet.fitted) == ["a", "b"] and fleet.batched == ["a", "b"]
    assert fleet.reasons["empty"].startswith("empty: ")
    for name in ("a", "b"):
        single = Pipeline(WINDOWED, smoothing=3).fit(data[name])
        pipe = fleet.fitted[name]
        assert pipe.threshold_ == pytest.approx(single.threshold_, rel=1e-4)
        np.testing.assert_allclose(pipe.score_samples(data[name]), single.score_samples(data[name]), rtol=1e-4)
        # Each member saves to its own directory and loads as an ordinary pipeline.
        loaded = Pipeline.load(pipe.save(tmp_path / name))
        np.testing.assert_array_equal(loaded.predict(data[name]), pipe.predict(data[name]))
    # The template is left unfitted, as Pipeline.fit leaves its detector argument.
    assert not hasattr(template, "detector_")


def test_evaluating_parts_as_a_fleet_gives_the_same_figures():
    from vigil.evaluation.runner import EvaluationPart, evaluate_parts

    parts = []
    for i in range(3):
        X = _series(10 + i, 500)
        y = np.zeros(200, dtype=bool)
        y[120:150] = True
        test = X[300:].copy()
        test[120:150, 1] += 3.0
        parts.append(EvaluationPart(f"part-{i}", X[:300], test, y))

    def make():
        return Pipeline(SEQUENCE)

    fleet = evaluate_parts(parts, make, progress=False, fleet=True)
    alone = evaluate_parts(parts, make, progress=False)
    assert fleet["fleet_parts"] == 3 and "fleet_parts" not in alone
    for key in ("f1", "far", "mar", "tp", "fp", "fn", "tn"):
        assert fleet[key] == alone[key], key
    for name in alone["per_part"]:
        assert fleet["per_part"][name]["threshold"] == pytest.approx(alone["per_part"][name]["threshold"], rel=1e-4)
    # A detector without a batched loop is evaluated part by part.
    assert evaluate_parts(parts, lambda: Pipeline(PCADetector()), progress=False, fleet=True)["fleet_parts"] == 0


@pytest.mark.parametrize("template", [WINDOWED, SEQUENCE], ids=["windowed", "sequence"])
def test_batched_scoring_equals_each_pipeline_scoring_alone(template):
    from vigil.fleet import score_pipelines

    fleet = fit_pipelines(Pipeline(template, smoothing=2), {"a": _series(0, 260), "b": _series(1, 200)})
    test = {"a": _series(5, 300), "b": _series(6, 90), "bad": _series(7, 50)}
    test["bad"][3, 0] = np.inf
    pipelines = {**fleet.fitted, "bad": fleet.fitted["a"]}
    scored = score_pipelines(pipelines, test)
    assert list(scored.scores) == ["a", "b"] and list(scored.failed) == ["bad"]
    assert str(scored.failed["bad"]).startswith("bad: ")
    for name in ("a", "b"):
        np.testing.assert_allclose(scored.scores[name], pipelines[name].score_samples(test[name]), rtol=1e-5)


def test_long_whole_series_members_train_one_at_a_time():
    # Past a few thousand rows a full-batch step is bound by arithmetic, where the fleet is slower.
    template = SEQUENCE.clone().set_params(epochs=3)
    data = {"long": _series(0, 6000), "short": _series(1, 200)}
    fleet = fit_fleet(template, data)
    assert list(fleet.fitted) == ["long", "short"] and fleet.batched == ["short"]
    _assert_same_model(fleet.fitted["long"], template.clone().fit(data["long"]), data["long"])
