"""NSL-KDD on stratified samples: the supervised MLP beats a trivial baseline in seconds; the bench JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vigil.network.nsl_kdd import load_nsl_kdd, sample_rows

pytestmark = [pytest.mark.data, pytest.mark.torch]


def test_mlp_beats_majority_baseline_on_a_small_sample(data_dir: Path) -> None:
    pytest.importorskip("torch")
    from vigil.network.bench import _encoder
    from vigil.network.classifier import FlowClassifier

    split = load_nsl_kdd(data_dir)
    rng = np.random.default_rng(0)
    train = sample_rows(split.train, 4000, rng)
    test = sample_rows(split.test, 3000, rng)
    encoder = _encoder(train)
    clf = FlowClassifier(hidden=(64, 32), epochs=15, batch_size=128, random_state=0, n_threads=1)
    clf.fit(encoder.transform(train.features), train.y, train.category)
    accuracy = float((clf.predict(encoder.transform(test.features)) == test.y).mean())
    majority = max(test.y.mean(), 1 - test.y.mean())
    assert accuracy > majority + 0.15, (accuracy, majority)


def test_bench_json_has_the_promised_fields(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from vigil.network.bench import run_network_bench

    out = tmp_path / "nsl.json"
    result = run_network_bench(
        "nsl-kdd",
        "mlp",
        data_dir=data_dir,
        json_path=out,
        params={"hidden": [32], "epochs": 5, "batch_size": 256},
        train_rows=3000,
        quiet=True,
    )
    document = json.loads(out.read_text())
    assert document == result
    for key in (
        "dataset", "detector", "protocol", "accuracy", "precision", "recall", "f1", "far", "roc_auc",
        "per_category_recall", "accuracy_test21", "fit_seconds", "score_seconds", "unseen_attack_recall",
    ):  # fmt: skip
        assert key in document, key
    assert set(document["per_category_recall"]) == {"DoS", "Probe", "R2L", "U2R"}
    per_attack = document["test"]["per_attack_recall"]
    assert document["test"]["unseen_attack_types"] >= 17
    assert per_attack["mscan"]["seen_in_training"] is False
    assert document["test"]["rows"] == 22544 and document["test21"]["rows"] == 11850
