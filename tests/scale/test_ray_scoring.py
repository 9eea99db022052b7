"""Scoring a partitioned Parquet archive with Ray Data and an actor pool, on a local Ray instance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scale_helpers import SENSORS, WEIGHTS

from vigil.errors import InvalidInputError, SchemaError
from vigil.pipeline import Pipeline

pytestmark = [
    pytest.mark.ray,
    # Ray Data's DataContext sets its own deprecated fields when it is created (Ray 2.60), warning about each
    # of them from ray.data.context; Vigil sets none of them.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
    # Ray Data's pandas blocks call reset_index(inplace=True), which pandas 3.1 deprecates.
    pytest.mark.filterwarnings("ignore:The inplace keyword:pandas.errors.Pandas4Warning"),
]


def write_archive(root: Path, *, n_per_file: int = 500, nan_in: str | None = None) -> pd.DataFrame:
    """Hive-partitioned archive: plant=*/day=*/part.parquet, 3 devices per file, a fault in one device."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    frames = []
    for plant in ("north", "south"):
        for day in ("2024-05-01", "2024-05-02"):
            load = rng.normal(size=(n_per_file, 1))
            values = load @ WEIGHTS[None, :] + 0.05 * rng.normal(size=(n_per_file, len(SENSORS)))
            frame = pd.DataFrame(values, columns=SENSORS)
            frame.insert(0, "device", [f"{plant}-{i % 3}" for i in range(n_per_file)])
            frame.insert(0, "time", pd.date_range(day, periods=n_per_file, freq="s", tz="UTC"))
            if plant == "south" and day == "2024-05-02":
                frame.loc[100:119, "temp"] += 3.0
            if nan_in == f"{plant}/{day}":
                frame.loc[7, "flow"] = np.nan
            target = root / f"plant={plant}" / f"day={day}"
            target.mkdir(parents=True)
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), target / "part-0.parquet")
            frames.append(frame.assign(plant=plant, day=day))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, fitted: Pipeline) -> Path:
    return fitted.save(tmp_path_factory.mktemp("model") / "pca")


def read_output(path: Path) -> pd.DataFrame:
    import pyarrow.dataset as ds

    return ds.dataset(str(path), format="parquet").to_table().to_pandas()


def test_ray_scores_match_local_scoring(ray_local, model_dir: Path, fitted: Pipeline, tmp_path: Path) -> None:
    from vigil.scale.ray_scoring import score_archive_with_ray

    data = write_archive(tmp_path / "archive")
    result = score_archive_with_ray(
        model_dir, tmp_path / "archive", tmp_path / "alerts.parquet", workers=2, batch_size=300, progress=False
    )
    expected = fitted.score_samples(data[SENSORS])
    flagged = expected > fitted.threshold_
    assert result["rows"] == len(data) and result["files"] == 4 and result["workers"] == 2
    assert result["anomalies"] == int(flagged.sum()) >= 20
    out = read_output(tmp_path / "alerts.parquet")
    assert len(out) == result["anomalies"] and out["anomaly"].all()
    assert set(out.columns) >= {"time", "device", "plant", "day", "source_file", "score", "threshold", "top_features"}
    key = ["device", "time"]
    local = data.assign(score=expected)[flagged][[*key, "score"]]
    merged = out.merge(local, on=key, suffixes=("", "_local"), validate="one_to_one")
    assert len(merged) == len(out)
    np.testing.assert_allclose(merged["score"], merged["score_local"], rtol=1e-12)
    assert merged["top_features"].str.startswith("temp=").mean() > 0.9  # the faulty sensor leads
    assert (out["plant"] == "south").all() and (out["day"] == "2024-05-02").mean() > 0.9


def test_the_actor_callable_keeps_all_rows_or_anomalies(model_dir: Path, fitted: Pipeline, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="needs pyarrow: pip install 'vigil[scale]'")
    from vigil.scale.ray_scoring import ArchiveScorer, read_model_files

    data = write_archive(tmp_path / "archive", n_per_file=200)
    batch = pa.Table.from_pandas(data.assign(source_file="f.parquet"), preserve_index=False)
    files = read_model_files(model_dir)
    everything = ArchiveScorer(files, passthrough=["device", "time", "source_file"], keep="all")(batch)
    anomalies = ArchiveScorer(files, passthrough=["device"], keep="anomalies")(batch)
    scores = fitted.score_samples(data[SENSORS])
    np.testing.assert_allclose(everything.column("score").to_numpy(), scores, rtol=1e-12)
    assert everything.column_names == ["device", "time", "source_file", "score", "threshold", "anomaly", "top_features"]
    flagged = everything.column("anomaly").to_numpy(zero_copy_only=False)
    assert anomalies.num_rows == int(flagged.sum()) == int((scores > fitted.threshold_).sum()) > 0
    described = everything.column("top_features").to_pylist()
    assert all((text != "") == bool(flag) for text, flag in zip(described, flagged, strict=True))


# Cancelling the job makes Ray Data's own completion thread raise InterruptedError on its way out.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_bad_readings_stop_with_the_file_named(ray_local, model_dir: Path, tmp_path: Path) -> None:
    from vigil.scale.ray_scoring import score_archive_with_ray

    write_archive(tmp_path / "archive", n_per_file=100, nan_in="north/2024-05-02")
    expected = r"plant=north/day=2024-05-02/part-0.parquet: 'flow' is NaN in the row with time=2024-05-02 00:00:07"
    with pytest.raises(InvalidInputError, match=expected):
        score_archive_with_ray(model_dir, tmp_path / "archive", tmp_path / "out", workers=1, progress=False)


def test_refusals_before_any_cluster_work(model_dir: Path, tmp_path: Path, fitted: Pipeline) -> None:
    pytest.importorskip("pyarrow", reason="needs pyarrow: pip install 'vigil[scale]'")
    from vigil.detectors.pca import PCADetector
    from vigil.scale.ray_scoring import score_archive_with_ray

    archive = tmp_path / "archive"
    data = write_archive(archive, n_per_file=50)
    with pytest.raises(SchemaError, match="lacks the model's columns"):
        other = Pipeline(PCADetector(n_components=1)).fit(data[SENSORS].rename(columns={"temp": "t"}))
        score_archive_with_ray(other.save(tmp_path / "other"), archive, tmp_path / "o1", progress=False)
    smoothed = Pipeline(PCADetector(n_components=1), smoothing=5).fit(data[SENSORS]).save(tmp_path / "smooth")
    with pytest.raises(InvalidInputError, match="Ray batches do not keep series in order"):
        score_archive_with_ray(smoothed, archive, tmp_path / "o2", progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(InvalidInputError, match="exists already"):
        score_archive_with_ray(model_dir, archive, tmp_path / "exists", progress=False)
    with pytest.raises(InvalidInputError, match="holds no Parquet file"):
        score_archive_with_ray(model_dir, tmp_path / "exists", tmp_path / "o3", progress=False)
