"""Camera image anomaly detection: image readers, CNN image detectors, their registry, contract suite and bench.

The detectors need PyTorch (``pip install 'vigil[deep,vision]'``) and are imported from their modules
(:mod:`vigil.vision.patch`, :mod:`vigil.vision.autoencoder`, :mod:`vigil.vision.classifier`,
:mod:`vigil.vision.segmenter`, :mod:`vigil.vision.ensemble`, and on pretrained features
:mod:`vigil.vision.patchcore` and :mod:`vigil.vision.padim`, which need ``vigil[pretrained]``) or made by name
with :func:`make_image_detector`; reading image files needs Pillow (``vigil[vision]``).
"""

from __future__ import annotations

from vigil.vision.base import ImageDetector, check_images
from vigil.vision.io import BadFrame, FrameStream, ImageSet, decode_image, read_image, read_image_folder, read_mask
from vigil.vision.registry import (
    available_image_detectors,
    image_detector_class,
    make_image_detector,
    register_image_detector,
)

__all__ = [
    "BadFrame",
    "FrameStream",
    "ImageDetector",
    "ImageSet",
    "available_image_detectors",
    "check_images",
    "decode_image",
    "image_detector_class",
    "make_image_detector",
    "read_image",
    "read_image_folder",
    "read_mask",
    "register_image_detector",
]
