"""Text columns: one-hot encoded with the categories learned in training and an ``<other>`` bucket."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.cli import main
from vigil.data.tables import read_table
from vigil.detectors.pca import PCADetector
from vigil.errors import InvalidInputError, SchemaError
from vigil.features.categorical import OTHER, CategoryEncoder, detect_categorical
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry


def flows(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    proto = rng.choice(["tcp", "udp"], n, p=[0.8, 0.2])
    size = np.where(proto == "tcp", 1500.0, 80.0) + rng.normal(0, 5, n)
    return pd.DataFrame({"bytes": size, "dur": rng.exponential(1, n), "proto": proto})


@given(
    train=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=40),
    later=st.lists(st.text(min_size=1, max_size=3).filter(str.strip), min_size=1, max_size=20),
    limit=st.integers(1, 4),
)
@settings(max_examples=60, deadline=None)
def test_every_row_lands_in_exactly_one_column_of_its_block(train, later, limit) -> None:
    encoder = CategoryEncoder(["c"], max_categories=limit).fit(pd.DataFrame({"c": train}))
    assert len(encoder.categories_["c"]) == min(limit, len(set(train)))
    encoded = encoder.transform(pd.DataFrame({"c": later}))
    assert (encoded.sum(axis=1) == 1.0).all()
    other = encoded[f"c={OTHER}"].to_numpy() == 1.0
    assert list(other) == [text.strip() not in encoder.categories_["c"] for text in later]


def test_the_most_frequent_categories_are_kept_and_the_rest_share_the_bucket() -> None:
    frame = pd.DataFrame({"c": ["x"] * 5 + ["y"] * 3 + ["z"]})
    encoder = CategoryEncoder(["c"], max_categories=2).fit(frame)
    assert encoder.categories_ == {"c": ["x", "y"]}
    assert encoder.transform(pd.DataFrame({"c": ["z", "new"]}))[f"c={OTHER}"].tolist() == [1.0, 1.0]


def test_an_empty_cell_is_refused_with_its_row_and_column() -> None:
    with pytest.raises(InvalidInputError, match=r"row 1, column 'c'\] is empty"):
        CategoryEncoder(["c"]).fit(pd.DataFrame({"c": ["a", " "]}))


def test_detection_takes_text_columns_but_not_a_numeric_column_with_a_typo() -> None:
    frame = pd.DataFrame({"n": ["1", "2", "oops", "4"], "proto": ["tcp", "udp", "tcp", "tcp"], "id": list("abcd")})
    assert detect_categorical(frame, max_categories=3) == ["proto"]


def test_a_pipeline_learns_categories_scores_an_unseen_one_and_survives_a_save(tmp_path) -> None:
    train = flows()
    pipe = Pipeline(PCADetector(n_components=2), categorical=["proto"]).fit(train)
    assert pipe.feature_names_in_ == ["bytes", "dur", "proto"]
    assert pipe.feature_names_out_ == ["bytes", "dur", "proto=tcp", "proto=udp", f"proto={OTHER}"]
    test = flows(50, seed=1)
    test.loc[10, "proto"] = "udp"  # a tcp-sized flow labelled udp: the coupling the model learned breaks
    test.loc[10, "bytes"] = 1500.0
    scores = pipe.score_samples(test)
    assert scores[10] > pipe.threshold_ > np.median(scores)
    named = [name for name, _ in pipe.explain(test.iloc[[10]], top_k=3)[0]]
    assert any(name.startswith("proto=") for name in named), named  # explanations name the encoded columns
    loaded = Pipeline.load(pipe.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.score_samples(test), scores)
    assert loaded.version_ == pipe.version_
    with pytest.raises(SchemaError, match=r"missing \['proto'\]"):
        loaded.score_samples(test.drop(columns="proto"))


def test_the_service_refuses_a_model_that_needs_text_readings(tmp_path) -> None:
    pipe = Pipeline(PCADetector(n_components=2), categorical=["proto"]).fit(flows())
    with pytest.raises(InvalidInputError, match="scores files"):
        ModelRegistry(tmp_path / "registry").add("flows", pipe)


def test_read_table_keeps_named_text_columns_and_names_an_empty_cell(tmp_path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text("bytes,proto\n10,tcp\n20, udp \n")
    table = read_table(path, categorical="auto")
    assert table.categorical == ("proto",) and table.X["proto"].tolist() == ["tcp", "udp"]
    path.write_text("bytes,proto\n10,tcp\n20,\n")
    with pytest.raises(InvalidInputError, match=r"line 3, column 'proto' is empty"):
        read_table(path, categorical=["proto"])


def test_the_cli_announces_the_encoding_and_none_refuses_text(tmp_path, capsys) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    flows().to_csv(train, index=False)
    odd = flows(100, seed=2)
    odd.loc[50:59, "proto"] = "icmp"
    odd.to_csv(test, index=False)
    model, scores = tmp_path / "model", tmp_path / "scores.csv"
    assert main(["fit", str(train), "--detector", "pca", "-o", str(model)]) == 0
    assert "one-hot encoding the text columns proto" in capsys.readouterr().err
    assert main(["score", str(model), str(test), "-o", str(scores)]) == 0
    out = pd.read_csv(scores)
    assert out.loc[50:59, "top_features"].str.contains(f"proto={OTHER}").all()
    assert main(["fit", str(train), "--detector", "pca", "--categorical", "none", "-o", str(model)]) == 2
    assert "column 'proto' is not a number" in capsys.readouterr().err


def test_auto_selection_judges_the_encoded_numbers_and_keeps_the_encoding() -> None:
    from vigil.tuning.auto import AutoPipeline, Candidate

    pipe = AutoPipeline(candidates=[Candidate("pca", "pca"), Candidate("mahalanobis", "mahalanobis")], draws=2)
    pipe.categorical = ("proto",)
    pipe.fit(flows())
    assert pipe.feature_names_out_[-1] == f"proto={OTHER}"
    assert np.isfinite(pipe.score_samples(flows(20, seed=3))).all()
