"""A model directory carries a manifest; every tampering is refused with one clear ModelFormatError."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from vigil.detectors.pca import PCADetector
from vigil.errors import ModelFormatError
from vigil.hostile import TAMPERINGS, tamper
from vigil.persistence import MANIFEST
from vigil.pipeline import Pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X = np.random.default_rng(0).normal(size=(300, 4))
    return Pipeline(PCADetector(n_components=2)).fit(X).save(tmp_path_factory.mktemp("model") / "pipe")


@pytest.fixture
def copy(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "pipe"))


def test_a_saved_pipeline_carries_manifests_that_describe_its_files(saved: Path) -> None:
    import json

    manifest = json.loads((saved / MANIFEST).read_text())
    assert manifest["format"] == "vigil.manifest" and manifest["format_version"] == 1
    assert set(manifest["files"]) == {"config.json", "arrays.npz"}
    assert manifest["files"]["arrays.npz"]["size"] == (saved / "arrays.npz").stat().st_size
    assert manifest["arrays"]["scaler_center"] == {"shape": [4], "dtype": "<f8", "finite": True}
    assert (saved / "detector" / MANIFEST).is_file()
    assert Pipeline.load(saved).threshold_ > 0


#: Changes that keep a consistent, scoring model: only a manifest can tell them from the saved state.
ONLY_THE_MANIFEST_SEES = {"components_int", "eigenvalues_negative", "extra_array"}


@pytest.mark.parametrize("reseal", [False, True], ids=["manifest", "no-manifest"])
@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_every_tampering_is_one_clear_model_format_error(copy: Path, name: str, reseal: bool) -> None:
    if reseal and name.startswith("manifest_"):
        pytest.skip("without a manifest there is nothing of it to tamper with")
    tamper(copy, name, reseal=reseal)
    if reseal and name in ONLY_THE_MANIFEST_SEES:
        assert np.isfinite(Pipeline.load(copy).score_samples(np.zeros((3, 4)))).all()
        return
    with pytest.raises(ModelFormatError) as refused:
        Pipeline.load(copy)
    message = str(refused.value)
    assert str(copy) in message, message  # names the directory (and, below it, the file)
    assert "Traceback" not in message and len(message) < 600


def test_a_nan_threshold_names_the_file_and_the_field(copy: Path) -> None:
    tamper(copy, "threshold_nan", reseal=True)
    with pytest.raises(ModelFormatError, match=r"config\.json: field threshold\.threshold is not a finite number"):
        Pipeline.load(copy)


def test_an_edited_file_is_named_by_the_manifest_check(copy: Path) -> None:
    tamper(copy, "components_wide")
    with pytest.raises(ModelFormatError, match=r"detector/arrays\.npz: (size|sha256)"):
        Pipeline.load(copy)


def test_a_directory_saved_before_manifests_loads_with_a_warning(copy: Path, caplog) -> None:
    for manifest in copy.rglob(MANIFEST):
        manifest.unlink()
    with caplog.at_level(logging.WARNING, logger="vigil.persistence"):
        loaded = Pipeline.load(copy)
    assert "saved before model manifests existed" in caplog.text and "save it again" in caplog.text
    loaded.save(copy)
    assert (copy / MANIFEST).is_file() and (copy / "detector" / MANIFEST).is_file()
