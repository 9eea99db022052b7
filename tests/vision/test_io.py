"""Image readers: resize policies, folders with masks, and bad input that is loud, located, and dead-lettered."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vigil.errors import DatasetNotFoundError, InvalidInputError
from vigil.vision.io import FrameStream, decode_image, read_image, read_image_folder, read_mask


def _encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _folder(tmp_path, *, mask_size=None):
    rng = np.random.default_rng(0)
    for rel in ("good/a.jpg", "good/b.png", "defect/scratch/c.png", "defect/hole/d.jpg"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, size=(40, 60), dtype=np.uint8)).save(path)
    for rel in ("defect/scratch/c.png", "defect/hole/d.png"):
        mask = np.zeros(mask_size or (40, 60), dtype=np.uint8)
        mask[10, 20] = 255
        path = tmp_path / "masks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(path)
    return tmp_path


def test_resize_policies_keep_size_and_content():
    image = np.zeros((20, 40), dtype=np.uint8)
    image[:, :20] = 200  # left half bright
    data = _encode(image)
    stretched = decode_image(data, size=10)
    assert stretched.shape == (10, 10) and stretched[:, :4].mean() > 150 and stretched[:, 6:].mean() < 50
    cropped = decode_image(data, size=10, resize="crop")  # 10×20 then the centre 10 columns
    assert cropped.shape == (10, 10) and cropped[:, 0].mean() > 150 and cropped[:, -1].mean() < 50
    padded = decode_image(data, size=10, resize="pad")  # 5×10, padded top and bottom with edge rows
    assert padded.shape == (10, 10)
    assert decode_image(data, size=(8, 12), mode="RGB").shape == (8, 12, 3)
    assert decode_image(data).shape == (20, 40)


def test_rgb_converts_to_grey_and_back():
    colour = np.zeros((8, 8, 3), dtype=np.uint8)
    colour[..., 0] = 255
    grey = decode_image(_encode(colour), mode="L")
    assert grey.shape == (8, 8) and 70 < grey.mean() < 80  # ITU-R 601: 0.299 × 255


def test_mask_shrinks_without_losing_a_single_defect_pixel(tmp_path):
    mask = np.zeros((300, 300), dtype=np.uint8)
    mask[123, 201] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    small = read_mask(tmp_path / "m.png", image_hw=(300, 300), size=32)
    assert small.shape == (32, 32) and small.sum() >= 1


def test_folder_layout_types_and_masks(tmp_path):
    data = read_image_folder(_folder(tmp_path), size=16)
    assert data.images.shape == (4, 16, 16)
    assert data.types.tolist() == ["good", "good", "hole", "scratch"]
    assert data.labels.tolist() == [False, False, True, True]
    assert data.masks is not None and data.masks[:2].sum() == 0 and data.masks[2:].sum() >= 2
    assert data.original_hw.tolist() == [[40, 60]] * 4


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "the file is empty"),
        (b"hello, not an image", "not a readable image"),
        (None, "corrupt or truncated"),  # filled below: a JPEG cut in half
        ("gif", "unsupported image format GIF"),
    ],
)
def test_bad_files_name_the_file(tmp_path, payload, expected):
    if payload is None:
        payload = _encode(np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8), "JPEG")
        payload = payload[: len(payload) // 2]
    elif payload == "gif":
        buffer = io.BytesIO()
        Image.new("L", (8, 8)).save(buffer, format="GIF")
        payload = buffer.getvalue()
    path = tmp_path / "good" / "broken.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    with pytest.raises(InvalidInputError, match=expected) as info:
        read_image(path)
    assert "broken.jpg" in str(info.value)
    with pytest.raises(InvalidInputError, match=r"broken\.jpg"):
        read_image_folder(tmp_path, size=8)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="not found"):
        read_image_folder(tmp_path / "nowhere")
    (tmp_path / "good").mkdir()
    with pytest.raises(InvalidInputError, match="no JPEG or PNG images"):
        read_image_folder(tmp_path)
    with pytest.raises(InvalidInputError, match="no such image file"):
        read_image(tmp_path / "good" / "x.png")


def test_mismatched_mask_size_names_both_files(tmp_path):
    _folder(tmp_path, mask_size=(41, 60))
    with pytest.raises(InvalidInputError, match=r"masks/defect/hole/d.png: mask is 60×41 px but the image of .*d.jpg"):
        read_image_folder(tmp_path, size=16)


def test_defect_without_mask_when_others_have_one(tmp_path):
    _folder(tmp_path)
    (tmp_path / "masks" / "defect" / "hole" / "d.png").unlink()
    with pytest.raises(InvalidInputError, match="have no mask"):
        read_image_folder(tmp_path, size=16)


def test_bad_arguments():
    data = _encode(np.zeros((4, 4), np.uint8))
    with pytest.raises(InvalidInputError, match="resize must be one of"):
        decode_image(data, size=4, resize="squash")
    with pytest.raises(InvalidInputError, match="mode must be"):
        decode_image(data, mode="CMYK")
    with pytest.raises(InvalidInputError, match="size must be"):
        decode_image(data, size=(4, 4, 4))


def test_stream_dead_letters_bad_frames_and_goes_on():
    good = _encode(np.full((12, 12), 90, np.uint8), "JPEG")
    frames = [("f1", good), ("f2", b""), ("f3", good[:40]), ("f4", good)]
    stream = FrameStream(frames, size=8)
    names = [name for name, image in stream if image.shape == (8, 8)]
    assert names == ["f1", "f4"]
    assert stream.n_good == 2 and stream.n_bad == 2
    assert [letter.name for letter in stream.dead_letters] == ["f2", "f3"]
    assert "f3" in stream.dead_letters[1].reason and stream.dead_letters[1].n_bytes == 40


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of about 100 bytes whose header claims ``width`` × ``height`` pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_before_decoding():
    data = bomb_png()
    assert len(data) < 200
    with pytest.raises(InvalidInputError, match=r"bomb\.png: the image claims more pixels than the limit"):
        decode_image(data, where="bomb.png")
    # Under Pillow's own bomb limit, the header is read and ours refuses it before any decoding.
    with pytest.raises(InvalidInputError, match=r"claims 9000×8000 = 72000000 pixels, more than the limit"):
        decode_image(bomb_png(9000, 8000), where="big.png")


def test_the_pixel_limit_admits_an_image_at_the_limit_and_refuses_one_past_it():
    data = _encode(np.zeros((20, 30), dtype=np.uint8))
    assert decode_image(data, max_pixels=600).shape == (20, 30)
    with pytest.raises(InvalidInputError, match="600 pixels, more than the limit of 599"):
        decode_image(data, max_pixels=599)
