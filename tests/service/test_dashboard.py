"""The dashboard in headless Chromium: live alerts, detail, timeline, verdict buttons, models; offline and safe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from service_helpers import READ_TOKEN, WRITE_TOKEN, anomalous_readings, normal_readings, record

from vigil.alerts import SqlAlertStore
from vigil.streaming.runtime import Runtime

EVIL = "pump-<img src=x onerror=window.__xss=1>"


def feed(runtime: Runtime) -> None:
    rng = np.random.default_rng(0)
    records = [record("p1", float(t), normal_readings(rng)) for t in range(40)]
    records += [record("p1", float(t), anomalous_readings(rng)) for t in range(40, 50)]
    records += [record("p1", float(t), normal_readings(rng)) for t in range(50, 80)]
    records += [record(EVIL, 0.0, anomalous_readings(rng))]
    outcomes = runtime.submit(json.dumps(records).encode(), "http").result(timeout=10)
    # A device id outside the documented alphabet is refused (a dead letter), so markup never reaches a page.
    assert type(outcomes[-1]).__name__ == "DeadLetter"


def test_dashboard_shows_alerts_and_takes_verdicts(
    live_server: str, browser, runtime: Runtime, store: SqlAlertStore, tmp_path: Path
) -> None:
    feed(runtime)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(live_server + "/")
    page.fill("#token", WRITE_TOKEN)
    page.click("#token-form button")
    rows = page.locator("#alerts tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1
    assert page.locator("#alerts tbody").get_by_text(EVIL).count() == 0

    page.locator("#alerts tbody tr", has_text="p1").first.click()
    page.wait_for_selector("#detail:not([hidden])")
    assert "flow_m3h" in page.text_content("#detail-explanation")
    assert page.locator("#detail-features .bar").first.text_content().startswith("flow_m3h")
    page.wait_for_selector("#chart polyline.score-line")
    assert page.locator("#chart polyline.threshold-line").count() == 1
    assert page.locator("#chart rect.alert-span").count() == 1
    flagged = sum(point["anomaly"] for point in runtime.timeline("p1"))
    assert flagged >= 10
    assert page.locator("#chart circle.flag").count() == flagged
    assert "active" in page.text_content("#models")

    page.fill("#verdict-note", "maintenance test")
    page.click("#reject")
    page.locator("#alerts tbody tr.selected", has_text="false positive").wait_for()
    alert = store.list(device="p1")[0]
    assert alert.status == "false_positive"
    assert alert.feedback[-1]["note"] == "maintenance test"
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    assert page.evaluate("window.__xss") is None
    assert all(url.startswith(live_server) for url in requests), "the dashboard must not load anything external"
    page.close()


def test_dashboard_with_a_read_token_cannot_write(live_server: str, browser, runtime: Runtime, store) -> None:
    feed(runtime)
    page = browser.new_page()
    page.goto(live_server + "/")
    page.fill("#token", READ_TOKEN)
    page.click("#token-form button")
    page.locator("#alerts tbody tr", has_text="p1").first.click()
    page.wait_for_selector("#detail:not([hidden])")
    page.click("#confirm")
    page.wait_for_selector("#error:not([hidden])")
    assert "403" in page.text_content("#error")
    assert store.list(device="p1")[0].status != "confirmed"
    page.close()


def test_api_docs_render_offline(live_server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    # Anything that is not this server fails, as it would on a plant network without internet access.
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server) else route.abort())
    page.goto(live_server + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Vigil monitoring service" in page.text_content(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert any(path.startswith("/alerts") for path in paths) and "/ingest" in paths
    assert all(url.startswith(live_server) for url in requests), [u for u in requests if not u.startswith(live_server)]
    page.close()


def test_dashboard_reflows_to_a_phone_width(live_server: str, browser, runtime: Runtime, tmp_path: Path) -> None:
    feed(runtime)
    page = browser.new_page(viewport={"width": 420, "height": 900})
    page.goto(live_server + "/")
    page.fill("#token", READ_TOKEN)
    page.click("#token-form button")
    page.locator("#alerts tbody tr").first.wait_for()
    page.locator("#alerts tbody tr", has_text="p1").first.click()
    page.wait_for_selector("#detail:not([hidden])")
    page.screenshot(path=str(tmp_path / "dashboard-420.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420  # nothing sticks out sideways
    boxes = {name: page.locator(f"#{name}-panel").bounding_box() for name in ("alerts", "detail", "timeline")}
    for box in boxes.values():
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 420
    # one column: each panel below the one before
    assert boxes["alerts"]["y"] + boxes["alerts"]["height"] <= boxes["detail"]["y"] + 1
    assert boxes["detail"]["y"] + boxes["detail"]["height"] <= boxes["timeline"]["y"] + 1
    page.close()


def test_dashboard_lists_asset_incidents_with_their_alerts(
    live_server: str, browser, runtime: Runtime, store: SqlAlertStore, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from vigil.alerts import Alert, AlertEvent, AlertSink, IncidentCorrelator, alert_id

    correlator = IncidentCorrelator(window_seconds=60)
    runtime.sink.correlator = correlator
    feed(runtime)  # a telemetry alert on p1 at 40-49 s
    start = datetime.fromtimestamp(45, tz=UTC)
    scan = Alert(
        id=alert_id("p1/plc", "kitnet-1", start),
        device="p1/plc",
        start=start,
        end=start + timedelta(seconds=4),
        peak_time=start,
        score=8.0,
        threshold=1.0,
        model_version="kitnet-1",
        top_features=[("HH_jit_L0.1_mean", 0.7)],
        incident_type="port_scan",
        status="closed",
        explanation="10.0.0.66 probed 1024 ports <img src=x onerror=window.__xss=1>",
        modality="network",
    )
    assert AlertSink(store, correlator=correlator).deliver([AlertEvent("opened", scan)])  # the capture's path
    (incident,) = store.list_incidents()

    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(live_server + "/")
    page.fill("#token", READ_TOKEN)
    page.click("#token-form button")
    card = page.locator(f"#incidents li.incident[data-id='{incident.id}']")
    card.wait_for()
    assert card.locator(".asset").text_content() == "p1"
    assert card.locator(".incident-head .modality").all_text_contents() == ["network", "telemetry"]
    members = card.locator("li.member")
    assert members.count() == 2
    assert members.locator(".modality").all_text_contents() == ["telemetry", "network"]
    assert members.locator(".device").all_text_contents() == ["p1", "p1/plc"]
    assert "flow_m3h" in members.nth(0).text_content()
    assert "probed 1024 ports" in members.nth(1).text_content()
    assert "1 in all" in page.text_content("#incident-count")

    members.nth(1).click()  # a member opens as any alert does
    page.wait_for_selector("#detail:not([hidden])")
    page.wait_for_function(f"document.querySelector('#detail-id').textContent === '{scan.id}'")
    assert "probed 1024 ports" in page.text_content("#detail-explanation")
    page.screenshot(path=str(tmp_path / "incidents.png"), full_page=True)
    assert page.evaluate("window.__xss") is None  # the explanation is shown as text, never as markup
    page.close()
