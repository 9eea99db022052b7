"""A camera alert in the dashboard: the frame with its anomaly map, colour bar and threshold, served at
/alerts/{id}/image; selecting it leaves the telemetry timeline as it was (headless Chromium)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("torch")

from PIL import Image
from service_helpers import READ_TOKEN, WRITE_TOKEN, serve_in_thread
from test_dashboard import feed

from vigil.alerts import SqlAlertStore
from vigil.service.app import create_app
from vigil.service.auth import TokenAuth
from vigil.streaming.runtime import Runtime
from vigil.streaming.sources.camera import CameraInspector
from vigil.vision.synthetic import make_synthetic_set

READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def camera_server(runtime: Runtime, store: SqlAlertStore, camera_model: Path) -> Iterator[str]:
    """The service with telemetry (the runtime) and a camera model, on a free port."""
    inspector = CameraInspector(camera_model, store)
    app = create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write", READ_TOKEN: "read"}), inspector=inspector)
    with serve_in_thread(app) as url:
        yield url


def _post_defect(url: str) -> dict:
    frames = make_synthetic_set(0, 1, size=48, kinds=("hole",), seed=7)
    frame = _png(frames.images[0])
    response = httpx.post(f"{url}/ingest/image/line1-cam?name=part-17.png", content=frame, headers=WRITE)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["anomaly"] is True
    return result


def test_a_camera_alert_serves_its_frame_with_the_anomaly_map(camera_server: str, runtime: Runtime) -> None:
    feed(runtime)
    result = _post_defect(camera_server)
    response = httpx.get(f"{camera_server}/alerts/{result['alert_id']}/image", headers=READ)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    assert min(picture.shape[:2]) > 48 * 4  # drawn larger than the 48 px frame, with a colour bar beside it
    # The heat map and the colour bar are in colour over a grey frame: many pixels are far from grey.
    spread = picture.max(axis=2) - picture.min(axis=2)
    assert (spread > 100).mean() > 0.02

    telemetry = runtime.store.list(device="p1")[0]
    missing = httpx.get(f"{camera_server}/alerts/{telemetry.id}/image", headers=READ)
    assert missing.status_code == 404 and "no image" in missing.json()["detail"]
    assert httpx.get(f"{camera_server}/alerts/{result['alert_id']}/image").status_code == 401


def test_selecting_a_camera_alert_shows_the_frame_and_keeps_the_timeline(
    camera_server: str, browser, runtime: Runtime, tmp_path: Path
) -> None:
    feed(runtime)  # a telemetry alert on p1, whose timeline the dashboard shows first
    result = _post_defect(camera_server)
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(camera_server + "/")
    page.fill("#token", READ_TOKEN)
    page.click("#token-form button")
    page.wait_for_selector("#chart polyline.score-line")
    assert page.locator("#detail-image").is_hidden()

    page.locator("#alerts tbody tr", has_text="line1-cam").first.click()
    page.wait_for_function(f"document.querySelector('#detail-id').textContent === '{result['alert_id']}'")
    page.wait_for_function("document.querySelector('#detail-frame').complete && "
                           "document.querySelector('#detail-frame').naturalWidth > 0")  # fmt: skip
    frame = page.locator("#detail-frame")
    assert frame.is_visible()
    box = frame.bounding_box()
    panel = page.locator("#detail-panel").bounding_box()
    assert box["width"] > 150 and box["x"] + box["width"] <= panel["x"] + panel["width"] + 1
    caption = page.text_content("#detail-image-caption")
    assert "threshold" in caption and "anomaly map" in caption
    assert "part-17.png" in page.text_content("#detail-explanation")
    page.screenshot(path=str(tmp_path / "camera-alert.png"), full_page=True)

    # The timeline keeps the telemetry device it showed (a camera sends no telemetry) and no error appears,
    # also after the page's next refresh (every 2 s).
    page.wait_for_timeout(2500)
    assert page.locator("#error").is_hidden(), page.text_content("#error")
    assert page.eval_on_selector("#device-select", "s => s.value") == "p1"
    assert page.locator("#chart polyline.score-line").count() == 1

    # Back to a telemetry alert: the frame goes away and that alert's sensors are drawn.
    page.locator("#alerts tbody tr", has_text="p1").first.click()
    page.wait_for_selector("#sensor-charts svg.sensor-chart polyline.value-line")
    assert page.locator("#detail-image").is_hidden()
    page.close()
