"""Image detector ensemble: several unsupervised image detectors, their scores put on one scale and combined.

Detectors fail on different defects: on magnetic tiles, :class:`~vigil.vision.patch.PatchGaussianDetector`
finds small blowholes and cracks that :class:`~vigil.vision.segmenter.DefectSegmenter` misses, and the
segmenter finds large uneven regions that the patch statistics miss (``docs/benchmarks-vision.md``). Each
member's scores and maps are standardised by the median and interquartile range of its own scores on the
training images (what PyOD's ``standardizer`` does with mean and deviation, made robust), then combined
per image and per pixel: the largest (an image is as anomalous as its most alarmed member) or the mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import Options
from vigil.errors import InvalidInputError
from vigil.vision.base import ImageDetector
from vigil.vision.registry import (
    available_image_detectors,
    coerce_params,
    make_image_detector,
    register_image_detector,
)

__all__ = ["ImageEnsemble"]

_MEMBER = "member{}."


def _names_ok(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) > 0 and all(isinstance(v, str) for v in value)


def _member_params_ok(value: Any) -> bool:
    return value is None or (isinstance(value, Sequence) and all(isinstance(v, Mapping) for v in value))


@register_image_detector("image-ensemble", "Several image detectors; scores standardised on training images, combined")
class ImageEnsemble(ImageDetector):
    """Unsupervised image detectors combined on standardised scores and maps.

    Parameters
    ----------
    members : tuple of str
        Registered unsupervised image detectors, each fitted on the same images.
    member_params : sequence of dict, optional
        Parameters of each member, in order (default: each member's defaults).
    combine : {"max", "mean"}
        How standardised scores (and maps, pixel by pixel) are combined.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`; ``random_state`` is passed to every member.

    Attributes
    ----------
    members_ : list of ImageDetector
        The fitted members.
    centre_, spread_ : ndarray, shape (n_members,)
        Median and interquartile range of each member's training scores.

    Examples
    --------
    >>> from vigil.vision.synthetic import make_synthetic_set
    >>> data = make_synthetic_set(24, 4, size=32, seed=0)
    >>> det = ImageEnsemble(members=("patch-gauss",), member_params=({"grid": 8},)).fit(data.images[:24])
    >>> det.score_samples(data.images[24:]).shape, det.anomaly_map(data.images[24:]).shape
    ((4,), (4, 32, 32))
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "members": [_names_ok],
        "member_params": [_member_params_ok],
        "combine": [Options("max", "mean")],
    }

    def __init__(
        self,
        *,
        members: tuple[str, ...] = ("patch-gauss", "defect-seg"),
        member_params: Sequence[Mapping[str, Any]] | None = None,
        combine: str = "max",
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(contamination=contamination, random_state=random_state)
        self.members = members
        self.member_params = member_params
        self.combine = combine

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {
                "members": ("patch-gauss", "image-ae"),
                "member_params": (
                    {"grid": 8},
                    {"widths": (8, 16), "latent": 4, "epochs": 8, "learning_rate": 1e-2, "batch_size": 8},
                ),
                "random_state": 0,
            }
        ]

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        params = super()._params_from_json(params)
        if params.get("member_params") is not None:
            params["member_params"] = tuple(coerce_params(p) for p in params["member_params"])
        return params

    def _make_members(self) -> list[ImageDetector]:
        params = list(self.member_params) if self.member_params is not None else [{} for _ in self.members]
        if len(params) != len(self.members):
            msg = f"member_params has {len(params)} entries for {len(self.members)} members"
            raise InvalidInputError(msg)
        known = available_image_detectors()
        made = []
        for name, extra in zip(self.members, params, strict=True):
            if name not in known or name == self.name:
                msg = f"ensemble member {name!r} is not an image detector; available: {', '.join(known)}"
                raise InvalidInputError(msg)
            if known[name].supervised:
                msg = f"ensemble member {name!r} is supervised; an ensemble learns from good images only"
                raise InvalidInputError(msg)
            made.append(make_image_detector(name, **{**extra, "random_state": self.random_state}))
        return made

    def _fit_images(self, images: NDArray[np.float32], y: Any, groups: Any) -> None:
        members = self._make_members()
        as_given = images.transpose(0, 2, 3, 1)  # members take (n, H, W, C) grey levels
        centres, spreads = [], []
        for member in members:
            member.fit(as_given, groups=groups)
            scores = member.score_samples(as_given)
            low, centre, high = np.quantile(scores, [0.25, 0.5, 0.75])
            centres.append(centre)
            spreads.append(max(high - low, abs(centre) * 1e-6, 1e-12))
        self.members_ = members
        self.centre_ = np.asarray(centres, dtype=np.float64)
        self.spread_ = np.asarray(spreads, dtype=np.float64)

    def _score_maps(self, images: NDArray[np.float32], *, want_maps: bool) -> tuple[Any, Any]:
        scores, maps = [], []
        for i, member in enumerate(self.members_):
            s, m = member._score_maps(images, want_maps=want_maps)
            scores.append((np.asarray(s, dtype=np.float64) - self.centre_[i]) / self.spread_[i])
            if want_maps:
                # A map is non-negative: standardised values below a typical good image's score count as 0.
                maps.append(np.maximum((np.asarray(m, dtype=np.float64) - self.centre_[i]) / self.spread_[i], 0.0))
        pool = np.max if self.combine == "max" else np.mean
        return pool(np.stack(scores), axis=0), pool(np.stack(maps), axis=0) if want_maps else None

    # ------------------------------------------------------------------ persistence
    def _learned_state(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k != "members_"}
        for i, member in enumerate(self.members_):
            state.update({_MEMBER.format(i) + k: v for k, v in member._learned_state().items()})
        return state

    def _restore_state(self, state: dict[str, Any]) -> None:
        members = self._make_members()
        for i, member in enumerate(members):
            prefix = _MEMBER.format(i)
            member._restore_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        super()._restore_state({k: v for k, v in state.items() if not k.startswith("member")})
        self.members_ = members
