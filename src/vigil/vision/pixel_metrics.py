"""Localisation figures of anomaly maps against defect masks: pixel ROC-AUC and AUPRO, over real pixels only.

Pixel ROC-AUC weighs every defect pixel alike, so one large defect outweighs many small ones. AUPRO (the
MVTec AD "per-region overlap", Bergmann et al., CVPR 2020) weighs every *connected defect region* alike: at a
map threshold, each region's overlap is the share of its pixels above it; PRO is the mean overlap over all
regions; the curve of PRO against the false-positive rate on defect-free pixels is integrated up to
``max_fpr`` (0.3, as in MVTec AD) and divided by ``max_fpr``, so 1 is perfect and a random map scores about
``max_fpr / 2``. Pixels outside ``valid`` (the filler of an image padded to keep its aspect ratio) count
on neither side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError
from vigil.evaluation.metrics import roc_auc

__all__ = ["aupro", "pixel_roc_auc"]


def _checked(masks: Any, maps: Any, valid: Any) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.bool_]]:
    masks = np.asarray(masks) > 0.5
    maps = np.asarray(maps, dtype=np.float64)
    valid = np.ones(masks.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if masks.shape != maps.shape or masks.shape != valid.shape or masks.ndim != 3:
        msg = f"masks {masks.shape}, maps {maps.shape} and valid {valid.shape} must all have one shape (n, H, W)"
        raise InvalidInputError(msg)
    if not np.isfinite(maps[valid]).all():
        msg = "anomaly maps hold NaN or infinite values"
        raise InvalidInputError(msg)
    return masks, maps, valid


def pixel_roc_auc(masks: Any, maps: Any, valid: Any = None) -> float:
    """ROC-AUC of map values for defect against defect-free pixels, over the ``valid`` pixels."""
    masks, maps, valid = _checked(masks, maps, valid)
    return roc_auc(masks[valid], maps[valid])


def aupro(masks: Any, maps: Any, valid: Any = None, *, max_fpr: float = 0.3, steps: int = 300) -> float:
    """Normalised area under the per-region-overlap curve up to ``max_fpr`` (module docstring).

    Examples
    --------
    >>> masks = np.zeros((2, 8, 8)); masks[0, 1:3, 1:3] = 1; masks[1, 5:7, 5:7] = 1
    >>> perfect = masks + 0.0
    >>> round(aupro(masks, perfect), 3)
    1.0
    >>> round(aupro(masks, 1.0 - masks), 3)
    0.0

    Raises
    ------
    InvalidInputError
        Shapes differ, no defect or no defect-free pixel, or non-finite map values.
    """
    from scipy import ndimage

    masks, maps, valid = _checked(masks, maps, valid)
    normal = maps[valid & ~masks]
    if normal.size == 0 or not (masks & valid).any():
        msg = "AUPRO needs defect and defect-free pixels"
        raise InvalidInputError(msg)
    regions = []
    for mask, values, inside in zip(masks, maps, valid, strict=True):
        labels, count = ndimage.label(mask & inside)
        for region in range(1, count + 1):
            regions.append(np.sort(values[labels == region]))
    # Thresholds at the normal pixels' quantiles: the false-positive rate is at most each value of a regular
    # grid 0 … max_fpr (exactly it when map values do not tie), and PRO is read there.
    fprs = np.linspace(0.0, max_fpr, steps + 1)
    thresholds = np.quantile(normal, 1.0 - fprs, method="higher")
    overlap = np.zeros(len(thresholds))
    for values in regions:
        above = len(values) - np.searchsorted(values, thresholds, side="right")
        overlap += above / len(values)
    overlap /= len(regions)
    area = float(np.sum((fprs[1:] - fprs[:-1]) * (overlap[1:] + overlap[:-1]) / 2.0))
    return area / max_fpr
