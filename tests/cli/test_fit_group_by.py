"""`vigil fit --group-by asset`: one model per asset, trained as one fleet, each active in the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.cli import main
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry

pytest.importorskip("torch")


def _long_table(path, assets: dict[str, int]) -> pd.DataFrame:
    """Rows of several assets interleaved, sharing timestamps (each asset is its own series)."""
    frames = []
    for k, (name, n) in enumerate(assets.items()):
        t = np.arange(n)
        rng = np.random.default_rng(k)
        frames.append(
            pd.DataFrame(
                {
                    "time": pd.Timestamp("2026-01-05") + pd.to_timedelta(t, unit="s"),
                    "asset": name,
                    "temp": np.sin(t / 7 + k) + 0.05 * rng.normal(size=n),
                    "rpm": np.cos(t / 5) + 0.05 * rng.normal(size=n),
                }
            )
        )
    table = pd.concat(frames).sort_values(["time", "asset"], kind="stable")
    table.to_csv(path, index=False)
    return table


def test_fit_group_by_writes_one_active_model_per_asset_and_names_the_skipped(tmp_path, capsys):
    data = tmp_path / "plant.csv"
    table = _long_table(data, {"pump-1": 200, "pump-2": 160, "tiny": 6})
    registry = tmp_path / "registry"
    argv = [
        "fit",
        str(data),
        "--time",
        "time",
        "--group-by",
        "asset",
        "--detector",
        "tcn-sequence",
        "-o",
        str(registry),
    ]
    params = ["--param", "window=6", "--param", "filters=4", "--param", "epochs=4"]
    assert main([*argv, *params]) == 0
    captured = capsys.readouterr()
    assert "for 2 of 3 asset values (2 trained as one fleet)" in captured.out
    assert "skipped tiny: " in captured.err and "needs at least" in captured.err
    reg = ModelRegistry(registry)
    assert reg.names() == ["pump-1", "pump-2"]
    for name in reg.names():
        pipe = reg.load(name)
        assert pipe.feature_names_in_ == ["temp", "rpm"]
        rows = table.loc[table["asset"] == name, ["temp", "rpm"]].reset_index(drop=True)
        alone = Pipeline(pipe.detector.clone()).fit(rows)  # the same settings fitted on that asset alone
        np.testing.assert_allclose(pipe.score_samples(rows), alone.score_samples(rows), rtol=1e-4)


def test_fit_group_by_refuses_a_table_where_no_asset_can_be_fitted(tmp_path, capsys):
    data = tmp_path / "plant.csv"
    _long_table(data, {"a": 5, "b": 5})
    argv = ["fit", str(data), "--time", "time", "--group-by", "asset", "--detector", "tcn-sequence"]
    assert main([*argv, "-o", str(tmp_path / "registry")]) == 2
    assert "no asset could be fitted" in capsys.readouterr().err


def test_an_asset_whose_times_go_back_is_named(tmp_path, capsys):
    data = tmp_path / "plant.csv"
    table = _long_table(data, {"a": 40, "b": 40})
    rows = table.to_dict("records")
    rows[10]["time"], rows[12]["time"] = rows[12]["time"], rows[10]["time"]  # asset a's times swap
    pd.DataFrame(rows).to_csv(data, index=False)
    argv = ["fit", str(data), "--time", "time", "--group-by", "asset", "--detector", "pca"]
    assert main([*argv, "-o", str(tmp_path / "registry")]) == 2
    assert "earlier than" in capsys.readouterr().err
