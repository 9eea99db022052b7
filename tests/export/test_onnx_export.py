"""`vigil export --format onnx`: every exportable detector scores the same through onnxruntime as in Vigil (to
1e-4), the runtime works without torch, and a bad export directory is refused with the file named."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from PIL import Image

from vigil.cli import main
from vigil.errors import InvalidInputError, ModelFormatError
from vigil.export import OnnxScorer
from vigil.pipeline import Pipeline
from vigil.registry import make_detector
from vigil.vision.base import ImageDetector
from vigil.vision.folders import fit_image_folder
from vigil.vision.synthetic import make_synthetic_set

pytestmark = pytest.mark.torch

SRC = Path(__file__).resolve().parents[2] / "src"
TOLERANCE = 1e-4


def close(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest difference relative to max(1, |score|): what the export promises to keep under 1e-4."""
    return float((np.abs(theirs - ours) / np.maximum(1.0, np.abs(ours))).max())


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parts")
    (folder / "good").mkdir()
    for i, image in enumerate(make_synthetic_set(24, 0, size=48, seed=1).images):
        Image.fromarray(image).save(folder / "good" / f"{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """The fixed input of the image parity checks: good and defective parts (not what the export checked)."""
    return make_synthetic_set(3, 3, size=48, kinds=("hole", "scratch"), seed=11).images


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    """Training rows of 5 correlated sensors, and fixed test rows with a step on one sensor."""
    rng = np.random.default_rng(0)
    t = rng.normal(size=(700, 2))
    X = np.hstack([t, t @ rng.normal(size=(2, 3))]) + 0.1 * rng.normal(size=(700, 5)) + 20.0
    test = X[600:].copy()
    test[40:50, 3] += 3.0
    return X[:600], test


IMAGE_DETECTORS = [
    ("patch-gauss", {"grid": 8}),
    ("padim", {"resolution": 64, "dims": 32}),
    ("patchcore", {"resolution": 64, "memory_size": 300}),
]


@pytest.mark.parametrize(("name", "params"), IMAGE_DETECTORS, ids=[n for n, _ in IMAGE_DETECTORS])
def test_image_detectors_score_the_same_through_onnx(name, params, good_folder, frames, tmp_path, capsys):
    if name != "patch-gauss":
        pytest.importorskip("efficientnet_lite_pytorch")
    model, out = tmp_path / "model", tmp_path / "edge"
    fit_image_folder(good_folder, name, model, params=params, size=48)
    assert main(["export", str(model), "--format", "onnx", "-o", str(out)]) == 0
    assert f"exported {name} (image)" in capsys.readouterr().out
    spec = json.loads((out / "vigil-export.json").read_text())
    assert spec["input"]["shape"] == [None, 1, 48, 48] and spec["parity"]["max_relative_difference"] <= TOLERANCE

    detector = ImageDetector.load(model)
    ours, our_maps = detector.score_with_maps(frames)
    scorer = OnnxScorer(out)
    theirs, their_maps = scorer.score_with_maps(frames)
    assert close(ours, theirs) <= TOLERANCE
    assert close(our_maps, their_maps) <= TOLERANCE
    assert scorer.threshold == pytest.approx(detector.threshold_)
    assert (scorer.predict(frames) == (ours > detector.threshold_)).all()


TABLE_DETECTORS = [
    ("pca", {"n_components": 2}, {}),
    ("autoencoder", {"latent": 2, "epochs": 5, "random_state": 0}, {}),
    # a window, sensors seen relative to the window's last row, and the pipeline's smoothing
    (
        "autoencoder",
        {"latent": 2, "window": 4, "epochs": 5, "random_state": 0, "relative_drift": 1e-4},
        {"smoothing": 3},
    ),
    ("conv-ae", {"window": 8, "filters": (8, 4), "kernel_size": 3, "epochs": 3, "random_state": 0}, {}),
    ("lstm-ae", {"window": 4, "hidden_size": 8, "latent": 4, "epochs": 3, "random_state": 0}, {}),
]


@pytest.mark.parametrize(
    ("name", "params", "options"),
    TABLE_DETECTORS,
    ids=["pca", "autoencoder", "autoencoder-window", "conv-ae", "lstm-ae"],
)
def test_telemetry_pipelines_score_the_same_through_onnx(name, params, options, rows, tmp_path, capsys):
    train, test = rows
    pipe = Pipeline(make_detector(name, **params), **options).fit(train)
    pipe.save(tmp_path / "model")
    assert main(["export", str(tmp_path / "model"), "-o", str(tmp_path / "edge")]) == 0
    assert f"exported {name} (table)" in capsys.readouterr().out
    scorer = OnnxScorer(tmp_path / "edge")
    ours, theirs = pipe.score_samples(test), scorer.score(test)
    assert theirs.shape == (len(test),)
    assert close(ours, theirs) <= TOLERANCE
    assert (scorer.predict(test) == (ours > pipe.threshold_)).all()
    assert scorer.feature_names == pipe.feature_names_in_


def test_detectors_without_an_export_say_which_have_one(rows, good_folder, tmp_path, capsys):
    Pipeline(make_detector("iforest")).fit(rows[0]).save(tmp_path / "forest")
    assert main(["export", str(tmp_path / "forest"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "iforest has no ONNX export" in err and "pca" in err and "patchcore" in err
    fit_image_folder(good_folder, "image-ae", tmp_path / "ae", params={"epochs": 1}, size=48)
    assert main(["export", str(tmp_path / "ae"), "-o", str(tmp_path / "out")]) == 2
    assert "has no ONNX export" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.onnx").exists()


@pytest.fixture(scope="module")
def exported(good_folder, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("exported")
    fit_image_folder(good_folder, "patch-gauss", base / "model", params={"grid": 8}, size=48)
    assert main(["export", str(base / "model"), "-o", str(base / "edge")]) == 0
    return base


def test_the_runtime_scores_without_torch(exported, frames, tmp_path):
    np.save(tmp_path / "frames.npy", frames)
    script = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        "import numpy as np\n"
        "from vigil.export.runtime import OnnxScorer\n"
        f"scorer = OnnxScorer({str(exported / 'edge')!r})\n"
        f"np.save({str(tmp_path / 'scores.npy')!r}, scorer.score(np.load({str(tmp_path / 'frames.npy')!r})))\n"
        "assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ours = ImageDetector.load(exported / "model").score_samples(frames)
    assert close(ours, np.load(tmp_path / "scores.npy")) <= TOLERANCE


def _copy(exported: Path, to: Path) -> Path:
    to.mkdir()
    for file in (exported / "edge").iterdir():
        (to / file.name).write_bytes(file.read_bytes())
    return to


def test_a_truncated_or_corrupt_model_file_is_refused_with_its_name(exported, tmp_path):
    edge = _copy(exported, tmp_path / "truncated")
    data = (edge / "model.onnx").read_bytes()
    (edge / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match=r"model\.onnx is not a readable ONNX model \(truncated or corrupt"):
        OnnxScorer(edge)
    (edge / "model.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFormatError, match="truncated or corrupt") as caught:
        OnnxScorer(edge)
    assert str(edge / "model.onnx") in str(caught.value)
    (edge / "model.onnx").unlink()
    with pytest.raises(ModelFormatError, match="cannot read the exported model"):
        OnnxScorer(edge)
    (edge / "vigil-export.json").write_text("{")
    with pytest.raises(ModelFormatError, match=r"vigil-export\.json cannot be read"):
        OnnxScorer(edge)


def test_a_model_of_another_input_shape_or_a_changed_file_is_refused(exported, tmp_path):
    import torch

    class Theirs(torch.nn.Module):  # a user's own model for colour frames of 64 px
        def forward(self, x):
            return x.mean(dim=(1, 2, 3)), x[:, 0]

    edge = _copy(exported, tmp_path / "swapped")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            Theirs(), (torch.rand(1, 3, 64, 64),), str(edge / "model.onnx"), dynamo=False,
            input_names=["images"], output_names=["score", "map"], dynamic_axes={"images": {0: "n"}},
        )  # fmt: skip
    with pytest.raises(ModelFormatError) as caught:
        OnnxScorer(edge)
    message = str(caught.value)
    assert str(edge / "model.onnx") in message and "[N, 3, 64, 64]" in message and "expects" in message
    assert "[N, 1, 48, 48]" in message

    changed = _copy(exported, tmp_path / "changed")
    spec = json.loads((changed / "vigil-export.json").read_text())
    spec["sha256"] = "0" * 64  # what a model file edited after the export looks like
    (changed / "vigil-export.json").write_text(json.dumps(spec))
    with pytest.raises(ModelFormatError, match="is not the model exported"):
        OnnxScorer(changed)


def test_frames_and_rows_of_the_wrong_shape_or_not_finite_are_refused(exported, rows, tmp_path):
    scorer = OnnxScorer(exported / "edge")
    with pytest.raises(InvalidInputError, match=r"shape \(n, 48, 48\).*got \(2, 64, 64\)") as caught:
        scorer.score(np.zeros((2, 64, 64), np.uint8))
    assert str(exported / "edge" / "vigil-export.json") in str(caught.value)
    with pytest.raises(InvalidInputError, match=r"got \(1, 48, 48, 3\)"):
        scorer.score(np.zeros((1, 48, 48, 3), np.uint8))
    bad = np.zeros((1, 48, 48), np.float32)
    bad[0, 3, 4] = np.nan
    with pytest.raises(InvalidInputError, match=r"image 0, row 3, column 4"):
        scorer.score(bad)

    Pipeline(make_detector("pca", n_components=2)).fit(rows[0]).save(tmp_path / "pca")
    assert main(["export", str(tmp_path / "pca"), "-o", str(tmp_path / "pca-edge")]) == 0
    table = OnnxScorer(tmp_path / "pca-edge")
    with pytest.raises(InvalidInputError, match=r"shape \(n, 5\)") as caught:
        table.score(rows[1][:, :4])
    assert str(tmp_path / "pca-edge" / "vigil-export.json") in str(caught.value)
    broken = rows[1].copy()
    broken[7, 2] = np.inf
    with pytest.raises(InvalidInputError, match=r"rows\[7, 'x2'\] is not finite"):
        table.score(broken)


def test_a_blur_first_made_while_scoring_still_trains():
    # The blur matrices are cached for the trace; one made under inference mode must not poison training.
    import torch

    from vigil.vision.networks import gaussian_blur

    with torch.inference_mode():
        gaussian_blur(torch.rand(1, 1, 9, 7), 1.3)
    x = torch.rand(1, 1, 9, 7, requires_grad=True)
    gaussian_blur(x, 1.3).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
