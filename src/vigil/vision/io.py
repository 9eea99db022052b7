"""Reading camera images: single files, labelled folders and streams of frames, with one resize policy.

Every image becomes a ``uint8`` array of a fixed working size, so that a batch stacks into one array and
a detector fitted at one size is never fed another. How an image of another size gets there is the
*resize policy* (``resize=``):

``"stretch"`` (default)
    Resize the whole image to ``size`` ignoring its aspect ratio. Every pixel of the part stays in view,
    so a defect at the border survives; the price is a shape distortion that differs between images of
    different aspect ratios (magnetic tiles vary from 103 to 632 px wide). This is what the benchmark uses,
    and what the data set's 128 px cache did.
``"crop"``
    Scale the shorter side to ``size`` keeping the aspect ratio, then cut the centre: no distortion, but
    the borders of long images are lost (and with them any defect there).
``"pad"``
    Scale the longer side to ``size`` keeping the aspect ratio and pad the rest by repeating the edge
    pixels: no distortion and nothing lost, but part of the frame is filler.

Images are resampled with Pillow's bilinear filter, which widens its kernel when shrinking (so it
anti-aliases). Masks follow the same geometry with a box filter, and a working pixel is a defect when any
original pixel under it is: tiny defects (a blowhole is ~0.15 % of a tile) are never erased by shrinking.

Colour: ``mode="L"`` converts colour to 8-bit grey (ITU-R 601 luma), ``mode="RGB"`` repeats grey into
three channels; either way all images of a set have the same channels. Only JPEG and PNG files are read,
judged by their content, not their name.

A labelled folder (:func:`read_image_folder`) looks like::

    root/good/*.jpg                      normal images
    root/defect/<type>/*.png             defective images, one folder per defect type
    root/masks/<same relative path>.png  optional pixel masks (0 background, >0 defect), same size as the image

Bad input is loud and located: a missing, empty, truncated, corrupt or unsupported file, or a mask whose
size differs from its image, raises :class:`~vigil.errors.InvalidInputError` naming the file. Long-running
readers use :class:`FrameStream` instead, which turns a bad frame into a :class:`BadFrame` record (a dead
letter) and goes on with the next one.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.errors import DatasetNotFoundError, InvalidInputError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_PIXELS",
    "RESIZE_POLICIES",
    "BadFrame",
    "FrameStream",
    "ImageSet",
    "decode_image",
    "list_images",
    "read_image",
    "read_image_folder",
    "read_mask",
    "require_pillow",
]

#: Most pixels (width × height) of an image that is decoded: 64 megapixels, above any inspection camera's frame
#: (a 4K frame has 8.3) and far below what would exhaust memory once decoded (a grey byte, an RGB three per pixel).
MAX_IMAGE_PIXELS = 64_000_000

RESIZE_POLICIES = ("stretch", "crop", "pad")
"""The accepted values of ``resize=`` (see the module docstring)."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
"""File name endings :func:`read_image_folder` collects (content is checked separately)."""

_FORMATS = ("JPEG", "PNG")
_MODES = ("L", "RGB")


