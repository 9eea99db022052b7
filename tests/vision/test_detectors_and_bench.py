"""Image detectors beyond the contract (localisation, labels, located errors) and the benchmark runner."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("torch")

from vigil.errors import InvalidInputError, ModelFormatError, NotFittedError, UnknownDetectorError
from vigil.vision.base import ImageDetector
from vigil.vision.bench import run_image_bench
from vigil.vision.classifier import CNNClassifierDetector
from vigil.vision.patch import PatchGaussianDetector
from vigil.vision.registry import make_image_detector
from vigil.vision.synthetic import DEFECT_KINDS, inject_defect, make_surface, make_synthetic_set

pytestmark = pytest.mark.torch


def test_patch_map_points_at_the_defect():
    data = make_synthetic_set(40, 6, size=48, kinds=("hole", "cutpaste"), seed=3)
    det = PatchGaussianDetector(grid=12).fit(data.images[:40])
    maps = det.anomaly_map(data.images[40:])
    masks = data.masks[40:]
    inside = [maps[k][masks[k]].mean() for k in range(len(maps))]
    outside = [maps[k][~masks[k]].mean() for k in range(len(maps))]
    assert np.mean(np.greater(inside, outside)) >= 5 / 6


def test_errors_are_located():
    det = PatchGaussianDetector(grid=4)
    with pytest.raises(NotFittedError):
        det.anomaly_map(np.zeros((1, 16, 16), np.uint8))
    det.fit(make_synthetic_set(8, 0, size=16).images)
    with pytest.raises(
        InvalidInputError, match=r"images of 8×16 px with 1 channel\(s\), but the detector was fitted on 16×16"
    ):
        det.score_samples(np.zeros((2, 8, 16), np.uint8))
    with pytest.raises(InvalidInputError, match=r"grid=32 is larger than the images"):
        PatchGaussianDetector(grid=32).fit(np.zeros((4, 16, 16), np.uint8))
    with pytest.raises(InvalidInputError, match="shrinkage"):
        PatchGaussianDetector(shrinkage=1.5).fit(np.zeros((4, 16, 16), np.uint8))
    with pytest.raises(InvalidInputError, match="groups has shape"):
        make_image_detector("image-ae", epochs=1).fit(np.zeros((4, 16, 16), np.uint8), groups=[1, 2])
    with pytest.raises(UnknownDetectorError, match="no image detector named 'nope'"):
        make_image_detector("nope")


def test_load_rejects_another_class(tmp_path):
    det = PatchGaussianDetector(grid=4).fit(make_synthetic_set(8, 0, size=16).images)
    det.save(tmp_path / "m")
    assert isinstance(ImageDetector.load(tmp_path / "m"), PatchGaussianDetector)
    with pytest.raises(ModelFormatError, match="not a CNNClassifierDetector"):
        CNNClassifierDetector.load(tmp_path / "m")


def test_classifier_labels_binary_and_typed():
    data = make_synthetic_set(10, 10, size=16, seed=2)
    binary = CNNClassifierDetector(widths=(8,), epochs=1, random_state=0).fit(data.images, data.labels.astype(int))
    assert binary.classes_.tolist() == ["good", "defect"]
    typed = CNNClassifierDetector(widths=(8,), epochs=1, random_state=0).fit(data.images, data.types)
    assert set(typed.predict_type(data.images)) <= {"good", "scratch", "hole"}
    np.testing.assert_allclose(typed.predict_proba(data.images).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(InvalidInputError, match="0 \\(good\\) or 1"):
        CNNClassifierDetector(epochs=1).fit(data.images, np.arange(20))
    with pytest.raises(InvalidInputError, match="y has shape"):
        CNNClassifierDetector(epochs=1).fit(data.images, data.types[:3])


def test_synthetic_defects_are_deterministic_and_masked():
    for kind in DEFECT_KINDS:
        a = inject_defect(make_surface(np.random.default_rng(5), 32), kind, np.random.default_rng(9))
        b = inject_defect(make_surface(np.random.default_rng(5), 32), kind, np.random.default_rng(9))
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1].any() and 0.0 <= a[0].min() and a[0].max() <= 1.0
    with pytest.raises(InvalidInputError, match="defect kind"):
        inject_defect(np.zeros((8, 8)), "dent", np.random.default_rng(0))


def _fake_tiles(root, n_good=30, n_defect=10):
    """A magnetic-tile-shaped folder: JPEGs of varying sizes, PNG masks, index.csv with the split columns."""
    data = make_synthetic_set(n_good, n_defect, size=40, kinds=("hole", "cutpaste"), seed=4)
    rows = []
    for i in range(len(data)):
        kind = data.types[i]
        rel = f"good/exp1_num_{i}.jpg" if kind == "good" else f"defect/{kind}/exp1_num_{i}.jpg"
        width = 40 + (i % 3) * 8
        image = Image.fromarray(data.images[i]).resize((width, 40))
        mask = Image.fromarray(data.masks[i].astype(np.uint8) * 255).resize((width, 40))
        for path, picture in ((root / rel, image), ((root / "masks" / rel).with_suffix(".png"), mask)):
            path.parent.mkdir(parents=True, exist_ok=True)
            picture.save(path)
        group = i // 2
        test = group % 4 == 0 or kind != "good"
        rows.append(
            {
                "path": rel,
                "cls": kind,
                "label": int(kind != "good"),
                "tile_group": group,
                "split_grouped": "test" if test else "train",
                "split_differnet": "test" if (i % 5 == 0 or kind != "good") else "train",
                "split_supervised_grouped": "test" if group % 4 == 0 else "train",
            }
        )
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)


def test_bench_end_to_end_on_a_fake_data_set(tmp_path):
    _fake_tiles(tmp_path / "magnetic_tile")
    out = tmp_path / "out.json"
    result = run_image_bench(
        "magnetic-tile",
        "patch-gauss",
        data_dir=tmp_path,
        json_path=out,
        size=32,
        params={"grid": 8},
        report_path=tmp_path / "report.html",
        quiet=True,
    )
    saved = json.loads(out.read_text())
    for key in ("dataset", "detector", "split", "roc_auc", "roc_auc_per_type", "pixel_roc_auc", "images_per_second"):
        assert key in saved
    assert saved["split"] == "grouped" and saved["n_train"] == result["n_train"] > 0
    assert set(saved["roc_auc_per_type"]) == {"cutpaste", "hole"}
    assert saved["roc_auc"] > 0.7 and 0.5 < saved["pixel_roc_auc"] <= 1.0
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "heat-map" in page
    leaky = run_image_bench(
        "magnetic-tile", "patch-gauss", data_dir=tmp_path, split="differnet", size=32, params={"grid": 8}, quiet=True
    )
    assert leaky["split_note"].startswith("LEAKY")


def test_bench_keeps_aspect_ratio_and_reports_what_an_operator_acts_on(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    _fake_tiles(tmp_path / "magnetic_tile")
    result = run_image_bench(
        "magnetic-tile",
        "patchcore",
        data_dir=tmp_path,
        size=32,
        resize="pad",
        params={"resolution": 64, "memory_size": 300},
        quiet=True,
    )
    assert result["resize"] == "pad" and result["roc_auc"] > 0.7
    assert 0.0 <= result["aupro"] <= 1.0 and 0.5 < result["pixel_roc_auc"] <= 1.0
    assert set(result["recall_at_threshold_per_type"]) == {"cutpaste", "hole"}
    assert 0.0 <= result["far_at_threshold"] <= 1.0 and np.isfinite(result["threshold"])


def test_bench_rejects_bad_requests(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown image benchmark"):
        run_image_bench("mvtec", "patch-gauss", data_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="unknown split"):
        run_image_bench("magnetic-tile", "patch-gauss", data_dir=tmp_path, split="random")
    with pytest.raises(InvalidInputError, match="supervised"):
        run_image_bench("magnetic-tile", "cnn-classifier", data_dir=tmp_path)


@pytest.mark.data
@pytest.mark.slow
def test_magnetic_tile_grouped_bench_beats_the_pixel_baseline(data_dir, tmp_path):
    result = run_image_bench(
        "magnetic-tile",
        "patch-gauss",
        data_dir=data_dir,
        size=64,
        params={"grid": 8},
        quiet=True,
        json_path=tmp_path / "mt.json",
    )
    assert result["n_train"] == 756 and result["n_test"] == 588
    assert result["roc_auc"] > 0.665  # the raw-pixel 1-NN baseline of the data set's MANIFEST
    assert set(result["roc_auc_per_type"]) == {"blowhole", "break", "crack", "fray", "uneven"}
