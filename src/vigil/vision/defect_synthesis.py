"""Random defects drawn onto batches of good images, in PyTorch: the training signal of the defect segmenter.

DRAEM (Zavrtanik et al., ICCV 2021) showed that a network trained to *segment* randomly shaped, randomly
textured patches pasted into good images learns what "not this surface" looks like, and finds real defects
it never saw. Vigil draws the shapes from thresholded smooth noise (blobs of every size, as DRAEM's Perlin
masks) and thin random-walk curves (the shape of cracks), and fills them with one of: another good image's
texture, a darker or brighter copy of the surface, or a blurred copy (texture gone). No external texture
set is needed, so nothing is downloaded.

Everything draws from the ``torch.Generator`` passed in, so a batch is reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vigil.vision.networks import gaussian_blur

__all__ = ["paste_random_defects"]


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _integer(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high)."""
    return int(torch.randint(low, high, (), generator=generator))


def _blob(h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """A hard (h, w) mask of smooth-noise blobs covering 0.5–15 % of the image."""
    largest = max(2, int(math.log2(max(2, min(h, w) // 2))))
    cell = 2 ** _integer(generator, 1, largest + 1)
    rows, cols = -(-h // cell) + 1, -(-w // cell) + 1
    noise = torch.randn(1, 1, rows, cols, generator=generator)
    smooth = F.interpolate(noise, size=(rows * cell, cols * cell), mode="bicubic", align_corners=False)[0, 0, :h, :w]
    level = torch.quantile(smooth.flatten(), _uniform(generator, 0.85, 0.995))
    return (smooth > level).float()


def _curve(h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """A hard (h, w) mask of one random-walk curve, 1 or 3 pixels wide."""
    steps = _integer(generator, max(2, h // 2), max(3, 2 * h))
    heading = _uniform(generator, 0.0, 2.0 * math.pi) + torch.cumsum(
        0.25 * torch.randn(steps, generator=generator), dim=0
    )
    start = torch.tensor([_uniform(generator, 0, h), _uniform(generator, 0, w)])
    points = start + torch.cumsum(torch.stack([heading.sin(), heading.cos()], dim=1), dim=0)
    rows, cols = points.round().long().unbind(dim=1)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    mask = torch.zeros(h, w)
    mask[rows[inside], cols[inside]] = 1.0
    if float(torch.rand((), generator=generator)) < 0.5:
        mask = F.max_pool2d(mask[None, None], 3, stride=1, padding=1)[0, 0]
    return mask if mask.any() else _blob(h, w, generator)


def paste_random_defects(
    images: torch.Tensor, generator: torch.Generator, *, curve_share: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one random defect into every image; return the damaged images and their defect masks.

    Parameters
    ----------
    images : Tensor, shape (n, C, H, W)
        Good images in [0, 1], on the CPU.
    generator : torch.Generator
    curve_share : float
        Share of defects drawn as thin curves rather than blobs.

    Returns
    -------
    damaged : Tensor, shape (n, C, H, W)
    masks : Tensor, shape (n, 1, H, W)
        1 where the image changed visibly (by more than 2 % of the grey range), else 0.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> damaged, masks = paste_random_defects(torch.full((2, 1, 32, 32), 0.5), g)
    >>> damaged.shape, masks.shape, bool(masks.sum() > 0)
    (torch.Size([2, 1, 32, 32]), torch.Size([2, 1, 32, 32]), True)
    """
    n, _, h, w = images.shape
    damaged, masks = [], []
    for i in range(n):
        base = images[i : i + 1]
        shape = _curve(h, w, generator) if float(torch.rand((), generator=generator)) < curve_share else None
        if shape is None:
            shape = _blob(h, w, generator)
        soft = gaussian_blur(shape[None, None], _uniform(generator, 0.3, 1.5))
        fill = _integer(generator, 0, 3)
        if fill == 0:  # foreign texture: another image of the batch, turned and re-exposed
            other = (i + _integer(generator, 1, max(2, n))) % n
            source = images[other : other + 1]
            source = torch.flip(source, dims=(2, 3)) * _uniform(generator, 0.6, 1.4)
        elif fill == 1:  # darker or brighter surface
            darker = float(torch.rand((), generator=generator)) < 0.5
            gain = _uniform(generator, 0.3, 0.8) if darker else _uniform(generator, 1.2, 1.8)
            source = gaussian_blur(base, _uniform(generator, 0.01, 2.0)) * gain
        else:  # texture wiped out
            source = gaussian_blur(base, _uniform(generator, 2.0, 5.0))
        alpha = soft * _uniform(generator, 0.3, 1.0)
        out = (base * (1.0 - alpha) + source * alpha).clamp(0.0, 1.0)
        visible = (out - base).abs().amax(dim=1, keepdim=True) > 0.02
        damaged.append(out)
        masks.append(((soft > 0.5) & visible).float())
    return torch.cat(damaged), torch.cat(masks)
