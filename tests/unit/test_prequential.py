from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.detectors.pca import PCADetector
from vigil.errors import InvalidInputError
from vigil.evaluation.prequential import prequential
from vigil.pipeline import Pipeline


def _plant(n=6000, change_at=2500, seed=0):
    """Three coupled sensors; a new operating point from ``change_at``; two real faults after it."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 1))
    X = pd.DataFrame(np.hstack([t, t, -t]) + 0.1 * rng.normal(size=(n, 3)), columns=["flow", "current", "valve"])
    X.iloc[change_at:] += [3.0, 3.0, -3.0]  # a new product: every sensor moves, the coupling stays
    y = np.zeros(n, dtype=bool)
    for start in (4200, 5400):
        X.iloc[start : start + 60, 1] += 1.5  # current decouples from flow: a real fault
        y[start : start + 60] = True
    return X, y


def make():
    return Pipeline(PCADetector(n_components=1))


def test_adaptive_model_halves_false_alarms_after_a_regime_change_and_keeps_detecting_faults():
    X, y = _plant()
    result = prequential(X, y, make, initial_rows=2000, chunk=250, window=1500)
    assert result.adaptive["far"] <= result.static["far"] / 2
    assert result.adaptive["event_recall"] == 1.0
    assert any(u["updated"] for u in result.updates)


def test_guard_refuses_updates_on_a_window_full_of_confirmed_anomalies():
    X, _ = _plant(change_at=6000)
    y = np.zeros(len(X), dtype=bool)
    X.iloc[3000:4000, 1] += 3.0  # a long fault, confirmed by operators as it is alarmed
    y[3000:4000] = True
    result = prequential(X, y, make, initial_rows=2000, chunk=250, window=750, guard=0.5)
    refused = [u for u in result.updates if 3500 <= u["row"] <= 4000]
    assert refused and all(not u["updated"] for u in refused)
    assert all("guard" in u["reason"] for u in refused)
    # and the fault stays detected to its end: the model never learned it as normal
    flagged = result.adaptive_scores[3000 - 2000 : 4000 - 2000] > result.adaptive_thresholds[1000:2000]
    assert flagged.mean() > 0.9


def test_without_operator_feedback_the_guard_blocks_adaptation_to_a_change():
    X, y = _plant()
    result = prequential(X, y, make, initial_rows=2000, chunk=250, window=1500, feedback=False)
    # Unreviewed alarms never become training data, and once they fill the window updates are refused.
    late = [u for u in result.updates if u["row"] >= 4000]
    assert late and not any(u["updated"] for u in late)
    assert all("guard" in u["reason"] for u in late)
    assert result.adaptive["far"] >= 0.8 * result.static["far"]


def test_bad_initial_rows_is_rejected():
    X, y = _plant(n=500, change_at=400)
    with pytest.raises(InvalidInputError, match="initial_rows"):
        prequential(X, y, make, initial_rows=500)


def test_evaluate_stream_command_compares_static_and_adaptive(tmp_path, capsys):
    from vigil.cli import main

    X, y = _plant()
    frame = X.assign(label=y.astype(int))
    frame.iloc[:2000].to_csv(tmp_path / "before.csv", index=False)
    frame.iloc[2000:].to_csv(tmp_path / "after.csv", index=False)
    argv = ["evaluate", "--train", str(tmp_path / "before.csv"), "--test", str(tmp_path / "after.csv")]
    argv += ["--label", "label", "--detector", "pca", "--stream", "--chunk", "250", "--window", "1500", "--quiet"]
    assert main([*argv, "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "static" in out and "adaptive" in out and "updates" in out
    import json

    result = json.loads((tmp_path / "s.json").read_text())
    assert result["adaptive"]["far"] < result["static"]["far"] / 2
