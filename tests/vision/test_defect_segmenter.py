"""The defect segmenter and the random defects it trains on."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

import torch

from vigil.vision.defect_synthesis import paste_random_defects
from vigil.vision.segmenter import DefectSegmenter
from vigil.vision.synthetic import make_synthetic_set

pytestmark = pytest.mark.torch


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 4),
    size=st.sampled_from([8, 17, 32]),
    channels=st.sampled_from([1, 3]),
    curve_share=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_pasted_defects_are_marked_where_the_image_changed(seed, n, size, channels, curve_share):
    images = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))
    before = images.clone()
    damaged, masks = paste_random_defects(images, torch.Generator().manual_seed(seed), curve_share=curve_share)
    assert torch.equal(images, before)  # the caller's batch is left alone
    assert damaged.shape == images.shape and masks.shape == (n, 1, size, size)
    assert float(damaged.min()) >= 0.0 and float(damaged.max()) <= 1.0
    assert set(torch.unique(masks).tolist()) <= {0.0, 1.0}
    change = (damaged - images).abs().amax(dim=1, keepdim=True)
    assert bool((change[masks > 0] > 0.02).all())
    again, again_masks = paste_random_defects(images, torch.Generator().manual_seed(seed), curve_share=curve_share)
    assert torch.equal(again, damaged) and torch.equal(again_masks, masks)


def test_pasted_defects_vary_in_size_and_mostly_show():
    surfaces = make_synthetic_set(64, 0, size=64, seed=1).images
    images = torch.from_numpy(surfaces[:, None].astype(np.float32) / 255)
    _, masks = paste_random_defects(images, torch.Generator().manual_seed(2))
    area = masks.mean(dim=(1, 2, 3))
    # On a textured surface most defects show; a blur over a smooth stretch may not, and is then not marked.
    assert float((area > 0).float().mean()) > 0.75
    assert float(area.max()) > 5 * float(area[area > 0].min())  # small and large defects both occur


def test_an_epoch_is_a_fixed_number_of_steps_whatever_the_data_size():
    det = DefectSegmenter(steps_per_epoch=7, batch_size=4)
    for n in (3, 100):
        order = det._epoch_order(n, torch.Generator().manual_seed(0))
        assert order.shape == (28,) and int(order.min()) >= 0 and int(order.max()) < n


@pytest.fixture(scope="module")
def fitted():
    data = make_synthetic_set(40, 6, size=48, kinds=("hole", "scratch"), seed=3)
    det = DefectSegmenter(
        widths=(8, 16, 32), crop=32, epochs=12, steps_per_epoch=10, batch_size=8, learning_rate=3e-3, random_state=0
    )
    return det.fit(data.images[:40]), data


def test_segmenter_ranks_defects_above_good_surfaces_and_maps_them(fitted):
    det, data = fitted
    good = det.score_samples(make_synthetic_set(12, 0, size=48, seed=11).images)
    bad = det.score_samples(data.images[40:])
    assert np.median(bad) > np.quantile(good, 0.9)
    maps = det.anomaly_map(data.images[40:])
    masks = data.masks[40:]
    inside = [maps[k][masks[k]].mean() for k in range(len(maps))]
    outside = [maps[k][~masks[k]].mean() for k in range(len(maps))]
    assert np.mean(np.greater(inside, outside)) >= 5 / 6
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0  # averaged probabilities


def test_segmenter_scores_images_of_a_size_the_network_cannot_halve():
    odd = make_synthetic_set(10, 0, size=45, seed=5).images
    small = DefectSegmenter(widths=(4, 8, 8), crop=16, epochs=1, steps_per_epoch=2, random_state=0).fit(odd)
    assert small.anomaly_map(odd).shape == (10, 45, 45)


def test_training_epochs_are_logged(caplog):
    data = make_synthetic_set(12, 0, size=16, seed=0)
    with caplog.at_level(logging.INFO, logger="vigil.detectors.training"):
        DefectSegmenter(widths=(4, 8), crop=16, epochs=3, steps_per_epoch=2, patience=5, random_state=0).fit(
            data.images
        )
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == [f"DefectSegmenter epoch {i}/3" for i in (1, 2, 3)]