def require_pillow():
    """Import Pillow's ``Image`` module, or explain how to install it."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - exercised only without Pillow
        msg = "reading images needs Pillow: pip install 'vigil[vision]'"
        raise ImportError(msg) from exc
    return Image


def _check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, (int, np.integer)) for v in size):
        hw = (int(size[0]), int(size[1]))
    else:
        msg = f"size must be an int or a (height, width) pair, got {size!r}"
        raise InvalidInputError(msg)
    if min(hw) < 1:
        msg = f"size must be positive, got {size!r}"
        raise InvalidInputError(msg)
    return hw


def _check_policy(resize: str, mode: str) -> None:
    if resize not in RESIZE_POLICIES:
        msg = f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {resize!r}"
        raise InvalidInputError(msg)
    if mode not in _MODES:
        msg = f"mode must be 'L' (grey) or 'RGB', got {mode!r}"
        raise InvalidInputError(msg)


def _geometry(src_hw: tuple[int, int], size: tuple[int, int], resize: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return (scaled height/width, top-left offset of the crop (+) or pad (-)) for one policy."""
    (h, w), (th, tw) = src_hw, size
    if resize == "stretch":
        return (th, tw), (0, 0)
    scale = max(th / h, tw / w) if resize == "crop" else min(th / h, tw / w)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    return (sh, sw), ((sh - th) // 2, (sw - tw) // 2)


def _place(array: NDArray[Any], size: tuple[int, int], offset: tuple[int, int], fill_edge: bool) -> NDArray[Any]:
    """Crop (positive offset) or pad (negative offset) ``array`` to ``size``."""
    th, tw = size
    oy, ox = offset
    if oy >= 0 and ox >= 0:
        return array[oy : oy + th, ox : ox + tw]
    pad_y, pad_x = max(0, -oy), max(0, -ox)
    widths = [(pad_y, th - array.shape[0] - pad_y), (pad_x, tw - array.shape[1] - pad_x)]
    widths += [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="edge" if fill_edge else "constant")


def _open(data: bytes, where: str, max_pixels: int = MAX_IMAGE_PIXELS):
    Image = require_pillow()
    from PIL import UnidentifiedImageError

    try:
        # Image.open reads the header only; its own bomb check (far above our limit) raises here.
        image = Image.open(io.BytesIO(data))
        image_format = image.format
        pixels = image.width * image.height
        if pixels > max_pixels:  # checked before decoding: a 100-byte PNG can claim 10^10 pixels
            msg = (
                f"{where}: the image claims {image.width}×{image.height} = {pixels} pixels, more than the limit "
                f"of {max_pixels}; it is not decoded"
            )
            raise InvalidInputError(msg)
        image.load()  # decodes everything: a truncated file fails here, not later
    except InvalidInputError:
        raise
    except Image.DecompressionBombError as exc:
        msg = f"{where}: the image claims more pixels than the limit of {max_pixels}; it is not decoded ({exc})"
        raise InvalidInputError(msg) from exc
    except UnidentifiedImageError as exc:
        msg = f"{where}: not a readable image (supported formats: JPEG, PNG)"
        raise InvalidInputError(msg) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        msg = f"{where}: corrupt or truncated image: {exc}"
        raise InvalidInputError(msg) from exc
    if image_format not in _FORMATS:
        msg = f"{where}: unsupported image format {image_format}; supported: JPEG, PNG"
        raise InvalidInputError(msg)
    if image.width < 1 or image.height < 1:
        msg = f"{where}: the image is empty ({image.width}×{image.height})"
        raise InvalidInputError(msg)
    return image


def decode_image(
    data: bytes,
    *,
    size: int | tuple[int, int] | None = None,
    mode: str = "L",
    resize: str = "stretch",
    where: str = "image",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> NDArray[np.uint8]:
    """Decode JPEG or PNG bytes into a ``uint8`` array of shape (H, W) (grey) or (H, W, 3) (RGB).

    Parameters
    ----------
    data : bytes
        The encoded file.
    size : int or (int, int) or None
        Working size (height, width); an int means a square. None keeps the original size.
    mode : {"L", "RGB"}
        Grey or colour output.
    resize : {"stretch", "crop", "pad"}
        The resize policy (module docstring).
    where : str
        Name used in error messages, usually the file name.
    max_pixels : int
        Images whose header claims more pixels (width × height) are refused before any decoding.

    Raises
    ------
    InvalidInputError
        Empty, truncated, corrupt, unsupported or too large data; the message starts with ``where``.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (40, 20), color=200).save(buffer, format="PNG")
    >>> decode_image(buffer.getvalue(), size=16).shape
    (16, 16)
    >>> decode_image(b"not an image", where="frame-7")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: frame-7: not a readable image (supported formats: JPEG, PNG)
    """
    _check_policy(resize, mode)
    hw = _check_size(size)
    if not data:
        msg = f"{where}: the file is empty (0 bytes)"
        raise InvalidInputError(msg)
    image = _open(bytes(data), where, max_pixels).convert(mode)
    if hw is not None and (image.height, image.width) != hw:
        Image = require_pillow()
        (sh, sw), offset = _geometry((image.height, image.width), hw, resize)
        image = image.resize((sw, sh), Image.Resampling.BILINEAR)
        return np.ascontiguousarray(_place(np.asarray(image, dtype=np.uint8), hw, offset, fill_edge=True))
    return np.array(image, dtype=np.uint8)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        msg = f"{path}: no such image file"
        raise InvalidInputError(msg)
    return path.read_bytes()


def read_image(
    path: str | PathLike[str],
    *,
    size: int | tuple[int, int] | None = None,
    mode: str = "L",
    resize: str = "stretch",
) -> NDArray[np.uint8]:
    """Read one JPEG or PNG file (see :func:`decode_image`); errors name ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "frame.png"
    >>> Image.new("RGB", (30, 60), color=(10, 20, 30)).save(path)
    >>> read_image(path, size=(32, 16), mode="RGB").shape
    (32, 16, 3)
    """
    path = Path(path)
    return decode_image(_read_bytes(path), size=size, mode=mode, resize=resize, where=str(path))


def read_mask(
    path: str | PathLike[str],
    *,
    image_hw: tuple[int, int],
    size: int | tuple[int, int] | None = None,
    resize: str = "stretch",
    image_path: str | PathLike[str] | None = None,
) -> NDArray[np.bool_]:
    """Read a defect mask (0 background, >0 defect) that must have its image's size ``image_hw``.

    The mask follows the image's resize policy; a working pixel is a defect when any original pixel under
    it is.

    Raises
    ------
    InvalidInputError
        The mask is unreadable, or its size differs from the image's (both files are named).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> mask = Image.new("L", (64, 64)); mask.putpixel((10, 20), 255); mask.save(folder / "m.png")
    >>> read_mask(folder / "m.png", image_hw=(64, 64), size=8).sum().item()
    1
    """
    _check_policy(resize, "L")
    hw = _check_size(size)
    path = Path(path)
    image = _open(_read_bytes(path), str(path)).convert("L")
    if (image.height, image.width) != tuple(image_hw):
        of = f" of {image_path}" if image_path is not None else ""
        msg = (
            f"{path}: mask is {image.width}×{image.height} px but the image{of} is "
            f"{image_hw[1]}×{image_hw[0]} px; a mask must have its image's size"
        )
        raise InvalidInputError(msg)
    binary = (np.asarray(image) > 0).astype(np.uint8) * 255
    if hw is None or (image.height, image.width) == hw:
        return binary > 0
    Image = require_pillow()
    (sh, sw), offset = _geometry((image.height, image.width), hw, resize)
    scaled = np.asarray(Image.fromarray(binary).resize((sw, sh), Image.Resampling.BOX))
    return np.ascontiguousarray(_place(scaled > 0, hw, offset, fill_edge=False))


@dataclass(eq=False)
class ImageSet:
    """A stack of same-size images with labels, defect types, paths and optional masks.

    Attributes
    ----------
    images : ndarray of uint8, shape (n, H, W) or (n, H, W, 3)
    labels : ndarray of bool, shape (n,)
        True for defective images.
    types : ndarray of str, shape (n,)
        ``"good"`` or the defect type.
    paths : ndarray of str, shape (n,)
        Path of each image relative to the folder it was read from.
    masks : ndarray of bool, shape (n, H, W), or None
        Pixel ground truth where the folder has masks.
    original_hw : ndarray of int, shape (n, 2)
        Height and width of each file before resizing.

    Examples
    --------
    >>> s = ImageSet(np.zeros((2, 4, 4), np.uint8), np.array([False, True]), np.array(["good", "hole"]),
    ...              np.array(["a.png", "b.png"]))
    >>> len(s), s.subset(s.labels).types.tolist()
    (2, ['hole'])
    """

    images: NDArray[np.uint8]
    labels: NDArray[np.bool_]
    types: NDArray[np.str_]
    paths: NDArray[np.str_]
    masks: NDArray[np.bool_] | None = None
    original_hw: NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, selection: Any) -> ImageSet:
        """Return the images picked by a boolean mask or an index array."""
        pick = np.asarray(selection)
        return ImageSet(
            images=self.images[pick],
            labels=self.labels[pick],
            types=self.types[pick],
            paths=self.paths[pick],
            masks=None if self.masks is None else self.masks[pick],
            original_hw=None if self.original_hw is None else self.original_hw[pick],
        )


def list_images(folder: str | PathLike[str]) -> list[Path]:
    """Every file under ``folder`` whose name ends like a JPEG or PNG, sorted (content is checked on reading)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_folder(
    root: str | PathLike[str],
    *,
    size: int | tuple[int, int] = 128,
    mode: str = "L",
    resize: str = "stretch",
    masks: bool = True,
    paths: Sequence[str] | None = None,
) -> ImageSet:
    """Read a labelled image folder (``good/``, ``defect/<type>/``, optional ``masks/``) into an :class:`ImageSet`.

    Parameters
    ----------
    root : path
        The folder.
    size, mode, resize
        Working size, colour mode and resize policy (module docstring).
    masks : bool
        Read ``masks/<relative path>.png`` where it exists; images without one get an empty mask if they are
        good, and a mask is required for no image (defects without masks get ``masks=None`` overall only if
        *no* mask file exists).
    paths : sequence of str, optional
        Read only these relative paths (in this order) instead of everything under ``good/`` and ``defect/``.

    Raises
    ------
    DatasetNotFoundError
        ``root`` does not exist.
    InvalidInputError
        No images, a bad image or mask (named), or a defect image outside ``defect/<type>/``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for rel in ("good/a.png", "good/b.jpg", "defect/scratch/c.png"):
    ...     (root / rel).parent.mkdir(parents=True, exist_ok=True)
    ...     Image.new("L", (50, 40), color=128).save(root / rel)
    >>> data = read_image_folder(root, size=32)
    >>> data.images.shape, data.types.tolist(), data.masks is None
    ((3, 32, 32), ['good', 'good', 'scratch'], True)
    """
    _check_policy(resize, mode)
    hw = _check_size(size)
    assert hw is not None
    root = Path(root)
    if not root.is_dir():
        msg = f"image folder not found: {root}"
        raise DatasetNotFoundError(msg)
    if paths is None:
        files = list_images(root / "good") + list_images(root / "defect")
        if not files:
            msg = f"{root}: no JPEG or PNG images under good/ or defect/<type>/"
            raise InvalidInputError(msg)
    else:
        files = [root / p for p in paths]
        if not files:
            msg = f"{root}: the list of images to read is empty"
            raise InvalidInputError(msg)
    images, labels, types, rels, original = [], [], [], [], []
    mask_list: list[NDArray[np.bool_] | None] = []
    for file in files:
        rel = file.relative_to(root)
        parts = rel.parts
        if parts[0] == "good":
            kind = "good"
        elif parts[0] == "defect" and len(parts) >= 3:
            kind = parts[1]
        else:
            msg = f"{file}: images must be under good/ or defect/<type>/"
            raise InvalidInputError(msg)
        data = _read_bytes(file)
        full = _open(data, str(file))
        original.append((full.height, full.width))
        images.append(decode_image(data, size=hw, mode=mode, resize=resize, where=str(file)))
        labels.append(kind != "good")
        types.append(kind)
        rels.append(rel.as_posix())
        mask_file = (root / "masks" / rel).with_suffix(".png")
        if masks and mask_file.is_file():
            mask_list.append(
                read_mask(mask_file, image_hw=(full.height, full.width), size=hw, resize=resize, image_path=file)
            )
        else:
            mask_list.append(None)
    have = [m is not None for m in mask_list]
    stacked: NDArray[np.bool_] | None = None
    if any(have):
        missing = [rels[i] for i, ok in enumerate(have) if not ok and labels[i]]
        if missing:
            msg = f"{root}: {len(missing)} defect image(s) have no mask under masks/, for example {missing[0]}"
            raise InvalidInputError(msg)
        stacked = np.stack([m if m is not None else np.zeros(hw, dtype=bool) for m in mask_list])
    return ImageSet(
        images=np.stack(images),
        labels=np.asarray(labels, dtype=bool),
        types=np.asarray(types),
        paths=np.asarray(rels),
        masks=stacked,
        original_hw=np.asarray(original, dtype=np.int64),
    )


@dataclass(frozen=True)
class BadFrame:
    """A frame that could not be decoded: a dead letter of the image stream.

    Attributes
    ----------
    name : str
        The frame's name (file name, topic and sequence number, ...).
    reason : str
        What was wrong, for a person.
    n_bytes : int
        Size of the payload.
    """

    name: str
    reason: str
    n_bytes: int


@dataclass
class FrameStream:
    """Decode a stream of ``(name, bytes)`` frames, dead-lettering bad ones instead of stopping.

    Iterating yields ``(name, image)`` for every good frame; each bad one (empty, truncated, corrupt, an
    unsupported format) is appended to ``dead_letters`` as a :class:`BadFrame` and counted in ``n_bad``.

    Parameters
    ----------
    frames : iterable of (str, bytes)
    size, mode, resize
        As for :func:`decode_image`; ``size`` is required so that every frame has the detector's shape.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.new("L", (20, 20)).save(buffer, format="JPEG")
    >>> stream = FrameStream([("f1", buffer.getvalue()), ("f2", b"garbage"), ("f3", buffer.getvalue())], size=8)
    >>> [name for name, _ in stream], stream.n_good, stream.n_bad, stream.dead_letters[0].name
    (['f1', 'f3'], 2, 1, 'f2')
    """

    frames: Iterable[tuple[str, bytes]]
    size: int | tuple[int, int] = 128
    mode: str = "L"
    resize: str = "stretch"
    dead_letters: list[BadFrame] = field(default_factory=list)
    n_good: int = 0

    @property
    def n_bad(self) -> int:
        """How many frames were dead-lettered."""
        return len(self.dead_letters)

    def __iter__(self) -> Iterator[tuple[str, NDArray[np.uint8]]]:
        _check_policy(self.resize, self.mode)
        for name, data in self.frames:
            try:
                image = decode_image(data, size=self.size, mode=self.mode, resize=self.resize, where=str(name))
            except InvalidInputError as exc:
                self.dead_letters.append(BadFrame(str(name), str(exc), len(data or b"")))
                continue
            self.n_good += 1
            yield name, image
