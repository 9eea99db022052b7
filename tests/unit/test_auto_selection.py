"""``--detector auto``: selection on the training rows alone, recorded, deterministic and bounded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vigil.alarms.rules import ALARM_RULES, make_alarm_stage
from vigil.cli import main
from vigil.errors import InvalidInputError
from vigil.evaluation.runner import EvaluationPart, evaluate_parts
from vigil.pipeline import Pipeline
from vigil.tuning.auto import (
    CANDIDATES,
    OPTIONAL_CANDIDATES,
    TIE,
    AutoPipeline,
    Candidate,
    candidates_named,
    select_pipeline,
)

FAST = (
    Candidate("pca", "pca"),
    Candidate("mahalanobis", "mahalanobis"),
    Candidate("online-zscore", "online-zscore"),
)


def _plant(n: int = 900, seed: int = 0) -> pd.DataFrame:
    """Three coupled sensors: a fault that breaks the coupling is what the distance detectors see."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.normal(size=n)) * 0.05 + np.sin(np.arange(n) / 30)
    return pd.DataFrame(
        {"speed": t + 0.1 * rng.normal(size=n), "flow": 2 * t + 0.1 * rng.normal(size=n), "temp": rng.normal(size=n)}
    )


def _without_seconds(document: dict) -> dict:
    document = json.loads(json.dumps(document))
    document.pop("seconds")
    for row in document["ranking"]:
        row.pop("seconds")
    return document


def test_every_candidate_and_rule_is_ranked_and_the_choice_follows_the_stated_criterion():
    selection = select_pipeline(_plant(), candidates=FAST, seed=0)
    ranking = selection.ranking
    assert {(r["label"], r["alarm_rule"]) for r in ranking} == {(c.label, rule) for c in FAST for rule in ALARM_RULES}
    best = ranking[0]
    assert (selection.chosen.label, selection.alarm_rule) == (best["label"], best["alarm_rule"])
    top = max(r["f1"] for r in ranking)
    assert best["f1"] >= top - TIE  # no entry beats the choice by more than a tie
    tied = [r for r in ranking if r["f1"] >= top - TIE]
    assert best["false_alarms_per_1000_rows"] == min(r["false_alarms_per_1000_rows"] for r in tied)
    assert [r["rank"] for r in ranking] == list(range(1, len(ranking) + 1))
    assert selection.why.startswith(f"chose {best['label']} with the {best['alarm_rule']} alarm rule")
    record = selection.to_dict()
    assert "synthetic faults" in record["criterion"] and record["settings"]["training_rows"] == 900


def test_selection_is_deterministic_with_a_seed():
    first = select_pipeline(_plant(), candidates=FAST, seed=3).to_dict()
    second = select_pipeline(_plant(), candidates=FAST, seed=3).to_dict()
    assert _without_seconds(first) == _without_seconds(second)


def test_the_choice_never_depends_on_test_rows_or_labels():
    X = _plant(1500, seed=1)
    train, test = X.iloc[:900].reset_index(drop=True), X.iloc[900:].reset_index(drop=True)
    y = np.zeros(len(test), dtype=bool)
    y[200:260] = True
    rng = np.random.default_rng(0)

    def chosen(X_test, y_test):
        part = EvaluationPart("p", train, X_test, y_test)
        result = evaluate_parts([part], lambda: AutoPipeline(candidates=FAST, n_folds=2, draws=3), progress=False)
        return _without_seconds(result["per_part"]["p"]["selection"])

    reference = chosen(test, y)
    result = evaluate_parts([EvaluationPart("p", train, test, y)], lambda: AutoPipeline(candidates=FAST, draws=3))
    label = f"{reference['chosen']['label']} / {reference['chosen']['alarm_rule']}"
    assert result["auto_choices"] == {"p": label} and result["auto_choice_counts"] == {label: 1}
    assert chosen(test, rng.permutation(y)) == reference  # shuffled test labels
    assert chosen(test, np.zeros_like(y)) == reference  # no anomaly labelled at all
    assert chosen(test.iloc[::-1].reset_index(drop=True) * 3.0, y) == reference  # other test rows


def test_a_spent_budget_stops_further_candidates_and_says_so():
    selection = select_pipeline(_plant(), candidates=FAST, budget_seconds=0.0)
    assert {r["label"] for r in selection.ranking} == {"pca"}  # the first candidate always runs
    assert [s["label"] for s in selection.skipped] == ["mahalanobis", "online-zscore"]
    assert all("time budget" in s["reason"] for s in selection.skipped)


def test_the_default_list_is_short_and_fixed():
    assert 3 <= len(CANDIDATES) <= 8
    assert len({c.label for c in CANDIDATES}) == len(CANDIDATES)


