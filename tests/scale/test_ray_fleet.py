"""``fit_groups_with_ray``: per-asset models dealt to Ray tasks, one fleet per task, each as it would be alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.cli import main
from vigil.detectors.forecasters import TCNForecasterDetector
from vigil.fleet import fit_groups
from vigil.pipeline import Pipeline
from vigil.scale.ray_fleet import deal
from vigil.streaming.model_registry import ModelRegistry

pytestmark = [pytest.mark.ray, pytest.mark.torch, pytest.mark.slow]

pytest.importorskip("torch")


def plant(sizes: dict[str, int]) -> tuple[pd.DataFrame, np.ndarray]:
    frames, groups = [], []
    for k, (name, n) in enumerate(sizes.items()):
        t = np.arange(n) / 5
        rng = np.random.default_rng(k)
        frames.append(pd.DataFrame({"temp": np.sin(t + k) + 0.05 * rng.normal(size=n), "rpm": np.cos(t)}))
        groups += [name] * n
    return pd.concat(frames, ignore_index=True), np.array(groups)


def test_assets_fitted_on_ray_tasks_equal_the_local_fleet(ray_local, tmp_path) -> None:
    from vigil.scale.ray_fleet import fit_groups_with_ray

    X, groups = plant({"pump-1": 240, "pump-2": 200, "pump-3": 180, "fan-1": 220, "tiny": 5})
    template = Pipeline(TCNForecasterDetector(window=8, filters=4, epochs=3, random_state=0))
    on_ray = fit_groups_with_ray(X, groups, template, workers=2)
    local = fit_groups(X, groups, template)
    assert list(on_ray.fitted) == list(local.fitted) == ["pump-1", "pump-2", "pump-3", "fan-1"]
    for name, pipe in on_ray.fitted.items():  # the same model, to float rounding (a stack's size orders sums)
        rows = X.loc[groups == name]
        np.testing.assert_allclose(pipe.score_samples(rows), local.fitted[name].score_samples(rows), rtol=1e-4)
        assert pipe.threshold_ == pytest.approx(local.fitted[name].threshold_, rel=1e-4)
    assert sorted(on_ray.batched) == sorted(local.batched)
    assert list(on_ray.reasons) == ["tiny"] and on_ray.reasons["tiny"].startswith("tiny: ")

    table = X.assign(asset=groups, time=np.concatenate([np.arange((groups == g).sum()) for g in dict.fromkeys(groups)]))
    table.sort_values(["time", "asset"], kind="stable").to_csv(tmp_path / "plant.csv", index=False)
    argv = ["fit", str(tmp_path / "plant.csv"), "--time", "time", "--group-by", "asset", "--detector", "tcn-forecaster"]
    params = ["--param", "window=8", "--param", "filters=4", "--param", "epochs=3"]
    assert main([*argv, *params, "--ray", "--workers", "2", "-o", str(tmp_path / "registry")]) == 0
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.names() == ["fan-1", "pump-1", "pump-2", "pump-3"]


def test_deal_balances_rows_and_leaves_no_chunk_empty() -> None:
    assert deal({"a": 10}, 4) == [["a"]]
    chunks = deal({f"m{i}": 100 + i for i in range(9)}, 3)
    assert sorted(n for chunk in chunks for n in chunk) == sorted(f"m{i}" for i in range(9))
    assert [len(c) for c in chunks] == [3, 3, 3]
