"""The image ensemble: members on one scale, combined, and refused when they cannot be combined."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from vigil.errors import InvalidInputError
from vigil.vision.base import ImageDetector
from vigil.vision.ensemble import ImageEnsemble
from vigil.vision.synthetic import make_synthetic_set

pytestmark = pytest.mark.torch

_MEMBERS = {
    "members": ("patch-gauss", "defect-seg"),
    "member_params": (
        {"grid": 8},
        {"widths": (4, 8), "crop": 32, "epochs": 4, "steps_per_epoch": 5, "batch_size": 8, "learning_rate": 5e-3},
    ),
}


@pytest.fixture(scope="module")
def data():
    return make_synthetic_set(30, 8, size=32, kinds=("hole", "stain"), seed=4)


@pytest.mark.parametrize("combine", ["max", "mean"])
def test_scores_are_the_members_standardised_scores_combined(data, combine):
    det = ImageEnsemble(**_MEMBERS, combine=combine, random_state=0).fit(data.images[:30])
    own = np.stack(
        [
            (member.score_samples(data.images) - centre) / spread
            for member, centre, spread in zip(det.members_, det.centre_, det.spread_, strict=True)
        ]
    )
    pool = np.max if combine == "max" else np.mean
    np.testing.assert_allclose(det.score_samples(data.images), pool(own, axis=0), rtol=1e-9)
    # On its training images every member is centred: half above, half below a standardised 0.
    for member, centre in zip(det.members_, det.centre_, strict=True):
        assert np.median(member.score_samples(data.images[:30])) == pytest.approx(centre)
    maps = det.anomaly_map(data.images[30:])
    assert maps.shape == (8, 32, 32) and float(maps.min()) >= 0.0


def test_members_are_standardised_so_neither_drowns_the_other(data):
    det = ImageEnsemble(**_MEMBERS, random_state=0).fit(data.images[:30])
    good = np.stack(
        [
            (m.score_samples(data.images[:30]) - c) / s
            for m, c, s in zip(det.members_, det.centre_, det.spread_, strict=True)
        ]
    )
    raw = np.stack([m.score_samples(data.images[:30]) for m in det.members_])
    # Raw scales differ (distances vs probabilities); standardised ones share an interquartile range of 1.
    assert abs(np.log(raw[0].std() / raw[1].std())) > 1.0
    for row in good:
        q1, q3 = np.quantile(row, [0.25, 0.75])
        assert q3 - q1 == pytest.approx(1.0)


def test_saved_ensemble_scores_the_same(tmp_path, data):
    det = ImageEnsemble(**_MEMBERS, random_state=0).fit(data.images[:30])
    loaded = ImageDetector.load(det.save(tmp_path / "ensemble"))
    assert isinstance(loaded, ImageEnsemble)
    np.testing.assert_array_equal(loaded.score_samples(data.images), det.score_samples(data.images))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"members": ("patch-gauss", "cnn-classifier")}, "supervised"),
        ({"members": ("patch-gauss", "no-such")}, "not an image detector"),
        ({"members": ("image-ensemble",)}, "not an image detector"),
        ({"members": ("patch-gauss",), "member_params": ({}, {})}, "2 entries for 1 members"),
    ],
)
def test_members_that_cannot_be_combined_are_refused(data, params, message):
    with pytest.raises(InvalidInputError, match=message):
        ImageEnsemble(**params).fit(data.images[:30])
