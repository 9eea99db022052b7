"""Hostile files: mutated CSV tables, pcaps and images give a clear Vigil error or a result, never a traceback."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.errors import VigilError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def mutate(data: bytes, seed: int, n: int) -> bytes:
    """Flip, cut, insert or repeat a few bytes of ``data``."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(n):
        action = rng.randrange(4)
        at = rng.randrange(len(out) + 1)
        if action == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif action == 1:
            del out[at:]
        elif action == 2:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
        else:
            out[at:at] = out[at : at + 64] * rng.randrange(1, 4)
    return bytes(out)


CSV = b"time,temp_c,flow\n" + b"".join(f"{t},{20 + t % 3}.5,{t * 0.1:.2f}\n".encode() for t in range(40))


@given(seed=st.integers(0, 10**6), n=st.integers(1, 6))
@FUZZ
def test_a_mutated_csv_is_read_or_refused_with_a_vigil_error(tmp_path_factory, seed: int, n: int) -> None:
    from vigil.data.tables import read_table

    path = tmp_path_factory.mktemp("csv") / "plant.csv"
    path.write_bytes(mutate(CSV, seed, n))
    try:
        table = read_table(path, time="time")
    except VigilError as exc:
        assert str(path) in str(exc) or "time" in str(exc) or str(exc)
        return
    assert np.isfinite(table.X.to_numpy(dtype=float)).all()


@pytest.fixture(scope="module")
def pcap_bytes(tmp_path_factory) -> bytes:
    pytest.importorskip("dpkt", reason="packet captures need dpkt: pip install 'vigil[network]'")
    from vigil.network.synthetic import make_capture, write_pcap

    capture = make_capture(["port_scan"], train_seconds=3, gap_seconds=1, n_devices=1)
    return write_pcap(capture.packets, tmp_path_factory.mktemp("pcap") / "scan.pcap").read_bytes()


@given(seed=st.integers(0, 10**6), n=st.integers(1, 6))
@FUZZ
def test_a_mutated_pcap_is_read_or_refused_with_a_vigil_error(pcap_bytes: bytes, seed: int, n: int) -> None:
    from vigil.network.pcap import read_capture

    try:
        packets, stats = read_capture(io.BytesIO(mutate(pcap_bytes, seed, n)))
    except VigilError:
        return
    assert len(packets) <= stats.frames


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


@given(seed=st.integers(0, 10**6), n=st.integers(1, 6), fmt=st.sampled_from(["png", "header"]))
@FUZZ
def test_a_mutated_image_is_decoded_or_refused_with_a_vigil_error(seed: int, n: int, fmt: str) -> None:
    from vigil.vision.io import decode_image

    data = mutate(PNG, seed, n) if fmt == "png" else PNG[:16] + mutate(PNG[16:33], seed, n) + PNG[33:]
    try:
        image = decode_image(data, where="frame", size=16)
    except VigilError as exc:
        assert str(exc).startswith("frame")
        return
    assert image.shape == (16, 16)


def test_files_that_are_not_what_they_claim(tmp_path: Path) -> None:
    from vigil.data.tables import read_table

    for name, data in [("a.csv", PNG), ("b.csv", b""), ("c.csv", b"\xff\xfe\x00\x00"), ("d.csv", b"x\n" * 3)]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(VigilError):
            read_table(tmp_path / name)