def test_the_persistence_tcn_can_be_named_but_is_not_in_the_default_list():
    (chosen,) = candidates_named(["tcn-sequence-persistence-drift"])
    assert chosen in OPTIONAL_CANDIDATES and chosen not in CANDIDATES
    assert chosen.detector == "tcn-sequence"
    assert chosen.params == {"relative_drift": 1.0, "persistence": True}
    labels = [c.label for c in candidates_named(["tcn-sequence-persistence-drift", "pca"])]
    assert labels == ["pca", "tcn-sequence-persistence-drift"]


def test_unknown_detectors_and_unfit_configurations_are_skipped_with_a_reason():
    candidates = (
        *FAST[:1],
        Candidate("nothing", "no-such-detector"),
        Candidate("pca-bad", "pca", {"n_components": 50}),
    )
    selection = select_pipeline(_plant(), candidates=candidates)
    reasons = {s["label"]: s["reason"] for s in selection.skipped}
    assert "no-such-detector" in reasons["nothing"]
    assert {r["label"] for r in selection.ranking} <= {"pca", "pca-bad"}


def test_too_few_training_rows_are_refused_with_the_reason():
    with pytest.raises(InvalidInputError, match="auto selection cannot cut 8 training rows"):
        select_pipeline(_plant(8), candidates=FAST)


def test_a_given_alarm_stage_is_kept_and_only_the_detector_is_chosen():
    stage = make_alarm_stage("plain", on_delay=(2, 3))
    pipe = AutoPipeline(candidates=FAST, alarm=stage, draws=2).fit(_plant())
    assert {r["alarm_rule"] for r in pipe.selection_["ranking"]} == {"given"}
    assert pipe.alarm_.policy.on_delay == 2


def test_the_saved_model_records_the_selection_and_scores_like_the_fitted_one(tmp_path):
    X = _plant()
    pipe = AutoPipeline(candidates=FAST, draws=2).fit(X)
    assert pipe.detector_.name == pipe.selection_["chosen"]["detector"]
    loaded = Pipeline.load(pipe.save(tmp_path / "model"))
    assert loaded.selection_ == json.loads(json.dumps(pipe.selection_))
    np.testing.assert_allclose(loaded.score_samples(X), pipe.score_samples(X))
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["selection"]["why"] == pipe.selection_["why"]


@pytest.fixture
def train_csv(tmp_path):
    path = tmp_path / "train.csv"
    _plant(700).to_csv(path, index=False)
    return path


def test_fit_without_a_detector_selects_and_saves_why(train_csv, tmp_path, capsys):
    # A shorter list than the default (the deep candidates' fits would cost this test minutes).
    code = main(["fit", str(train_csv), "-o", str(tmp_path / "m"), "--quiet", "--candidates", "pca,mahalanobis"])
    assert code == 0
    out = capsys.readouterr().out
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert out.startswith("auto: chose ")
    assert f"fitted auto ({config['selection']['chosen']['label']}" in out
    assert {r["label"] for r in config["selection"]["ranking"]} == {"pca", "mahalanobis"}
    assert config["selection"]["chosen"]["alarm_rule"] in ALARM_RULES


def test_auto_refuses_parameters_it_chooses_itself(train_csv, tmp_path, capsys):
    code = main(["fit", str(train_csv), "-o", str(tmp_path / "m"), "--detector", "auto", "--param", "window=3"])
    assert code == 2
    assert "--detector auto chooses the detector's parameters itself" in capsys.readouterr().err


def test_detectors_lists_auto(capsys):
    assert main(["detectors"]) == 0
    assert any(line.startswith("auto ") for line in capsys.readouterr().out.splitlines())


def test_an_unknown_candidate_label_is_refused(train_csv, tmp_path, capsys):
    code = main(["fit", str(train_csv), "-o", str(tmp_path / "m"), "--candidates", "pca,gpt"])
    assert code == 2
    assert "unknown auto candidates ['gpt']" in capsys.readouterr().err


def test_evaluate_with_auto_prints_and_records_the_choice(tmp_path, capsys):
    X = _plant(1100)
    X["label"] = 0
    X.loc[950:990, "flow"] += 3.0
    X.loc[950:990, "label"] = 1
    path = tmp_path / "plant.csv"
    X.to_csv(path, index=False)
    out_json = tmp_path / "r.json"
    argv = ["evaluate", "--train", str(path), "--train-rows", "800", "--label", "label", "--detector", "auto"]
    assert main([*argv, "--candidates", "pca,mahalanobis", "--quiet", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    document = json.loads(out_json.read_text())
    assert "auto: chose " in printed
    assert document["selection"]["chosen"]["label"] in {"pca", "mahalanobis"}
    assert document["config"]["detector"] == "auto" and document["config"]["alarm"] == {"rule": "chosen"}
