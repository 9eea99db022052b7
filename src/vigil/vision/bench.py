"""The magnetic-tile benchmark, one call: what ``vigil bench --dataset magnetic-tile`` runs.

Protocols (the split columns of the data set's ``index.csv``; see its ``MANIFEST.md``):

``grouped`` (default, the honest one)
    ``split_grouped``: whole physical tiles are on one side only. Unsupervised detectors train on the 756
    good training images and are tested on 196 held-out good images plus all 392 defects.
``differnet`` (**leaky**, for comparison with published numbers only)
    ``split_differnet``: the DifferNet authors' random split, where 190 of the 191 test good images show a
    tile that is also in training; a raw-pixel 1-NN already scores 0.954 there.
``supervised``
    ``split_supervised_grouped``: the same test groups for every class, with labelled defects in training;
    what the supervised ``cnn-classifier`` needs (unsupervised detectors use only its good training images).

Images are read from the JPEGs with :func:`~vigil.vision.io.read_image_folder` (grey, ``size`` × ``size``,
``resize="stretch"`` by default; ``"pad"`` keeps each tile's aspect ratio). Reported: image ROC-AUC overall
and per defect type (each type against the test good images); where the detector localises, pixel ROC-AUC
and AUPRO (:mod:`vigil.vision.pixel_metrics`) from the masks, over the tile's own pixels (the filler of a
padded image counts on neither side), computed at no more than 128 px (larger maps are average-pooled and
masks max-pooled to 128); at the detector's own threshold, calibrated on good training images only, the
false-reject rate (good test tiles flagged; ``far_at_threshold``) and the recall overall and per defect type;
fit seconds, and inference images per second (decoded, resized images → score and map, in batches, after a
warm-up; the torch thread count and load average are recorded).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.errors import InvalidInputError
from vigil.evaluation.metrics import pr_auc, roc_auc
from vigil.vision.io import ImageSet, read_image_folder
from vigil.vision.registry import make_image_detector

__all__ = ["IMAGE_BENCHMARKS", "SPLITS", "load_magnetic_tile", "run_image_bench"]

IMAGE_BENCHMARKS = ("magnetic-tile",)
SPLITS = {
    "grouped": "split_grouped",
    "differnet": "split_differnet",
    "supervised": "split_supervised_grouped",
}
_NOTES = {
    "grouped": "tile-grouped: no physical tile on both sides (the honest protocol)",
    "differnet": "LEAKY: the DifferNet random split, 190 of 191 test good images share a tile with training; "
    "only for comparison with published numbers",
    "supervised": "tile-grouped, with labelled defects in training (for the supervised classifier)",
}
_PIXEL_AUC_SIZE = 128


def _log(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


@contextmanager
def _epoch_lines(quiet: bool):
    """Show the training epochs of the CNN detectors (logged by :mod:`vigil.vision.base`) on stderr."""
    logger = logging.getLogger("vigil.vision.base")
    if quiet:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("      %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def load_magnetic_tile(
    data_dir: str | PathLike[str] | None = None, *, size: int = 128, resize: str = "stretch"
) -> tuple[ImageSet, pd.DataFrame]:
    """Read every magnetic-tile image and mask at ``size`` px, in ``index.csv`` order, with the index table.

    Raises
    ------
    DatasetNotFoundError
        The data folder or ``magnetic_tile/`` in it is missing.
    """
    from vigil.data.benchmarks import dataset_path

    root = dataset_path(data_dir, "magnetic_tile")
    index = pd.read_csv(dataset_path(data_dir, "magnetic_tile", "index.csv"))
    if not {"width", "height"} <= set(index.columns):
        from vigil.vision.io import require_pillow

        image = require_pillow()
        sizes = []
        for path in index["path"]:
            with image.open(root / path) as picture:
                sizes.append(picture.size)
        index = index.assign(width=[w for w, _ in sizes], height=[h for _, h in sizes])
    data = read_image_folder(root, size=size, mode="L", resize=resize, masks=True, paths=index["path"].tolist())
    return data, index


def _pool_to(array: NDArray[Any], size: int, how: str) -> NDArray[Any]:
    _, h, w = array.shape
    if max(h, w) <= size:
        return array
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[:, None]
    pool = torch.nn.functional.adaptive_max_pool2d if how == "max" else torch.nn.functional.adaptive_avg_pool2d
    return pool(tensor, (min(h, size), min(w, size)))[:, 0].numpy()


def _tile_pixels(index: pd.DataFrame, size: int, resize: str) -> NDArray[np.float32]:
    """1 where a working pixel shows the tile, 0 on the filler that ``resize="pad"`` adds, per index row."""
    from vigil.vision.io import _geometry

    valid = np.ones((len(index), size, size), dtype=np.float32)
    if resize != "pad":
        return valid
    for row, (h, w) in enumerate(zip(index["height"], index["width"], strict=True)):
        (sh, sw), (oy, ox) = _geometry((int(h), int(w)), (size, size), "pad")
        top, left = max(0, -oy), max(0, -ox)
        valid[row] = 0.0
        valid[row, top : top + sh, left : left + sw] = 1.0
    return valid


def _throughput(detector: Any, images: NDArray[Any], localizes: bool) -> tuple[float, float]:
    """Images per second of inference on ``images`` (after warm-up), and the seconds it took."""
    warm = images[: min(8, len(images))]
    run = detector.score_with_maps if localizes else detector.score_samples
    run(warm)
    start = time.perf_counter()
    run(images)
    seconds = time.perf_counter() - start
    return len(images) / max(seconds, 1e-9), seconds


def run_image_bench(
    dataset: str,
    detector: str,
    *,
    data_dir: str | PathLike[str] | None = None,
    json_path: str | PathLike[str] | None = None,
    split: str = "grouped",
    size: int = 128,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    resize: str = "stretch",
    report_path: str | PathLike[str] | None = None,
    quiet: bool = False,
    data: tuple[ImageSet, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one image detector on an image benchmark; return (and optionally write) the result.

    Parameters
    ----------
    dataset : {"magnetic-tile"}
    detector : str
        A name from :func:`~vigil.vision.registry.available_image_detectors`.
    data_dir : path, optional
        Folder holding ``magnetic_tile/`` (default: ``$VIGIL_DATA_DIR``).
    json_path : path, optional
        Write the result there as JSON.
    split : {"grouped", "differnet", "supervised"}
        The protocol (module docstring). ``differnet`` is leaky and labelled so in the result.
    size : int
        Working resolution (square, pixels).
    resize : {"stretch", "crop", "pad"}
        How a tile becomes ``size`` × ``size`` (:mod:`vigil.vision.io`); ``"pad"`` keeps its aspect ratio.
    params : mapping, optional
        Detector parameters (lists become tuples).
    seed : int
        ``random_state`` of the detector.
    report_path : path, optional
        Write an HTML report with ROC curves and heat-map overlays there.
    quiet : bool
        No progress lines on stderr.
    data : (ImageSet, DataFrame), optional
        Already loaded data (from :func:`load_magnetic_tile` at the same ``size``), to run several detectors
        without reading the files again.

    Returns
    -------
    dict
        ``dataset``, ``detector``, ``split``, ``split_note``, ``roc_auc``, ``roc_auc_per_type``,
        ``pixel_roc_auc`` (None when the detector does not localise), ``pixel_roc_auc_per_type``, ``aupro``,
        ``pr_auc``, ``far_at_threshold`` (the false-reject rate), ``recall_at_threshold``,
        ``recall_at_threshold_per_type``, ``threshold``, ``images_per_second``, ``fit_seconds``,
        ``n_train``, ``n_test``, ``n_test_per_type``, ``size``, ``resize``, ``params``, ``seed``,
        ``torch_threads``, ``cpu_count``, ``load_average``, ``environment``.

    Raises
    ------
    InvalidInputError
        Unknown data set or split, or a supervised detector on a split without labelled defects.
    DatasetNotFoundError
        The data are not where ``data_dir`` says.
    """
    import torch

    from vigil.evaluation.runner import environment

    if dataset not in IMAGE_BENCHMARKS:
        msg = f"unknown image benchmark {dataset!r}; available: {', '.join(IMAGE_BENCHMARKS)}"
        raise InvalidInputError(msg)
    if split not in SPLITS:
        msg = f"unknown split {split!r} for {dataset}; available: {', '.join(SPLITS)}"
        raise InvalidInputError(msg)
    model = make_image_detector(detector, **{**dict(params or {}), "random_state": seed})
    if model.supervised and split != "supervised":
        msg = f"{detector} is supervised: it needs labelled defects in training, so use split='supervised'"
        raise InvalidInputError(msg)

    if data is None:
        _log(quiet, f"[1/3] reading {dataset} at {size} px ({resize}) …")
        data = load_magnetic_tile(data_dir, size=size, resize=resize)
    images_set, index = data
    if images_set.images.shape[1] != size:
        msg = f"the data passed in are {images_set.images.shape[1]} px, not size={size}"
        raise InvalidInputError(msg)
    column = index[SPLITS[split]].to_numpy()
    train = column == "train"
    test = column == "test"
    if not model.supervised:
        train &= ~images_set.labels
    groups = index["tile_group"].to_numpy()

    _log(quiet, f"[2/3] fitting {detector} on {int(train.sum())} images …")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    y = images_set.types[train] if model.supervised else None
    with _epoch_lines(quiet):
        model.fit(images_set.images[train], y, groups=groups[train])
    fit_seconds = time.perf_counter() - start

    _log(quiet, f"[3/3] scoring {int(test.sum())} test images …")
    test_set = images_set.subset(test)
    per_second, _ = _throughput(model, test_set.images, model.localizes)
    if model.localizes:
        scores, maps = model.score_with_maps(test_set.images)
    else:
        scores, maps = model.score_samples(test_set.images), None
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    good = test_set.types == "good"
    kinds = sorted(set(test_set.types.tolist()) - {"good"})
    per_type = {
        k: roc_auc(test_set.labels[good | (test_set.types == k)], scores[good | (test_set.types == k)]) for k in kinds
    }
    pixel_auc, pixel_per_type, pro = None, {}, None
    if maps is not None and test_set.masks is not None:
        from vigil.vision.pixel_metrics import aupro, pixel_roc_auc

        pooled_maps = _pool_to(maps, _PIXEL_AUC_SIZE, "mean")
        pooled_masks = _pool_to(test_set.masks, _PIXEL_AUC_SIZE, "max") > 0.5
        # A pooled pixel is the tile's own when most of what it averages is.
        valid = _pool_to(_tile_pixels(index[test], size, resize), _PIXEL_AUC_SIZE, "mean") > 0.5
        pixel_auc = pixel_roc_auc(pooled_masks, pooled_maps, valid)
        for k in kinds:
            pick = good | (test_set.types == k)
            pixel_per_type[k] = pixel_roc_auc(pooled_masks[pick], pooled_maps[pick], valid[pick])
        pro = aupro(pooled_masks, pooled_maps, valid)
    flagged = scores > model.threshold_
    result: dict[str, Any] = {
        "dataset": dataset,
        "detector": detector,
        "split": split,
        "split_note": _NOTES[split],
        "roc_auc": roc_auc(test_set.labels, scores),
        "roc_auc_per_type": per_type,
        "pixel_roc_auc": pixel_auc,
        "pixel_roc_auc_per_type": pixel_per_type,
        "aupro": pro,
        "pr_auc": pr_auc(test_set.labels, scores),
        "far_at_threshold": float(flagged[good].mean()),
        "recall_at_threshold": float(flagged[~good].mean()),
        "recall_at_threshold_per_type": {k: float(flagged[test_set.types == k].mean()) for k in kinds},
        "threshold": float(model.threshold_),
        "images_per_second": per_second,
        "fit_seconds": fit_seconds,
        "n_train": int(train.sum()),
        "n_test": int(test.sum()),
        "n_test_per_type": {k: int((test_set.types == k).sum()) for k in ["good", *kinds]},
        "size": size,
        "resize": resize,
        "params": model.get_params(),
        "seed": seed,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "environment": {**environment(), "torch": torch.__version__},
    }
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_json_ready(result), indent=2, allow_nan=True) + "\n", encoding="utf-8")
    if report_path is not None:
        from vigil.vision.report import write_image_report

        write_image_report(
            report_path,
            result,
            images=test_set.images,
            scores=scores,
            labels=test_set.labels,
            types=test_set.types,
            paths=test_set.paths,
            maps=maps,
            masks=test_set.masks,
        )
    return result


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
