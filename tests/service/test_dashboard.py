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


def boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"] - 1
        and b["x"] < a["x"] + a["width"] - 1
        and (a["y"] < b["y"] + b["height"] - 1 and b["y"] < a["y"] + a["height"] - 1)
    )


def open_p1_alert(page, live_server: str) -> None:
    page.goto(live_server + "/")
    page.fill("#token", READ_TOKEN)
    page.click("#token-form button")
    page.locator("#alerts tbody tr", has_text="p1").first.click()
    page.wait_for_selector("#detail:not([hidden])")
    page.wait_for_selector("#sensor-charts svg.sensor-chart polyline.value-line")


def tick_labels(page, chart: str = "#chart") -> list[str]:
    return page.locator(f"{chart} text.tick-label").all_text_contents()


def test_timeline_has_a_labelled_time_axis_range_zoom_and_the_alerts_sensors(
    live_server: str, browser, runtime: Runtime, tmp_path: Path
) -> None:
    feed(runtime)  # p1 from 1970-01-01 00:00:00 to 00:01:19 UTC, anomalous flow at 40-49 s
    page = browser.new_page(viewport={"width": 1400, "height": 1400}, timezone_id="Asia/Kolkata")
    open_p1_alert(page, live_server)
    assert page.text_content("#tz-label") == "times in UTC"
    assert "time (UTC)" in page.text_content("#chart text.axis-caption")
    assert tick_labels(page) == [f"00:{s // 60:02d}:{s % 60:02d}" for s in range(0, 80, 10)]
    chart = page.locator("#chart").bounding_box()
    ticks = page.locator("#chart text.tick-label")
    first, last = ticks.first.bounding_box(), ticks.last.bounding_box()
    # labels sit under the plot, left to right in time order, inside the chart
    assert chart["x"] <= first["x"] < last["x"] <= chart["x"] + chart["width"]
    assert first["y"] > chart["y"] + chart["height"] / 2

    page.select_option("#tz-select", "local")  # the browser's zone, named, and the labels moved with it
    page.wait_for_function("document.querySelector('#tz-label').textContent.includes('UTC+05:30')")
    assert "Asia/" in page.text_content("#tz-label"), page.text_content("#tz-label")
    # the chart redraws after the label: wait for its first tick (the page may refresh the timeline meanwhile)
    page.wait_for_function("document.querySelector('#chart text.tick-label').textContent === '05:30:00'")
    page.select_option("#tz-select", "utc")
    page.wait_for_function("document.querySelector('#tz-label').textContent === 'times in UTC'")
    page.wait_for_function("document.querySelector('#chart text.tick-label').textContent === '00:00:00'")

    # The raw values of the alert's top sensor beside the score: same width, same time window, just below.
    sensor = page.locator("#sensor-charts svg.sensor-chart").first
    assert sensor.get_attribute("data-sensor") == "flow_m3h"
    assert "flow_m3h" in sensor.locator("text.sensor-name").text_content()
    values = sensor.locator("polyline.value-line").get_attribute("points").split()
    assert len(values) == 80
    box = sensor.bounding_box()
    assert abs(box["x"] - chart["x"]) < 1 and abs(box["width"] - chart["width"]) < 1
    assert box["y"] >= chart["y"] + chart["height"]
    assert sensor.locator("text.tick-label").all_text_contents() == tick_labels(page)
    # the alert's 10 anomalous flows (+6) are the top of that chart: the lowest y coordinates
    ys = [float(p.split(",")[1]) for p in values]
    assert set(sorted(range(80), key=ys.__getitem__)[:10]) == set(range(40, 50))

    page.click("#zoom-in")  # the middle half: 20 s to 59 s
    page.wait_for_function("document.querySelector('#chart text.tick-label').textContent === '00:00:20'")
    assert tick_labels(page)[-1] == "00:00:55"  # a finer step for the shorter span
    assert len(page.locator("#chart polyline.score-line").get_attribute("points").split()) == 40
    page.click("#zoom-reset")
    page.wait_for_function("document.querySelector('#chart text.tick-label').textContent === '00:00:00'")

    # a drag from 25 % to 50 % of the plot zooms to about 20-40 s
    plot_left, plot_right = chart["x"] + chart["width"] * 44 / chart["width"], chart["x"] + chart["width"] - 12
    y = chart["y"] + chart["height"] / 2
    page.mouse.move(plot_left + 0.25 * (plot_right - plot_left), y)
    page.mouse.down()
    page.mouse.move(plot_left + 0.5 * (plot_right - plot_left), y, steps=5)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#chart text.tick-label').textContent !== '00:00:00'")
    kept = len(page.locator("#chart polyline.score-line").get_attribute("points").split())
    assert 18 <= kept <= 22, kept
    page.select_option("#range-select", "900")  # a range choice starts from the whole last 15 minutes again
    page.wait_for_function(
        "document.querySelector('#chart polyline.score-line').getAttribute('points').trim().split(' ').length === 80"
    )
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
    page.close()


