"""The REST API: tokens and scopes, ingestion, limits, alerts, verdicts, models, metrics, error mapping."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import READ_TOKEN, WRITE_TOKEN, anomalous_readings, normal_readings, payload, record

from vigil.alerts import SqlAlertStore
from vigil.errors import InvalidInputError, NotFittedError
from vigil.pipeline import Pipeline
from vigil.service.app import create_app
from vigil.service.auth import TokenAuth
from vigil.streaming.model_registry import ModelRegistry
from vigil.streaming.runtime import Runtime

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture
def app(runtime: Runtime):
    return create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write", READ_TOKEN: "read"}))


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def ingest_alert(client: TestClient, device: str = "p1", start: float = 0.0) -> str:
    rng = np.random.default_rng(int(start))
    records = [record(device, start + t, anomalous_readings(rng)) for t in range(5)]
    response = client.post("/ingest", content=payload(*records), headers=WRITE)
    assert response.status_code == 200, response.text
    return response.json()["results"][-1]["alert_id"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/ingest", b"{}"),
        ("post", "/alerts/x/verdict", b'{"verdict": "confirmed"}'),
        ("post", "/models/pump/activate", b'{"version": "v"}'),
        ("post", "/models/pump/rollback", b""),
    ],
)
def test_write_endpoints_refuse_missing_unknown_and_read_tokens(client: TestClient, method, path, body) -> None:
    assert client.request(method, path, content=body).status_code == 401
    bad = {"Authorization": "Bearer not-a-known-token-at-all"}
    assert client.request(method, path, content=body, headers=bad).status_code == 401
    assert client.request(method, path, content=body, headers=READ).status_code == 403


@pytest.mark.parametrize("path", ["/alerts", "/alerts/x", "/models", "/devices", "/dead-letters", "/models/pump/drift"])
def test_read_endpoints_need_a_token(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers=READ).status_code in (200, 404)
    assert client.get(path, headers=WRITE).status_code in (200, 404)


def test_without_a_token_file_reads_are_open_and_writes_refused(runtime: Runtime) -> None:
    with TestClient(create_app(runtime, auth=None)) as client:
        assert client.get("/alerts").status_code == 200
        response = client.post("/ingest", content=b"{}", headers=WRITE)
        assert response.status_code == 403
        assert "--token-file" in response.json()["detail"]


def test_ingest_returns_one_outcome_per_record(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    records = [record("p1", 0.0, normal_readings(rng)), {"device": "p1"}, record("p1", 1.0, anomalous_readings(rng))]
    response = client.post("/ingest", content=json.dumps({"records": records}), headers=WRITE)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    results = body["results"]
    assert results[0]["anomaly"] is False and results[0]["alert_id"] is None
    assert results[1]["dead_letter"] == "invalid_record"
    assert results[2]["anomaly"] is True and results[2]["alert_id"]


def test_ingest_of_only_bad_records_is_422_and_dead_lettered(client: TestClient, store: SqlAlertStore) -> None:
    response = client.post("/ingest", content=b'{"device": "p1", "time": 0, "readings": [1, 2]}', headers=WRITE)
    assert response.status_code == 422
    assert store.count_dead_letters("invalid_record") == 1


def test_oversized_ingest_is_413_and_dead_lettered(store: SqlAlertStore, registry: ModelRegistry) -> None:
    from vigil.streaming.runtime import RuntimeConfig

    with Runtime(store, registry, config=RuntimeConfig(max_payload_bytes=1000)) as runtime:
        app = create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write"}))
        with TestClient(app) as client:
            response = client.post("/ingest", content=b"[" + b" " * 2000 + b"]", headers=WRITE)
            assert response.status_code == 413

            def chunks():
                yield b"[" + b" " * 600
                yield b" " * 600 + b"]"

            streamed = client.post("/ingest", content=chunks(), headers=WRITE)  # no Content-Length
            assert streamed.status_code == 413
            runtime.drain()
    assert store.count_dead_letters("oversized") == 2


def test_other_bodies_have_a_size_limit(client: TestClient) -> None:
    response = client.post("/alerts/x/verdict", content=b'{"note": "' + b"a" * 70_000 + b'"}', headers=WRITE)
    assert response.status_code == 413


def test_alert_list_filters_detail_and_sql_injection(client: TestClient, store: SqlAlertStore) -> None:
    first = ingest_alert(client, "p1", 0.0)
    ingest_alert(client, "p2", 0.0)
    everything = client.get("/alerts", headers=READ).json()
    assert everything["total"] == 2
    only = client.get("/alerts", params={"device": "p1"}, headers=READ).json()
    assert [a["id"] for a in only["alerts"]] == [first]
    for evil in ["p1' OR '1'='1", "p1; DROP TABLE alerts; --", "' UNION SELECT * FROM dead_letters --"]:
        response = client.get("/alerts", params={"device": evil}, headers=READ)
        assert response.status_code == 200
        assert response.json()["total"] == 0
    assert client.get("/alerts", params={"status": "open' OR 1=1 --"}, headers=READ).status_code == 422
    assert client.get("/alerts", params={"since": "yesterday"}, headers=READ).status_code == 422
    assert store.count() == 2  # the table is intact
    window = client.get(
        "/alerts", params={"since": "1970-01-01T00:00:03+00:00", "until": "1970-01-01T00:00:10+00:00"}, headers=READ
    )
    assert window.json()["total"] == 2
    detail = client.get(f"/alerts/{first}", headers=READ).json()
    assert detail["device"] == "p1"
    assert detail["top_features"][0][0] == "flow_m3h"
    assert "flow_m3h" in detail["explanation"]
    assert client.get("/alerts/does-not-exist", headers=READ).status_code == 404


def test_verdicts_change_status_and_keep_history(client: TestClient, fitted: Pipeline) -> None:
    alert_id = ingest_alert(client)
    note = client.post(f"/alerts/{alert_id}/verdict", json={"verdict": "note", "note": "checking"}, headers=WRITE)
    assert note.status_code == 200 and note.json()["alert"]["status"] == "open"
    response = client.post(
        f"/alerts/{alert_id}/verdict", json={"verdict": "false_positive", "user": "ana"}, headers=WRITE
    )
    assert response.status_code == 200
    assert response.json()["alert"]["status"] == "false_positive"
    assert response.json()["device_threshold"] == pytest.approx(1.25 * fitted.threshold_)
    change = response.json()["threshold_change"]
    assert change["who"] == "ana" and change["alert_id"] == alert_id and change["limited_by"] == "step"
    detail = client.get(f"/alerts/{alert_id}", headers=READ).json()
    assert [f["verdict"] for f in detail["feedback"]] == ["note", "false_positive"]
    assert client.post(f"/alerts/{alert_id}/verdict", json={"verdict": "maybe"}, headers=WRITE).status_code == 422
    assert client.post("/alerts/nope/verdict", json={"verdict": "confirmed"}, headers=WRITE).status_code == 404


def test_models_activate_and_rollback(client: TestClient, registry: ModelRegistry, fitted_v2: Pipeline) -> None:
    first = registry.active("pump")
    second = registry.add("pump", fitted_v2)
    models = client.get("/models", headers=READ).json()["models"]
    assert models[0]["version"] == first
    assert {v["version"] for v in models[0]["versions"]} == {first, second}
    response = client.post("/models/pump/activate", json={"version": second}, headers=WRITE)
    assert response.status_code == 200 and response.json()["previous"] == first
    assert client.get("/health").json()["models"] == {"pump": second}
    rng = np.random.default_rng(1)
    scored = client.post("/ingest", content=payload(record("p1", 0.0, normal_readings(rng))), headers=WRITE)
    assert scored.json()["results"][0]["version"] == second
    assert client.post("/models/pump/rollback", headers=WRITE).json()["version"] == first
    assert client.get("/health").json()["models"] == {"pump": first}
    missing = client.post("/models/pump/activate", json={"version": "nope"}, headers=WRITE)
    assert missing.status_code == 422
    traversal = client.post("/models/pump/activate", json={"version": "../../etc"}, headers=WRITE)
    assert traversal.status_code == 422


def test_metrics_and_health(client: TestClient) -> None:
    ingest_alert(client)
    client.post("/ingest", content=b"{oops", headers=WRITE)
    text = client.get("/metrics").text
    assert 'vigil_messages_received_total{source="http"} 6.0' in text
    assert 'vigil_records_scored_total{model="pump"} 5.0' in text
    assert 'vigil_dead_letters_total{kind="invalid_json"} 1.0' in text
    assert 'vigil_alert_events_total{event="opened"} 1.0' in text
    assert "vigil_ingest_latency_seconds_count 6.0" in text
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_devices_and_timeline(client: TestClient, runtime: Runtime) -> None:
    ingest_alert(client, "p7")
    devices = client.get("/devices", headers=READ).json()["devices"]
    assert [d["device"] for d in devices] == ["p7"]
    scores = [p["score"] for p in runtime.timeline("p7")]
    assert devices[0]["points"] == 5 and devices[0]["flag_rate"] == 1.0
    assert devices[0]["score_mean"] == pytest.approx(np.mean(scores))
    assert devices[0]["score_std"] == pytest.approx(np.std(scores, ddof=1))
    timeline = client.get("/devices/p7/timeline", headers=READ).json()
    assert len(timeline["points"]) == 5 and all(p["anomaly"] for p in timeline["points"])
    assert len(timeline["alerts"]) == 1
    assert client.get("/devices/none/timeline", headers=READ).status_code == 422


def test_vigil_errors_map_to_http_codes(app) -> None:
    @app.get("/boom/{kind}")
    def boom(kind: str) -> None:
        if kind == "input":
            msg = "bad thing at row 3"
            raise InvalidInputError(msg)
        msg = "not fitted"
        raise NotFittedError(msg)

    with TestClient(app) as client:
        assert client.get("/boom/input").status_code == 422
        assert client.get("/boom/input").json() == {"detail": "bad thing at row 3"}
        assert client.get("/boom/fit").status_code == 409


def test_tokens_are_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ingest_alert(client)
    client.get("/alerts", headers=READ)
    client.post("/alerts/x/verdict", json={"verdict": "confirmed"}, headers=READ)
    assert WRITE_TOKEN not in caplog.text and READ_TOKEN not in caplog.text


def test_token_file_errors_never_repeat_a_token(tmp_path) -> None:
    path = tmp_path / "tokens"
    path.write_text("read short-token\n")
    with pytest.raises(InvalidInputError) as info:
        TokenAuth.from_file(path)
    assert "short-token" not in str(info.value) and "line 1" in str(info.value)
    path.write_text(f"# comment\nread {READ_TOKEN}\nwrite {WRITE_TOKEN}\n")
    auth = TokenAuth.from_file(path)
    assert auth.allows(WRITE_TOKEN, "read") and not auth.allows(READ_TOKEN, "write")


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/ingest", "/alerts", "/alerts/{alert_id}", "/alerts/{alert_id}/verdict", "/models", "/metrics"]:
        assert path in paths


def test_timeline_points_carry_the_sensor_values_they_scored(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    sent = [anomalous_readings(rng) for _ in range(4)]
    records = [record("p8", float(t), readings) for t, readings in enumerate(sent)]
    assert client.post("/ingest", content=payload(*records), headers=WRITE).status_code == 200
    points = client.get("/devices/p8/timeline", headers=READ).json()["points"]
    assert [p["values"] for p in points] == [{k: pytest.approx(v) for k, v in r.items()} for r in sent]


def test_dead_letters_are_counted_by_kind(client: TestClient) -> None:
    bad = [b"not json", b"{nor this", b'{"device": "p1", "time": 0, "readings": [1, 2]}']
    for body in bad:
        client.post("/ingest", content=body, headers=WRITE)
    listing = client.get("/dead-letters?limit=1", headers=READ).json()
    assert listing["by_kind"] == {"invalid_json": 2, "invalid_record": 1}
    assert listing["total"] == 3 and len(listing["dead_letters"]) == 1
    assert client.get("/dead-letters?kind=invalid_json", headers=READ).json()["total"] == 2
