"""Fitting and scoring folders of camera images: what ``vigil fit`` and ``vigil score`` do with images.

``vigil fit FOLDER --detector patch-gauss -o MODEL`` learns from the good images of FOLDER: its ``good/``
subfolder when it has one (``defect/`` is then left out, as labelled rows are for tables), otherwise every
JPEG and PNG under it. A bad training image stops the fit with an error naming it. The model directory holds
the detector and ``input.json`` with the working size, colour mode and resize policy, so that scoring
reads images exactly as training did.

``vigil score MODEL FOLDER -o scores.csv [--maps DIR]`` scores every image under FOLDER. An image that cannot
be read is not fatal: it gets a row with its reason in ``error`` and no score (a dead letter), so a
corrupt frame from a camera never hides the others. ``--maps`` writes a heat-map overlay PNG for each image
above the threshold, coloured from 0 to twice the threshold (the same scale for every image) with a colour bar
that marks the threshold. FOLDER may also be a single JPEG or PNG file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vigil.errors import InvalidInputError
from vigil.vision.io import IMAGE_SUFFIXES, FrameStream, decode_image, list_images

__all__ = ["fit_image_folder", "is_image_model", "save_image_model", "score_image_folder"]

_LAYOUT = "input.json"
_CHUNK = 256  # images decoded and scored at a time


def _training_files(folder: Path) -> list[Path]:
    good = folder / "good"
    files = list_images(good) if good.is_dir() else list_images(folder)
    if not files:
        where = good if good.is_dir() else folder
        msg = f"{where}: no JPEG or PNG images to learn from"
        raise InvalidInputError(msg)
    return files


def is_image_model(model: str | Path) -> bool:
    """True when ``model`` is a directory written by :func:`fit_image_folder`."""
    layout = Path(model) / _LAYOUT
    if not layout.is_file():
        return False
    try:
        return json.loads(layout.read_text()).get("kind") == "images"
    except (OSError, ValueError):
        return False


def fit_image_folder(
    folder: str | Path,
    detector: str,
    output: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    size: int = 128,
    mode: str = "L",
    resize: str = "stretch",
    seed: int = 0,
) -> str:
    """Fit the image detector ``detector`` on the good images of ``folder``, save it to ``output``; return a summary.

    Raises
    ------
    InvalidInputError
        No images, an unreadable image (named), an unknown detector or parameter, or a supervised detector
        (it needs labels; use :func:`~vigil.vision.bench.run_image_bench` or the Python API).
    """
    from vigil.vision.registry import image_detector_class, make_image_detector

    folder = Path(folder)
    if not folder.is_dir():
        msg = f"image folder not found: {folder}"
        raise InvalidInputError(msg)
    cls = image_detector_class(detector)
    if cls.supervised:
        msg = f"{detector} is supervised: it needs labelled defects, which `vigil fit` on a folder does not read"
        raise InvalidInputError(msg)
    extra = cls.params_from_json(params or {})
    unknown = sorted(set(extra) - set(cls._param_names()))
    if unknown:
        msg = f"{cls.__name__} has no parameter {unknown[0]!r}; valid: {cls._param_names()}"
        raise InvalidInputError(msg)
    files = _training_files(folder)
    images = np.stack([decode_image(p.read_bytes(), size=size, mode=mode, resize=resize, where=str(p)) for p in files])
    model = make_image_detector(detector, **{"random_state": seed, **extra}).fit(images)
    out = save_image_model(model, output, detector=detector, size=size, mode=mode, resize=resize)
    return (
        f"fitted {detector} on {len(files)} images of {folder} at {size} px ({mode}, {resize}); "
        f"threshold {model.threshold_:.4g}; saved to {out}"
    )


def save_image_model(model: Any, output: str | Path, *, detector: str, size: int, mode: str, resize: str) -> Path:
    """Save a fitted image detector to ``output`` with how its frames were read, as `vigil fit` on a folder
    does: `vigil score` and `vigil export` read the frames of the model directory the same way."""
    out = Path(output)
    model.save(out)
    layout = {"kind": "images", "detector": detector, "size": size, "mode": mode, "resize": resize}
    (out / _LAYOUT).write_text(json.dumps(layout, indent=2) + "\n")
    return out


def score_image_folder(
    model: str | Path, folder: str | Path, output: str | Path, *, maps: str | Path | None = None
) -> str:
    """Score every image under ``folder`` (or the one image file ``folder`` names) with the model in ``model``;
    write a CSV to ``output``; return a summary.

    The CSV has one row per file: ``path`` (relative to ``folder``), ``score``, ``threshold``, ``anomaly``
    and ``error`` (why the file could not be scored; empty otherwise).
    """
    from vigil.vision.base import ImageDetector

    folder = Path(folder)
    if folder.is_file():
        if folder.suffix.lower() not in IMAGE_SUFFIXES:
            msg = (
                f"{model} is an image model: give it a folder of images or one JPEG/PNG file, not {folder} "
                "(score tables and captures with a model fitted on them)"
            )
            raise InvalidInputError(msg)
        files, folder = [folder], folder.parent
    elif not folder.is_dir():
        msg = f"{folder} does not exist (give a folder of images or one JPEG/PNG file)"
        raise InvalidInputError(msg)
    else:
        files = list_images(folder)
    layout = json.loads((Path(model) / _LAYOUT).read_text())
    detector = ImageDetector.load(model)
    if not files:
        msg = f"{folder}: no JPEG or PNG images to score"
        raise InvalidInputError(msg)
    threshold = float(detector.threshold_)
    draw = maps is not None and detector.localizes
    n_scored = n_flagged = n_bad = written = 0
    destination = Path(output)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "score", "threshold", "anomaly", "error"])
        writer.writeheader()
        # A chunk at a time, so that a folder of any size is scored in bounded memory.
        for start in range(0, len(files), _CHUNK):
            chunk = files[start : start + _CHUNK]
            stream = FrameStream(
                ((p.relative_to(folder).as_posix(), p.read_bytes()) for p in chunk),
                size=layout["size"],
                mode=layout["mode"],
                resize=layout["resize"],
            )
            decoded = list(stream)
            rows = {bad.name: {"score": "", "anomaly": "", "error": bad.reason} for bad in stream.dead_letters}
            if decoded:
                images = np.stack([image for _, image in decoded])
                scores, heat = detector.score_with_maps(images) if draw else (detector.score_samples(images), None)
                for (name, _), score in zip(decoded, scores, strict=True):
                    rows[name] = {"score": f"{score:.6g}", "anomaly": score > threshold, "error": ""}
                flagged = np.flatnonzero(scores > threshold)
                n_scored, n_flagged = n_scored + len(decoded), n_flagged + len(flagged)
                if heat is not None:
                    written += _write_overlays(maps, [decoded[i] for i in flagged], heat[flagged], threshold)
            n_bad += stream.n_bad
            for file in chunk:
                name = file.relative_to(folder).as_posix()
                writer.writerow({"path": name, "threshold": f"{threshold:.6g}", **rows[name]})
    summary = f"scored {n_scored} images with {layout['detector']}: {n_flagged} above the threshold {threshold:.4g}"
    if n_bad:
        summary += f"; {n_bad} could not be read (see the error column)"
    if maps is not None:
        summary += f"; {written} heat maps in {maps}" if detector.localizes else f"; {layout['detector']} draws no maps"
    return summary + f"; wrote {destination}"


def _write_overlays(folder: str | Path | None, decoded: list[tuple[str, Any]], maps: Any, threshold: float) -> int:
    """One PNG per image: the image with its anomaly map over it, a colour bar from 0 to twice the threshold
    (the same for every image) and the threshold marked: what a camera alert shows in the dashboard."""
    if folder is None or not decoded:
        return 0
    from vigil.vision.report import overlay_png

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for (name, image), heat in zip(decoded, maps, strict=True):
        png = overlay_png(image, heat, threshold=threshold, title=name)
        (out / (name.replace("/", "__").rsplit(".", 1)[0] + ".png")).write_bytes(png)
    return len(decoded)
