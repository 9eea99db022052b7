"""An ONNX file as the feature backbone: the same scores as the module it was exported from, saved with its
hash, refused when the file changes, and usable from the command line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import torch
from PIL import Image

from vigil.cli import main
from vigil.errors import InvalidInputError, ModelFormatError
from vigil.vision.base import ImageDetector
from vigil.vision.padim import PadimDetector
from vigil.vision.patchcore import PatchCoreDetector
from vigil.vision.synthetic import make_synthetic_set

pytestmark = pytest.mark.torch


class TwoScales(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        fine = torch.relu(self.conv(x))
        return fine, torch.nn.functional.avg_pool2d(fine, 2)


def export(module: torch.nn.Module, path, size: int = 32) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: what a user may well run
        torch.onnx.export(
            module.eval(),
            (torch.rand(2, 3, size, size),),
            str(path),
            dynamo=False,
            input_names=["images"],
            output_names=["fine", "coarse"],
            dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}, "fine": {0: "n"}, "coarse": {0: "n"}},
        )
    return str(path)


@pytest.fixture(scope="module")
def surfaces():
    return make_synthetic_set(16, 8, size=32, seed=3)


@pytest.mark.parametrize("klass", [PatchCoreDetector, PadimDetector])
def test_an_onnx_file_scores_as_the_module_it_came_from(klass, surfaces, tmp_path):
    module = TwoScales()
    path = export(module, tmp_path / "backbone.onnx")
    settings = {"layers": (0, 1), "resolution": 32, "random_state": 0}
    if klass is PatchCoreDetector:
        settings["memory_size"] = 400
    from_module = klass(backbone=module, **settings).fit(surfaces.images[:16])
    from_file = klass(backbone=path, **settings).fit(surfaces.images[:16])
    np.testing.assert_allclose(
        from_file.score_samples(surfaces.images), from_module.score_samples(surfaces.images), rtol=1e-4, atol=1e-5
    )
    saved = from_file.save(tmp_path / "model")
    loaded = ImageDetector.load(saved)
    np.testing.assert_allclose(loaded.score_samples(surfaces.images), from_file.score_samples(surfaces.images))
    export(TwoScales().requires_grad_(False).apply(_perturb), tmp_path / "backbone.onnx")  # the file changes
    with pytest.raises(ModelFormatError, match=r"backbone\.onnx changed since the model was fitted"):
        ImageDetector.load(saved).score_samples(surfaces.images)


def _perturb(layer: torch.nn.Module) -> None:
    if isinstance(layer, torch.nn.Conv2d):
        layer.weight.data += 0.1


def test_bad_onnx_backbones_are_named(surfaces, tmp_path):
    with pytest.raises(InvalidInputError, match=r"cannot read the ONNX backbone .*absent\.onnx"):
        PatchCoreDetector(backbone=str(tmp_path / "absent.onnx"), layers=None, resolution=32).fit(surfaces.images)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(InvalidInputError, match="onnxruntime cannot load the ONNX backbone"):
        PatchCoreDetector(backbone=str(tmp_path / "junk.onnx"), layers=None, resolution=32).fit(surfaces.images)
    path = export(TwoScales(), tmp_path / "two.onnx")
    with pytest.raises(InvalidInputError, match="returned 2 feature map"):
        PadimDetector(backbone=path, layers=(2,), resolution=32).fit(surfaces.images[:16])


def test_the_command_line_takes_an_onnx_backbone(surfaces, tmp_path, capsys):
    good = tmp_path / "train" / "good"
    good.mkdir(parents=True)
    for i, image in enumerate(surfaces.images[:16]):
        Image.fromarray(image).save(good / f"g{i:02d}.png")
    path = export(TwoScales(), tmp_path / "backbone.onnx")
    args = ["fit", str(tmp_path / "train"), "--detector", "patchcore", "--size", "32", "-o", str(tmp_path / "m")]
    params = ["--param", f"backbone={path}", "--param", "layers=[0,1]", "--param", "resolution=32"]
    assert main(args + params) == 0
    assert "fitted patchcore on 16 images" in capsys.readouterr().out
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["backbone"] == path and config["params"]["layers"] == [0, 1]
    assert main(["export", str(tmp_path / "m"), "--format", "onnx", "-o", str(tmp_path / "edge")]) == 2
    assert "backbone of your own (a module or an ONNX file) cannot be exported" in capsys.readouterr().err
