"""``tune_with_ray``: the local search's objective and result shape, with trials run by Ray Tune."""

from __future__ import annotations

import numpy as np
import pytest
from scale_helpers import training_frame

from vigil.detectors.pca import PCADetector
from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline
from vigil.tuning.search import TrainingTable, cross_validate, fold_metrics
from vigil.tuning.spaces import search_space

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    # Ray Data's DataContext warns about its own deprecated fields when Tune creates it (Ray 2.60).
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
    # Ray Data's pandas blocks call reset_index(inplace=True), which pandas 3.1 deprecates.
    pytest.mark.filterwarnings("ignore:The inplace keyword:pandas.errors.Pandas4Warning"),
    # A finished function trainable repeats its last result (done=True, same iteration), which Ray's
    # OptunaSearch reports to Optuna a second time; Optuna ignores the repeat and says so.
    pytest.mark.filterwarnings("ignore:The reported value is ignored because this `step=:UserWarning"),
]


def make(params: dict) -> Pipeline:
    return Pipeline(PCADetector(**params))


def test_ray_trials_compute_the_local_objective(ray_local) -> None:
    pytest.importorskip("optuna", reason="tuning needs Optuna: pip install 'vigil[tune]'")
    from vigil.scale.ray_tuning import tune_with_ray

    def make(params: dict) -> Pipeline:  # local, so Ray workers get it by value (they cannot import tests)
        return Pipeline(PCADetector(**params))

    tables = [TrainingTable("a", training_frame(400, seed=1)), TrainingTable("b", training_frame(400, seed=2))]
    result = tune_with_ray(make, search_space("pca"), tables, n_trials=4, n_folds=2, seed=3, progress=False)
    default = cross_validate(lambda: make({}), tables, n_folds=2, seed=3)
    assert result.default_value == pytest.approx(default["f1"])
    assert result.n_trials == len(result.trials) == 4
    assert result.best_value >= result.default_value
    complete = [t for t in result.trials if t["state"] == "COMPLETE"]
    assert complete, result.trials
    for trial in complete:
        assert 0.5 <= trial["params"]["n_components"] <= 0.999
        expected = []
        for table in tables:
            folds = fold_metrics(lambda p=trial["params"]: make(p), table, 2, 0, 3)
            f1, far = np.mean([m["f1"] for m in folds]), np.mean([m["far"] for m in folds])
            expected.append(f1 - max(0.0, far - default["far"]))
        assert trial["value"] == pytest.approx(float(np.mean(expected)))
    if result.best_params:
        assert result.best_value == max(t["value"] for t in complete)


def test_bad_arguments_are_refused_before_ray_starts() -> None:
    from vigil.scale.ray_tuning import tune_with_ray

    with pytest.raises(InvalidInputError, match="at least one training table"):
        tune_with_ray(make, search_space("pca"), [], n_trials=2)
    with pytest.raises(InvalidInputError, match="positive integer"):
        tune_with_ray(make, search_space("pca"), [TrainingTable("a", training_frame(50))], n_trials=0)
