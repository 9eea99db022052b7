"""Synthetic inspection images: striped, shaded surfaces and the defects injected into them.

Two uses. Tests and the image contract suite need small labelled images with pixel masks that take
milliseconds to make and need no data set. Model selection needs defects *without touching the test
split*: :func:`inject_defect` pastes scratches, holes, stains and cut-paste patches into held-out good
training images, and a detector's settings are chosen on those (see ``docs/benchmarks-vision.md``).

Everything is deterministic given the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from vigil.errors import InvalidInputError
from vigil.vision.io import ImageSet

__all__ = ["DEFECT_KINDS", "inject_defect", "make_surface", "make_synthetic_set"]

DEFECT_KINDS = ("scratch", "hole", "stain", "cutpaste")
"""What :func:`inject_defect` can draw."""


def make_surface(rng: np.random.Generator, size: int = 32) -> NDArray[np.float64]:
    """A grey surface in [0, 1]: vertical machining stripes, grain noise and a random illumination gradient.

    Examples
    --------
    >>> make_surface(np.random.default_rng(0), 16).shape
    (16, 16)
    """
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    stripes = 0.06 * np.sin(2 * np.pi * (xx * rng.uniform(5, 8) + rng.uniform()))
    stripes += 0.03 * ndimage.gaussian_filter1d(rng.normal(size=size), 0.7)[None, :]
    light = (
        0.5 + rng.uniform(-0.1, 0.1) + 0.15 * (xx - 0.5) * rng.uniform(-1, 1) + 0.1 * (yy - 0.5) * rng.uniform(-1, 1)
    )
    grain = 0.02 * rng.normal(size=(size, size))
    return np.clip(light + stripes + grain, 0.0, 1.0)


def _line_mask(shape: tuple[int, int], rng: np.random.Generator) -> NDArray[np.float64]:
    h, w = shape
    t = np.linspace(0.0, 1.0, 4 * max(h, w))
    start = rng.uniform([0, 0], [h, w])
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(0.25, 0.6) * max(h, w)
    bend = rng.normal(0, 0.1 * length)
    direction = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([np.cos(angle), -np.sin(angle)])
    points = start + np.outer(t - 0.5, direction * length) + np.outer(np.sin(np.pi * t), normal * bend)
    hit = np.zeros(shape, dtype=bool)
    rows, cols = np.round(points).astype(int).T
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    hit[rows[inside], cols[inside]] = True
    if not hit.any():
        hit[h // 2, :] = True
    distance = ndimage.distance_transform_edt(~hit)
    width = rng.uniform(0.5, 1.2)
    return np.clip(width + 0.5 - distance, 0.0, 1.0)


def inject_defect(
    image: NDArray[np.floating], kind: str, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Draw one defect into a grey image in [0, 1]; return the new image and the defect's mask.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Values in [0, 1].
    kind : {"scratch", "hole", "stain", "cutpaste"}
        A thin dark curved line; a small dark ellipse; a smooth region brighter or darker than its
        surroundings; a patch of the same image moved and mirrored (foreign texture with sharp edges).
    rng : numpy.random.Generator

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> surface = make_surface(rng, 32)
    >>> damaged, mask = inject_defect(surface, "hole", rng)
    >>> bool(mask.any()), bool(damaged[mask].mean() < surface[mask].mean())
    (True, True)
    """
    if kind not in DEFECT_KINDS:
        msg = f"defect kind must be one of {', '.join(DEFECT_KINDS)}, got {kind!r}"
        raise InvalidInputError(msg)
    base = np.asarray(image, dtype=np.float64)
    if base.ndim != 2:
        msg = f"inject_defect needs a 2-D grey image, got shape {base.shape}"
        raise InvalidInputError(msg)
    h, w = base.shape
    out = base.copy()
    yy, xx = np.mgrid[0:h, 0:w]
    scale = max(h, w) / 128.0
    if kind == "scratch":
        alpha = _line_mask((h, w), rng)
        out -= alpha * rng.uniform(0.2, 0.45) * ndimage.uniform_filter(base, 5)
        mask = alpha > 0.3
    elif kind == "hole":
        cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
        ry, rx = rng.uniform(2.0, 5.0, size=2) * max(scale, 1.0 / 2.0)
        r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        out *= 1.0 - np.clip(1.5 - r, 0.0, 1.0) * rng.uniform(0.35, 0.7)
        mask = r < 1.0
    elif kind == "stain":
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.08, 0.25, size=2) * max(h, w)
        r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        alpha = 1.0 / (1.0 + np.exp((r - 1.0) * 8.0))
        gain = rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.45)
        out = out * (1.0 - alpha) + ndimage.gaussian_filter(base, 1.5) * (1.0 + gain) * alpha
        mask = alpha > 0.5
    else:
        ph, pw = (int(v) for v in rng.integers(max(3, h // 8), max(4, h // 3), size=2))
        ph, pw = min(ph, h - 1), min(pw, w - 1)
        y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        out[y0 : y0 + ph, x0 : x0 + pw] = base[sy : sy + ph, sx : sx + pw][::-1, ::-1] * rng.uniform(0.75, 1.25)
        mask = np.zeros((h, w), dtype=bool)
        mask[y0 : y0 + ph, x0 : x0 + pw] = True
    return np.clip(out, 0.0, 1.0), mask


def make_synthetic_set(
    n_good: int = 24,
    n_defect: int = 8,
    *,
    size: int = 32,
    kinds: tuple[str, ...] = ("scratch", "hole"),
    channels: int = 1,
    seed: int = 0,
) -> ImageSet:
    """Good surfaces followed by defective ones (``kinds`` in turn), as ``uint8`` with masks.

    Parameters
    ----------
    n_good, n_defect : int
        How many of each.
    size : int
        Square image side in pixels.
    kinds : tuple of str
        Defect kinds (see :func:`inject_defect`), assigned in turn.
    channels : {1, 3}
        Grey images (n, H, W) or colour ones (n, H, W, 3) with a slight per-channel tint.
    seed : int

    Examples
    --------
    >>> data = make_synthetic_set(4, 2, size=16, seed=1)
    >>> data.images.shape, data.types.tolist(), int(data.masks[:4].sum())
    ((6, 16, 16), ['good', 'good', 'good', 'good', 'scratch', 'hole'], 0)
    """
    if channels not in (1, 3):
        msg = f"channels must be 1 or 3, got {channels!r}"
        raise InvalidInputError(msg)
    rng = np.random.default_rng(seed)
    images, masks, types = [], [], []
    for i in range(n_good + n_defect):
        surface = make_surface(rng, size)
        if i < n_good:
            mask = np.zeros((size, size), dtype=bool)
            types.append("good")
        else:
            kind = kinds[(i - n_good) % len(kinds)]
            surface, mask = inject_defect(surface, kind, rng)
            types.append(kind)
        images.append(surface)
        masks.append(mask)
    stack = np.stack(images)
    if channels == 3:
        stack = np.clip(stack[..., None] * np.array([1.0, 0.95, 0.9]), 0.0, 1.0)
    labels = np.asarray([t != "good" for t in types])
    return ImageSet(
        images=np.round(stack * 255).astype(np.uint8),
        labels=labels,
        types=np.asarray(types),
        paths=np.asarray([f"synthetic/{i:04d}.png" for i in range(len(types))]),
        masks=np.stack(masks),
        original_hw=np.full((len(types), 2), size, dtype=np.int64),
    )
