"""``fit_with_ray``: a deep detector trained data-parallel (Ray Train, DDP) from a Parquet archive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scale_helpers import SENSORS, training_frame

from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline

pytestmark = [
    pytest.mark.ray,
    pytest.mark.torch,
    pytest.mark.slow,
    # Ray Data's DataContext warns about its own deprecated fields when it is created (Ray 2.60).
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
    # Ray Data's pandas blocks call reset_index(inplace=True), which pandas 3.1 deprecates.
    pytest.mark.filterwarnings("ignore:The inplace keyword:pandas.errors.Pandas4Warning"),
]


def write_days(root: Path, days: int, rows: int) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames = []
    for day in range(days):
        frame = training_frame(rows, seed=10 + day)
        target = root / f"day=2024-05-{day + 1:02d}"
        target.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), target / "part-0.parquet")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_distributed_fit_gives_a_working_saved_pipeline(ray_local, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="deep detectors need PyTorch: pip install 'vigil[deep]'")
    from vigil.detectors.autoencoders import AutoencoderDetector
    from vigil.scale.ray_training import fit_with_ray

    data = write_days(tmp_path / "archive", days=4, rows=800)

    def make() -> Pipeline:
        return Pipeline(AutoencoderDetector(latent=1, epochs=3, learning_rate=1e-2, random_state=0), holdout=0.25)

    pipe = fit_with_ray(make, tmp_path / "archive", SENSORS, workers=2, batch_rows=400, progress=False)
    train_rows = data.iloc[: 3 * 800]
    np.testing.assert_allclose(pipe.scaler_.center_, train_rows.mean().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(pipe.scaler_.scale_, train_rows.std(ddof=0).to_numpy(), rtol=1e-9)
    assert pipe.detector_.epochs_trained_ == 3 == len(pipe.detector_.validation_loss_)
    assert np.isfinite(pipe.threshold_) and pipe.threshold_ > 0

    fresh = training_frame(2000, seed=99)
    faulty = fresh.copy()
    faulty["temp"] += 3.0
    assert (pipe.score_samples(fresh) > pipe.threshold_).mean() < 0.05  # false alarms near the 1 % target
    assert (pipe.score_samples(faulty) > pipe.threshold_).mean() > 0.9  # the broken correlation is found
    loaded = Pipeline.load(pipe.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.score_samples(fresh), pipe.score_samples(fresh))
    assert loaded.version_ == pipe.version_ and type(loaded.detector_) is AutoencoderDetector


def test_refusals_before_training(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="deep detectors need PyTorch: pip install 'vigil[deep]'")
    from vigil.detectors.autoencoders import AutoencoderDetector
    from vigil.detectors.pca import PCADetector
    from vigil.scale.ray_training import fit_with_ray

    write_days(tmp_path / "one", days=1, rows=50)
    with pytest.raises(InvalidInputError, match="PyTorch detectors"):
        fit_with_ray(lambda: Pipeline(PCADetector()), tmp_path / "one", SENSORS)
    with pytest.raises(InvalidInputError, match="exact quantiles"):
        fit_with_ray(lambda: Pipeline(AutoencoderDetector(), scaler="robust"), tmp_path / "one", SENSORS)
    with pytest.raises(InvalidInputError, match="at least two are needed"):
        fit_with_ray(lambda: Pipeline(AutoencoderDetector()), tmp_path / "one", SENSORS)
