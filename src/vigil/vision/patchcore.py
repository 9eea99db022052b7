"""PatchCore (Roth et al., CVPR 2022): nearest-neighbour distance of each patch to a coreset of normal patches.

Every training patch's locally aware pretrained feature (:mod:`vigil.vision.embedding`) is a candidate; a
greedy k-centre coreset (each step adds the candidate farthest from those chosen, distances measured after a
random projection, as in the paper) keeps ``memory_size`` of them that cover the rest. A test patch scores its
distance to the nearest memory entry; the image score is the largest patch score, re-weighted as in the
paper (eq. 7): by one minus the softmax weight of that nearest entry among its ``neighbours`` nearest
memory neighbours, so that a patch near a *rare* memory entry (one far from the others) scores higher.

**Threshold.** A training image's patches are in the memory (or next to it), so its own score says little
about a new part. The threshold is therefore the ``1 - contamination`` quantile of the training images'
scores *with the memory entries of their own group left out* (their own tile when ``groups`` is given to
``fit``, else their own image): each good image is scored as if its part had never been seen.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from vigil.base import Interval
from vigil.errors import InvalidInputError
from vigil.vision.base import require_torch
from vigil.vision.embedding import PretrainedPatchDetector, chunks, patch_rows
from vigil.vision.registry import register_image_detector

__all__ = ["PatchCoreDetector", "greedy_coreset"]

_ROWS = 4096  # query rows per distance block: bounds memory whatever the memory size


def greedy_coreset(points: Any, size: int, *, projection: int = 64, generator: Any = None) -> NDArray[np.intp]:
    """Indices of ``size`` rows of ``points`` chosen by greedy k-centre selection (farthest point first).

    Distances are measured after a Gaussian random projection to ``projection`` dimensions (when the
    points have more), which keeps the selection's cost linear in the dimension that matters.

    Examples
    --------
    >>> import torch
    >>> pts = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [0.0, 0.1]])
    >>> sorted(greedy_coreset(pts, 2, generator=torch.Generator().manual_seed(0)).tolist())
    [0, 2]
    """
    torch = require_torch()
    points = torch.as_tensor(points, dtype=torch.float32)
    n, d = points.shape
    if size >= n:
        return np.arange(n)
    if d > projection:
        matrix = torch.randn(d, projection, generator=generator) / projection**0.5
        points = points @ matrix
    points = points.contiguous()
    squared_norms = (points * points).sum(dim=1)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (), generator=generator))
    nearest = torch.full((n,), float("inf"))
    scratch = torch.empty(n)
    # Thousands of small steps: thread hand-offs cost more than they save (30x slower on 2 busy cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for step in range(size):
            if step:
                chosen[step] = int(torch.argmax(nearest))
            pick = int(chosen[step])
            # |a - b|² = |a|² - 2 a·b + |b|², in place: this loop is most of the fitting time.
            torch.addmv(squared_norms, points, points[pick], alpha=-2.0, out=scratch)
            scratch.add_(squared_norms[pick])
            torch.minimum(nearest, scratch, out=nearest)
    finally:
        torch.set_num_threads(threads)
    return chosen.numpy().astype(np.intp)


@register_image_detector("patchcore", "PatchCore: nearest-neighbour distance to a coreset of pretrained patch features")
class PatchCoreDetector(PretrainedPatchDetector):
    """Distance of each patch's pretrained features to the nearest of a coreset of normal patches.

    Parameters
    ----------
    backbone, layers, resolution
        See :class:`~vigil.vision.embedding.PretrainedPatchDetector`.
    memory_size : int
        Most patches kept in the memory (greedy coreset of all training patches).
    candidates : int
        Most training patches the coreset is chosen from (a seeded random subset when there are more):
        bounds the fitting time on a CPU.
    neighbours : int
        Memory neighbours in the paper's score re-weighting (its *b*); 1 turns the re-weighting off.
    contamination, random_state
        See :class:`~vigil.base.BaseDetector`; the seed drives the subset, the projection and the first
        coreset point.

    Attributes
    ----------
    memory_ : ndarray, shape (m, D)
        The coreset of normal patch features.
    memory_neighbours_ : ndarray, shape (m, neighbours)
        Each memory entry's nearest memory entries (itself first), for the re-weighting.

    Examples
    --------
    >>> from vigil.vision.synthetic import make_synthetic_set
    >>> data = make_synthetic_set(12, 4, size=32, seed=0)
    >>> det = PatchCoreDetector(resolution=64, memory_size=200, random_state=0).fit(data.images[:12])
    >>> bool(det.score_samples(data.images[12:]).min() > np.median(det.score_samples(data.images[:12])))
    True
    >>> det.anomaly_map(data.images[12:]).shape
    (4, 32, 32)
    """

    feature_grid_: tuple[int, ...]
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "memory_size": [Interval(int, 1, None)],
        "candidates": [Interval(int, 1, None)],
        "neighbours": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        *,
        backbone: Any = "efficientnet-lite0",
        layers: tuple[int, ...] | None = (7, 10),
        resolution: int = 224,
        memory_size: int = 10_000,
        candidates: int = 40_000,
        neighbours: int = 9,
        contamination: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            layers=layers,
            resolution=resolution,
            contamination=contamination,
            random_state=random_state,
        )
        self.memory_size = memory_size
        self.candidates = candidates
        self.neighbours = neighbours

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"resolution": 64, "memory_size": 300}, {"resolution": 64, "layers": (10,), "neighbours": 1}]

    # ------------------------------------------------------------------ fit
    def _fit_images(self, images: NDArray[np.float32], y: Any, groups: Any) -> None:
        torch = require_torch()
        self._backbone_module = None
        features = self._embed_all(images)
        n, _, h, w = features.shape
        rows = patch_rows(features)
        owner = np.repeat(self._group_ids(groups, n), h * w)
        generator = torch.Generator().manual_seed(int(self._rng().integers(2**31 - 1)))
        pool = np.arange(len(rows))
        if len(pool) > self.candidates:
            pool = np.sort(torch.randperm(len(rows), generator=generator)[: self.candidates].numpy())
        picked = pool[greedy_coreset(rows[pool], self.memory_size, generator=generator)]
        memory = rows[picked].contiguous()
        self.memory_ = memory.numpy().astype(np.float32)
        k = min(self.neighbours, len(memory))
        self.memory_neighbours_ = np.concatenate(
            [self._nearest(memory[s : s + _ROWS], memory, k)[1] for s in chunks(len(memory), _ROWS)]
        ).astype(np.int64)
        self.feature_grid_ = (h, w)
        # Each good image scored against the memory without its own group's entries (module docstring).
        self._calibration = self._image_scores(features, exclude=(owner[picked], owner[:: h * w]))

    def _embed_all(self, images: NDArray[np.float32]) -> Any:
        torch = require_torch()
        return torch.cat([self._embed(images[s : s + 32]) for s in chunks(len(images), 32)])

    @staticmethod
    def _group_ids(groups: Any, n: int) -> NDArray[np.int64]:
        if groups is None:
            return np.arange(n)
        ids = np.unique(np.asarray(groups), return_inverse=True)[1].astype(np.int64)
        return ids if ids.max() > 0 else np.arange(n)

    def _calibration_scores(self, images: NDArray[np.float32]) -> NDArray[np.float64]:
        scores = self._calibration
        del self._calibration
        return scores

    # ------------------------------------------------------------------ scoring
    @staticmethod
    def _nearest(queries: Any, memory: Any, k: int, banned: Any = None) -> tuple[Any, Any]:
        """Distances and indices of the ``k`` nearest memory rows of each query row (Euclidean)."""
        torch = require_torch()
        squared = (
            (queries * queries).sum(dim=1, keepdim=True)
            - 2.0 * queries @ memory.T
            + (memory * memory).sum(dim=1)[None, :]
        ).clamp_min_(0.0)
        if banned is not None:
            squared.masked_fill_(banned, float("inf"))
        values, indices = torch.topk(squared, k, dim=1, largest=False) if k > 1 else squared.min(dim=1, keepdim=True)
        return values.sqrt(), indices

    def _image_scores(self, features: Any, *, exclude: Any = None) -> NDArray[np.float64]:
        return self._scores_and_patches(features, exclude=exclude)[0]

    def _scores_and_patches(self, features: Any, *, exclude: Any = None) -> tuple[NDArray[np.float64], Any]:
        """Image scores (re-weighted) and the patch distances (n, h, w)."""
        torch = require_torch()
        memory = torch.from_numpy(self.memory_)
        n, d, h, w = features.shape
        rows = patch_rows(features)
        per_image = h * w
        distances = torch.empty(len(rows))
        nearest = torch.empty(len(rows), dtype=torch.long)
        step = max(per_image, (_ROWS // per_image) * per_image)
        with torch.inference_mode():
            for start in chunks(len(rows), step):
                block = rows[start : start + step]
                banned = None
                if exclude is not None:
                    memory_owner, image_owner = exclude
                    owners = np.repeat(image_owner[start // per_image : (start + len(block)) // per_image], per_image)
                    banned = torch.from_numpy(owners[:, None] == memory_owner[None, :])
                    # A group that owns the whole memory would leave nothing to compare with: keep it then.
                    banned &= ~banned.all(dim=1, keepdim=True)
                value, index = self._nearest(block, memory, 1, banned)
                distances[start : start + len(block)] = value[:, 0]
                nearest[start : start + len(block)] = index[:, 0]
            patch = distances.reshape(n, h, w)
            flat = distances.reshape(n, per_image)
            worst = flat.argmax(dim=1)
            best = flat.gather(1, worst[:, None])[:, 0]
            scores = best.double()
            if self.neighbours > 1 and self.memory_neighbours_.shape[1] > 1:
                query = rows.reshape(n, per_image, d)[torch.arange(n), worst]  # (n, D)
                support = torch.from_numpy(self.memory_neighbours_)[
                    nearest.reshape(n, per_image)[torch.arange(n), worst]
                ]
                to_support = (query[:, None, :] - memory[support]).norm(dim=2)  # (n, b), the nearest entry first
                weight = 1.0 - torch.softmax(to_support.double(), dim=1)[:, 0]
                scores = weight * scores
        return scores.numpy(), patch

    def _score_maps(self, images: NDArray[np.float32], *, want_maps: bool) -> tuple[Any, Any]:
        features = self._embed(images)
        if tuple(features.shape[2:]) != tuple(self.feature_grid_):
            msg = f"the backbone gave a {tuple(features.shape[2:])} feature grid, fitted on {self.feature_grid_}"
            raise InvalidInputError(msg)
        scores, patch = self._scores_and_patches(features)
        return scores, (self._to_maps(patch) if want_maps else None)

    def _restore_state(self, state: dict[str, Any]) -> None:
        super()._restore_state(state)
        self.feature_grid_ = tuple(int(v) for v in self.feature_grid_)
        self.memory_ = np.asarray(self.memory_, dtype=np.float32)
        self._backbone_module = None
