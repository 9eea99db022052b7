"""Pixel ROC-AUC and AUPRO over the tile's own pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.errors import InvalidInputError
from vigil.vision.pixel_metrics import aupro, pixel_roc_auc


def _masks():
    masks = np.zeros((4, 16, 16))
    masks[0, 2:5, 2:5] = 1  # a small defect
    masks[1, 0:12, 0:12] = 1  # a large one
    return masks


def test_aupro_weighs_regions_alike_where_pixel_auc_weighs_pixels():
    masks = _masks()
    maps = np.zeros_like(masks)
    maps[1] = masks[1]  # the large defect found, the small one missed
    # Pixel-wise most defect pixels are found; region-wise only one of two regions is.
    assert pixel_roc_auc(masks, maps) > 0.9
    assert aupro(masks, maps) == pytest.approx(0.5, abs=0.01)


def test_filler_pixels_count_on_neither_side():
    masks = _masks()
    maps = masks.copy()
    valid = np.ones(masks.shape, dtype=bool)
    valid[:, :, 13:] = False  # padding on the right of every image
    maps[:, :, 13:] = 5.0  # a detector that lights up the filler
    assert pixel_roc_auc(masks, maps, valid) == 1.0
    assert aupro(masks, maps, valid) == pytest.approx(1.0)
    assert pixel_roc_auc(masks, maps) < 1.0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 0.3))
def test_aupro_is_a_normalised_area(seed, max_fpr):
    rng = np.random.default_rng(seed)
    masks = _masks()
    maps = rng.random(masks.shape) + masks * rng.random()
    value = aupro(masks, maps, max_fpr=max_fpr)
    assert 0.0 <= value <= 1.0
    # A monotone transform of the map changes no threshold's pixel sets, so neither the figure.
    assert aupro(masks, np.exp(3 * maps), max_fpr=max_fpr) == pytest.approx(value, abs=1e-9)


def test_bad_shapes_and_values_are_refused():
    masks = _masks()
    with pytest.raises(InvalidInputError, match="must all have one shape"):
        aupro(masks, masks[:, :8])
    broken = masks.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        aupro(masks, broken)
    with pytest.raises(InvalidInputError, match="defect and defect-free"):
        aupro(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))
