"""Safe feedback end to end: the guard in the runtime, the history over real HTTP, undo, and a restart."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from service_helpers import WRITE_TOKEN, anomalous_readings, normal_readings, payload, record

from vigil.alerts import SqlAlertStore
from vigil.pipeline import Pipeline
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime, RuntimeConfig

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}


def hot_readings(fitted: Pipeline, low: float, high: float, n: int) -> list[dict[str, float]]:
    """Readings whose scores lie between ``low`` and ``high`` times the model's threshold."""
    rng = np.random.default_rng(3)
    found: list[dict[str, float]] = []
    while len(found) < n:
        readings = normal_readings(rng)
        readings["flow_m3h"] += float(rng.uniform(0.2, 0.6))
        score = fitted.score_samples(np.array([[readings[s] for s in fitted.feature_names_in_]]))[0]
        if low * fitted.threshold_ < score < high * fitted.threshold_:
            found.append(readings)
    return found


def test_a_raised_threshold_never_hides_a_reading_above_the_guard_and_says_so(
    runtime: Runtime, store: SqlAlertStore, fitted: Pipeline
) -> None:
    rng = np.random.default_rng(4)
    runtime.submit(payload(*[record("p1", float(t), anomalous_readings(rng)) for t in range(3)]), "t").result(10)
    alert = store.list(device="p1")[0]
    rejected = store.add_verdict(alert.id, "false_positive", user="ana")
    for _ in range(4):
        runtime.apply_verdict(rejected)
    assert runtime.device_threshold("p1")["threshold"] == pytest.approx(2 * fitted.threshold_)
    quiet = hot_readings(fitted, 1.05, 1.45, 3)
    loud = hot_readings(fitted, 1.55, 1.95, 3)
    records = [record("p1", 100.0 + i, r) for i, r in enumerate(quiet + loud)]
    decisions = runtime.submit(payload(*records), "t").result(10)
    assert [d.anomaly for d in decisions] == [False] * 3 + [True] * 3
    assert all(d.note == "" for d in decisions[:3])
    assert all("feedback guard" in d.note and "change 4 (ana" in d.note for d in decisions[3:])
    assert "feedback guard" in runtime.timeline("p1")[-1]["note"]


def test_history_and_undo_over_http_survive_a_restart(
    live_server: str, runtime: Runtime, store: SqlAlertStore, registry: ModelRegistry, config: RuntimeConfig,
    fitted: Pipeline,
) -> None:  # fmt: skip
    rng = np.random.default_rng(5)
    with httpx.Client(base_url=live_server, headers=WRITE, timeout=10) as client:
        body = payload(*[record("p1", float(t), anomalous_readings(rng)) for t in range(3)])
        alert_id = client.post("/ingest", content=body).json()["results"][-1]["alert_id"]
        verdict = client.post(f"/alerts/{alert_id}/verdict", json={"verdict": "false_positive", "user": "ana"})
        assert verdict.json()["threshold_change"]["new"] == pytest.approx(1.25 * fitted.threshold_)
        device = client.get("/devices").json()["devices"][0]
        assert device["threshold"] == pytest.approx(1.25 * fitted.threshold_)  # shown at once, not at the next reading
        assert device["feedback"]["in_force"]["who"] == "ana"
        view = client.get("/devices/p1/threshold").json()
        assert [c["alert_id"] for c in view["history"]] == [alert_id] and view["undoable"] == 1
        assert client.get("/devices/nope/threshold").status_code == 404
    runtime.stop()
    with Runtime(store, registry, config=config) as second:
        view = second.device_threshold("p1")
        assert view["threshold"] == pytest.approx(1.25 * fitted.threshold_) and len(view["history"]) == 1
        undo = second.undo_threshold("p1", who="ben")
        assert (undo.action, undo.undoes, undo.new) == ("undo", 1, fitted.threshold_)
    with Runtime(store, registry, config=config) as third:
        assert [c["action"] for c in third.device_threshold("p1")["history"]] == ["verdict", "undo"]


def test_dashboard_shows_a_verdicts_threshold_change_and_undoes_it(
    live_server: str, browser, runtime: Runtime, store: SqlAlertStore, fitted: Pipeline
) -> None:
    rng = np.random.default_rng(6)
    runtime.submit(payload(*[record("p1", float(t), anomalous_readings(rng)) for t in range(3)]), "t").result(10)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(live_server + "/")
    page.fill("#token", WRITE_TOKEN)
    page.click("#token-form button")
    page.locator("#alerts tbody tr", has_text="p1").first.click()
    page.wait_for_selector("#detail:not([hidden])")
    page.click("#reject")
    raised = f"threshold {1.25 * fitted.threshold_:.3g}"
    page.locator("#device-threshold", has_text=raised).wait_for()
    page.locator("#threshold-history li", has_text="verdict by dashboard").wait_for()
    assert "false positive on alert" in page.text_content("#threshold-history")
    page.click("#undo-threshold")
    page.locator("#threshold-history li", has_text="undo by dashboard").wait_for()
    page.locator("#device-threshold", has_text=f"threshold {fitted.threshold_:.3g} ").wait_for()
    assert page.locator("#undo-threshold").count() == 0
    assert runtime.device_threshold("p1")["threshold"] == fitted.threshold_
    page.close()
