"""`vigil serve --camera-model`: frames posted by a camera are scored, and a defective one becomes an alert."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

pytest.importorskip("torch")

from fastapi.testclient import TestClient
from PIL import Image
from service_helpers import READ_TOKEN, WRITE_TOKEN

from vigil.service.server import Service, ServiceConfig
from vigil.streaming.model_registry import ModelRegistry
from vigil.vision.synthetic import make_synthetic_set

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


def _png(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def service(tmp_path: Path, registry: ModelRegistry, camera_model: Path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"write {WRITE_TOKEN}\nread {READ_TOKEN}\n")
    config = ServiceConfig(
        registry=registry.root,
        store=f"sqlite:///{tmp_path / 'alerts.db'}",
        token_file=tokens,
        camera_model=camera_model,
    )
    with Service(config) as running:
        yield running


def test_a_defective_frame_becomes_an_alert_that_says_where(service) -> None:
    frames = make_synthetic_set(0, 2, size=48, kinds=("hole",), seed=7)
    with TestClient(service.app) as client:
        seen = make_synthetic_set(40, 0, size=48, seed=1).images[0]  # a training part: below the 1 % limit
        good = client.post("/ingest/image/cam-1?name=ok.png", content=_png(seen), headers=WRITE)
        assert good.status_code == 200, good.text
        assert good.json()["anomaly"] is False and good.json()["alert_id"] is None

        bad = client.post("/ingest/image/cam-1?name=part-17.png", content=_png(frames.images[0]), headers=WRITE)
        assert bad.status_code == 200, bad.text
        result = bad.json()
        assert result["anomaly"] is True and result["score"] > result["threshold"]
        alert = client.get(f"/alerts/{result['alert_id']}", headers=READ).json()
        assert alert["device"] == "cam-1" and alert["incident_type"] == "visual_defect"
        assert "part-17.png" in alert["explanation"] and alert["model_version"].startswith("patch-gauss-")
        # The hottest cell of the 4 × 4 grid holds the hole.
        rows, cols = frames.masks[0].nonzero()
        expected = f"row {int(rows.mean()) * 4 // 48 + 1}, column {int(cols.mean()) * 4 // 48 + 1}"
        assert alert["top_features"][0][0] == expected
        assert result["region"][0]["cell"] == expected

        health = client.get("/health").json()
        assert health["camera"]["frames"] == 2 and health["camera"]["defects"] == 1


def test_a_corrupt_frame_is_dead_lettered_and_the_camera_goes_on(service) -> None:
    with TestClient(service.app) as client:
        refused = client.post("/ingest/image/cam-2?name=torn.jpg", content=b"\xff\xd8\xff\xe0 cut", headers=WRITE)
        assert refused.status_code == 422
        assert "torn.jpg" in refused.json()["detail"] and "cam-2" in refused.json()["detail"]
        letters = client.get("/dead-letters", headers=READ).json()["dead_letters"]
        assert any(d["device"] == "cam-2" and "torn.jpg" in d["reason"] for d in letters)
        image = make_synthetic_set(1, 0, size=48, seed=9).images[0]
        assert client.post("/ingest/image/cam-2", content=_png(image), headers=WRITE).status_code == 200
        assert client.post("/ingest/image/cam-2", content=_png(image)).status_code == 401


def test_a_decompression_bomb_is_a_dead_letter_not_a_retry(service) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    with TestClient(service.app) as client:
        refused = client.post("/ingest/image/cam-3?name=bomb.png", content=bomb, headers=WRITE)
        assert refused.status_code == 422, refused.text
        assert "more pixels than the limit" in refused.json()["detail"]
        letters = client.get("/dead-letters", headers=READ).json()["dead_letters"]
        assert [d["device"] for d in letters] == ["cam-3"]


def test_camera_frames_at_the_size_limit_are_read_and_one_byte_past_refused(service) -> None:
    from vigil.service.app import DEFAULT_MAX_IMAGE_BYTES

    with TestClient(service.app) as client:
        at_limit = client.post("/ingest/image/cam-4", content=b"x" * DEFAULT_MAX_IMAGE_BYTES, headers=WRITE)
        assert at_limit.status_code == 422  # read, and refused for not being an image
        past = client.post("/ingest/image/cam-4", content=b"x" * (DEFAULT_MAX_IMAGE_BYTES + 1), headers=WRITE)
        assert past.status_code == 413


def test_without_a_camera_model_the_endpoint_says_how_to_get_one(tmp_path: Path, registry: ModelRegistry) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"write {WRITE_TOKEN}\n")
    config = ServiceConfig(registry=registry.root, store=f"sqlite:///{tmp_path / 'a.db'}", token_file=tokens)
    with Service(config) as running, TestClient(running.app) as client:
        response = client.post("/ingest/image/cam-1", content=b"x", headers=WRITE)
        assert response.status_code == 404 and "--camera-model" in response.json()["detail"]


def test_a_camera_only_service_needs_no_telemetry_model(tmp_path: Path, camera_model: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"write {WRITE_TOKEN}\n")
    config = ServiceConfig(
        registry=tmp_path / "empty-registry",
        store=f"sqlite:///{tmp_path / 'a.db'}",
        token_file=tokens,
        camera_model=camera_model,
    )
    with Service(config) as running, TestClient(running.app) as client:
        telemetry = client.post("/ingest", content=b'{"device": "p1", "time": 0, "readings": {"x": 1}}', headers=WRITE)
        assert telemetry.status_code == 422
        assert telemetry.json()["results"][0]["dead_letter"] == "unknown_device"
        image = make_synthetic_set(1, 0, size=48, seed=9).images[0]
        assert client.post("/ingest/image/cam-1", content=_png(image), headers=WRITE).status_code == 200
