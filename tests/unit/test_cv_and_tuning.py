from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.cli import main
from vigil.errors import InvalidInputError
from vigil.evaluation.cv import forward_chaining_folds, shuffled_folds
from vigil.evaluation.injection import inject_anomalies
from vigil.pipeline import Pipeline
from vigil.registry import make_detector
from vigil.tuning.search import TrainingTable, cross_validate, tune
from vigil.tuning.spaces import SEARCH_SPACES, search_space, split_params


@settings(max_examples=100, deadline=None)
@given(n_rows=st.integers(30, 2000), n_folds=st.integers(2, 6), gap=st.integers(0, 5))
def test_forward_chaining_folds_never_overlap_and_respect_time(n_rows, n_folds, gap):
    try:
        folds = forward_chaining_folds(n_rows, n_folds, gap=gap)
    except InvalidInputError:
        return
    assert len(folds) == n_folds
    seen_validation = set()
    for fold in folds:
        assert fold.train.max() + gap < fold.validation.min()  # past only, with the gap
        assert not set(fold.train) & set(fold.validation)
        assert not seen_validation & set(fold.validation)  # validation blocks are disjoint
        seen_validation |= set(fold.validation)
        assert fold.validation.max() < n_rows
        assert np.all(np.diff(fold.validation) == 1)  # a contiguous block


def test_shuffled_folds_partition_the_rows():
    folds = shuffled_folds(23, 4, random_state=1)
    validation = np.concatenate([f.validation for f in folds])
    assert sorted(validation.tolist()) == list(range(23))
    for f in folds:
        assert not set(f.train) & set(f.validation)


def test_injected_faults_leave_normal_rows_untouched_and_are_labelled():
    X = np.random.default_rng(0).normal(size=(1000, 4))
    faulty, labels = inject_anomalies(X, n_events=5, random_state=3)
    assert np.array_equal(faulty[~labels], X[~labels])
    starts = np.flatnonzero(np.diff(np.r_[0, labels.astype(int)]) == 1)
    assert len(starts) == 5
    with pytest.raises(InvalidInputError, match="cannot hold"):
        inject_anomalies(X[:50], n_events=5)
    with pytest.raises(InvalidInputError, match="unknown fault kinds"):
        inject_anomalies(X, kinds=("meteor",))


def _table(seed=0, n=900):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 2))
    X = np.hstack([t, t @ [[1.0], [0.5]], t @ [[-0.5], [1.0]]]) + 0.05 * rng.normal(size=(n, 4))
    return pd.DataFrame(X, columns=["a", "b", "c", "d"])


def test_a_tiny_study_runs_end_to_end_and_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    tables = [TrainingTable("t", _table())]

    def make(p):
        return Pipeline(make_detector("pca", **p))

    first = tune(make, search_space("pca"), tables, n_trials=4, storage=storage, study_name="s", progress=False)
    assert first.n_trials == 4
    assert first.best_value >= first.default_value
    resumed = tune(make, search_space("pca"), tables, n_trials=6, storage=storage, study_name="s", progress=False)
    assert resumed.n_trials == 6  # two more trials, not six
    assert all(t["state"] in {"COMPLETE", "PRUNED"} for t in resumed.trials)


def test_long_validation_blocks_get_faults_that_fit():
    # Folds of several thousand rows (an SMD machine) once asked for faults longer than their share.
    result = cross_validate(lambda: Pipeline(make_detector("pca")), [TrainingTable("long", _table(2, 16_000))])
    assert 0.0 < result["f1"] <= 1.0 and 0.0 <= result["far"] < 0.5


def test_a_configuration_the_folds_cannot_fit_is_pruned_with_its_reason_and_the_search_goes_on():
    tables = [TrainingTable("t", _table())]

    def space(trial):  # 50 components of 4 features cannot be fitted
        return {"n_components": trial.suggest_categorical("n_components", [1, 2, 50])}

    result = tune(lambda p: Pipeline(make_detector("pca", **p)), space, tables, n_trials=8, progress=False)
    refused = [t for t in result.trials if "refused" in t]
    assert refused and all(t["state"] == "PRUNED" and t["params"] == {"n_components": 50} for t in refused)
    assert "n_components=50" in refused[0]["refused"]
    assert any(t["state"] == "COMPLETE" for t in result.trials)
    assert result.best_params.get("n_components", 1) in (1, 2)


def test_tune_command_prints_before_and_after_and_saves_a_model(tmp_path, capsys):
    frame = _table(1, 1200)
    frame["label"] = 0
    frame.iloc[:900].to_csv(tmp_path / "train.csv", index=False)
    test = frame.iloc[900:].copy()
    test.loc[test.index[100:130], "c"] += 1.5
    test.loc[test.index[100:130], "label"] = 1
    test.to_csv(tmp_path / "test.csv", index=False)
    argv = ["tune", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"), "--label", "label"]
    out_json = tmp_path / "tune.json"
    argv += ["--detector", "pca", "--trials", "3", "--quiet", "-o", str(tmp_path / "model"), "--json", str(out_json)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "detection rate" in out and "default" in out and "tuned" in out and "test data" in out
    result = json.loads(out_json.read_text())
    assert [row["model"] for row in result["comparison"]] == ["default", "tuned"]
    assert (tmp_path / "model" / "config.json").is_file()


@pytest.mark.parametrize("name", sorted(SEARCH_SPACES))
def test_every_search_space_samples_valid_detector_and_pipeline_parameters(name):
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        pipe_params, detector_params = split_params(search_space(name)(study.ask()))
        make_detector(name, **detector_params)._validate_params()  # raises on an out-of-range value
        pipe = Pipeline(make_detector(name), **pipe_params)
        assert pipe.smoothing >= 1 and pipe.calibrate in {"smoothed", "raw"}


def test_unknown_search_space_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="no search space"):
        search_space("no-such-detector")


def test_evaluate_cv_reports_every_fold_and_mean_and_std(tmp_path, capsys):
    frame = _table(2, 1600)
    frame["label"] = 0
    for start in (500, 900, 1300):
        frame.loc[start : start + 30, "c"] += 2.0
        frame.loc[start : start + 30, "label"] = 1
    frame.to_csv(tmp_path / "plant.csv", index=False)
    argv = ["evaluate", "--train", str(tmp_path / "plant.csv"), "--label", "label", "--detector", "pca"]
    assert main([*argv, "--cv", "3", "--gap", "20", "--json", str(tmp_path / "cv.json"), "--quiet"]) == 0
    out = capsys.readouterr()
    assert "3 forward-chaining (gap 20 rows) folds" in out.out and "mean ± std" in out.out
    result = json.loads((tmp_path / "cv.json").read_text())
    assert [f["fold"] for f in result["per_fold"]] == [0, 1, 2]
    assert all(f["train_rows"] < f["rows"] * 4 for f in result["per_fold"])
    assert result["mean"]["recall"] > 0.8 and "f1" in result["std"]
    assert main([*argv, "--cv", "3", "--shuffle", "--quiet"]) == 0
    assert "independent records" in capsys.readouterr().err
    assert main([*argv, "--cv", "3", "--train-rows", "100", "--quiet"]) == 2