def test_dashboard_shows_dead_letters_drift_and_declared_assets(
    live_server: str, browser, runtime: Runtime, tmp_path: Path
) -> None:
    feed(runtime)  # one dead letter: the device id with markup in it
    rng = np.random.default_rng(1)
    # 250 anomalous scores: far more above the training quantiles than training saw, so the model drifts
    drifting = [record("p2", float(t), anomalous_readings(rng)) for t in range(250)]
    runtime.submit(json.dumps(drifting).encode(), "http").result(timeout=30)
    # a device whose every record lacks a sensor: listed, with its dead letters, though it never scored
    lacking = [record("p5", float(t), {"temp_c": 1.0, "pressure_bar": 2.0, "flow_m3h": 3.0}) for t in range(3)]
    runtime.submit(json.dumps(lacking).encode(), "http").result(timeout=30)
    runtime.declare("p9", "pump", silent_after=3600)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(live_server + "/")
    page.fill("#token", READ_TOKEN)
    page.click("#token-form button")

    page.locator("#dead-letters tbody tr").first.wait_for()
    assert page.locator("#dead-letters tbody tr").count() == 4  # newest first: p5's three, then the markup id
    row = page.locator("#dead-letters tbody tr").last
    assert row.locator("td").nth(1).text_content() == "invalid_record"
    assert "device" in row.locator("td").nth(3).text_content()
    kinds = page.locator("#dead-letter-kinds .kind").all_text_contents()
    assert kinds == ["sensors_mismatch 3", "invalid_record 1"]
    assert page.text_content("#dead-letter-count") == "4 in all"

    drift = page.locator("#drift tbody tr[data-model='pump']")
    drift.wait_for()
    cells = drift.locator("td").all_text_contents()
    assert cells[0] == "pump" and int(cells[1]) >= 250 and cells[3] == "drifted"
    assert float(cells[2]) > 4 and "drifted" in (drift.get_attribute("class") or "")

    page.locator("#assets tbody tr", has_text="p9").wait_for()
    assets = {
        r.locator("td").first.text_content(): r.locator("td").all_text_contents()
        for r in page.locator("#assets tbody tr").all()
    }
    # declared, sensors, last record, state, dead letters, drift
    assert assets["p9"][2:] == ["yes", "4", "never", "waiting", "0", "— (0 scores)"]
    assert assets["p1"][2] == "no" and assets["p1"][5] == "sending" and assets["p1"][7] == "— (80 scores)"
    assert assets["p5"][4:7] == ["never", "waiting", "3"]
    p5 = page.locator("#assets tbody tr[data-device='p5'] td.dead")
    assert p5.get_attribute("title") == "latest: sensors_mismatch"
    assert assets["p2"][7].startswith("drifted ") and float(assets["p2"][7].split()[1]) > 4
    assert "drifted" in (page.locator("#assets tbody tr[data-device='p2']").get_attribute("class") or "")
    sensors = page.locator("#assets tbody tr[data-device='p9'] td.sensors").get_attribute("title")
    assert sensors == "temp_c, pressure_bar, flow_m3h, current_a"
    assert "1 declared" in page.text_content("#asset-count")
    page.screenshot(path=str(tmp_path / "operations.png"), full_page=True)
    assert page.evaluate("window.__xss") is None
    page.close()


def test_new_views_reflow_without_overlap_at_a_phone_width(
    live_server: str, browser, runtime: Runtime, tmp_path: Path
) -> None:
    feed(runtime)
    page = browser.new_page(viewport={"width": 420, "height": 900})
    open_p1_alert(page, live_server)
    page.locator("#dead-letters tbody tr").first.wait_for()
    page.locator("#drift tbody tr").first.wait_for()
    page.screenshot(path=str(tmp_path / "dashboard-420-all.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    names = ("alerts", "detail", "incidents", "timeline", "dead-letters", "drift", "assets", "models")
    boxes = [page.locator(f"#{name}-panel").bounding_box() for name in names]
    for box in boxes:
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 420
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not boxes_overlap(a, b)
    # the axis still reads at this width: a few labels, none over another, all inside the chart
    chart = page.locator("#chart").bounding_box()
    labels = [t.bounding_box() for t in page.locator("#chart text.tick-label").all()]
    assert len(labels) >= 2
    for i, a in enumerate(labels):
        assert chart["x"] <= a["x"] and a["x"] + a["width"] <= chart["x"] + chart["width"]
        for b in labels[i + 1 :]:
            assert not boxes_overlap(a, b)
    controls = [page.locator(f"#{c}").bounding_box() for c in ("range-select", "zoom-in", "zoom-out", "tz-select")]
    for box in controls:
        assert box["x"] + box["width"] <= 420
    for i, a in enumerate(controls):
        for b in controls[i + 1 :]:
            assert not boxes_overlap(a, b)
    page.close()
