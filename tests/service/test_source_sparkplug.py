"""The Sparkplug B source against the real Mosquitto, fed by an edge node that publishes real Sparkplug payloads."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from service_helpers import anomalous_readings, normal_readings

pytest.importorskip("google.protobuf", reason="the Sparkplug B source needs protobuf: pip install 'vigil[plant]'")

from vigil.alerts import SqlAlertStore
from vigil.streaming.runtime import Decision, Runtime
from vigil.streaming.sources.mqtt import MqttOptions
from vigil.streaming.sources.sparkplug import SparkplugAsset, SparkplugIngest, SparkplugOptions
from vigil.streaming.sources.sparkplug_edge import EdgeNode

pytestmark = pytest.mark.mqtt

#: The edge node's metric names and their Vigil sensors (the model was fitted on SENSORS).
METRICS = {"Temperature": "temp_c", "Pressure": "pressure_bar", "Flow": "flow_m3h", "Motor/Current": "current_a"}
BY_SENSOR = {sensor: metric for metric, sensor in METRICS.items()}  # the asset's map: sensor -> metric


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # polling another thread's or process's effect, with a deadline
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def as_metrics(readings: dict[str, float]) -> dict[str, float]:
    return {BY_SENSOR[sensor]: value for sensor, value in readings.items()}


class Decisions:
    """Collects the outcomes the source's records get from the runtime."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self._lock = threading.Lock()

    def __call__(self, outcomes: list[object]) -> None:
        with self._lock:
            self.items.extend(outcomes)

    def of(self, device: str) -> list[Decision]:
        with self._lock:
            return [o for o in self.items if isinstance(o, Decision) and o.device == device]


@pytest.fixture
def group() -> str:
    return f"vigiltest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def plant(runtime: Runtime, broker: str, group: str) -> Iterator[Callable[..., tuple]]:
    """Start a Sparkplug source and an edge node with devices pump-1 and pump-2 (same metrics)."""
    started: list[object] = []

    def start(*, rebirth_interval: float = 0.2, unlisted: bool = False) -> tuple:
        decisions = Decisions()
        assets = tuple(
            SparkplugAsset("line-1", device, asset=f"{device}.line-1", sensors=BY_SENSOR, asset_type="pump")
            for device in ("pump-1", "pump-2")
        )
        options = SparkplugOptions(
            group=group,
            broker=MqttOptions(url=broker, client_id=f"{group}-host", reconnect_min=1, reconnect_max=2),
            assets=assets,
            unlisted=unlisted,
            rebirth_interval=rebirth_interval,
        )
        source = SparkplugIngest(runtime, options, on_done=decisions).start()
        started.append(source)
        assert source.wait_connected(10)
        first = normal_readings(np.random.default_rng(99))
        devices = {
            device: {metric: ("Double", first[sensor]) for metric, sensor in METRICS.items()}
            for device in ("pump-1", "pump-2")
        }
        devices["pump-2"]["Status"] = ("String", "running")
        edge = EdgeNode(MqttOptions(url=broker, client_id=f"{group}-edge"), group, "line-1", devices)
        edge.connect()  # after the source's subscription, as a host application is up before its nodes
        started.append(edge)
        return source, edge, decisions

    yield start
    for item in reversed(started):
        try:
            item.stop()
        except Exception:  # a test may have closed it already
            pass


def test_births_and_data_by_alias_become_complete_records_that_are_scored(plant, runtime: Runtime) -> None:
    source, edge, decisions = plant()
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 1, 10, "the DBIRTH's record of pump-1")
    rng = np.random.default_rng(0)
    stamps = []
    start = int(time.time() * 1000) + 1000  # after the birth's time stamp, or the records would be out of order
    previous: dict[str, float] = {}
    for t in range(30):
        readings = anomalous_readings(rng) if t >= 20 else normal_readings(rng)
        if t % 3 == 1:  # report by exception: only the flow changed (a little); the rest is the previous state
            readings = {"flow_m3h": previous["flow_m3h"] + 0.01}
        previous = {**previous, **readings}
        stamp = start + 1000 * t
        stamps.append(stamp)
        edge.data("pump-1", as_metrics(readings), timestamp_ms=stamp)
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 31, 20, "31 decisions (birth + 30 data)")
    scored = decisions.of("pump-1.line-1")[1:]
    assert [round(d.time.timestamp() * 1000) for d in scored] == stamps  # the payloads' own time stamps
    anomalous = [d.anomaly for d in scored]
    assert not any(anomalous[:20]) and all(anomalous[20:])  # flow + 6 breaks the learned correlation
    assert runtime.store.count_dead_letters() == 0
    status = source.status()["sparkplug"]
    assert status["assets"]["pump-1.line-1"]["online"] and status["counts"]["DDATA"] == 30
    assert status["counts"].get("sequence_gaps", 0) == 0


def test_a_sequence_gap_asks_for_a_rebirth_and_nothing_is_scored_until_it_comes(plant, runtime: Runtime) -> None:
    source, edge, decisions = plant()
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 1, 10, "the birth record")
    rng = np.random.default_rng(1)
    edge.data("pump-1", as_metrics(normal_readings(rng)))
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 2, 10, "the first data record")
    edge.skip_sequence()  # a message lost between the node and the host
    edge.data("pump-1", as_metrics(normal_readings(rng)))
    wait_for(lambda: edge.rebirths == 1, 10, "an NCMD Node Control/Rebirth at the edge node")
    # The rebirth gives a new DBIRTH record; the data message that revealed the gap was not scored.
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 3, 10, "the rebirth's record")
    time.sleep(0.3)
    assert len(decisions.of("pump-1.line-1")) == 3
    edge.data("pump-1", as_metrics(normal_readings(rng)))
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 4, 10, "data after the rebirth")
    asset = source.assets()["pump-1.line-1"]
    assert asset["online"] and len(asset["gaps"]) == 1
    assert asset["gaps"][0]["reason"].startswith("sequence gap: expected seq 4, got 5")
    assert source.status()["sparkplug"]["counts"]["rebirth_requests"] == 1


def test_a_payload_that_is_not_sparkplug_is_dead_lettered_and_the_source_keeps_running(
    plant, store: SqlAlertStore
) -> None:
    _, edge, decisions = plant()
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 1, 10, "the birth record")
    edge.raw("DDATA", "pump-1", b"\xff\xff\xff not protobuf")
    wait_for(lambda: store.count_dead_letters("invalid_payload") == 1, 10, "an invalid_payload dead letter")
    (letter,) = store.list_dead_letters()
    assert letter.source == f"sparkplug:spBv1.0/{edge.group}/DDATA/line-1/pump-1"
    assert letter.device == "pump-1.line-1" and "not a Sparkplug B payload" in letter.reason
    assert letter.payload.startswith("ffffff")  # the bytes that arrived, in hexadecimal
    edge.data("pump-1", as_metrics(normal_readings(np.random.default_rng(2))))
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 2, 10, "the next valid message scored")


def test_a_null_or_non_numeric_metric_leaves_its_sensor_missing_with_the_reason(
    plant, runtime: Runtime, store: SqlAlertStore, group: str
) -> None:
    _, edge, decisions = plant()
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 1, 10, "the birth record")
    edge.data("pump-1", {"Flow": None})
    wait_for(lambda: store.count_dead_letters("missing_value") == 1, 10, "a missing_value dead letter")
    (letter,) = store.list_dead_letters()
    assert letter.device == "pump-1.line-1"
    assert "'flow_m3h' (metric 'Flow' is null)" in letter.reason
    assert '"flow_m3h": null' in letter.payload  # no value was filled in for the missing sensor
    edge.data("pump-1", {"Flow": 0.5})
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 2, 10, "scoring once the metric has a value again")


def test_deaths_report_assets_offline_and_a_new_session_brings_them_back_with_the_gap(plant) -> None:
    source, edge, decisions = plant()
    wait_for(lambda: len(decisions.of("pump-2.line-1")) == 1, 10, "pump-2's birth record")
    edge.device_death("pump-2")
    wait_for(lambda: not source.assets()["pump-2.line-1"]["online"], 10, "pump-2 offline")
    assert source.assets()["pump-2.line-1"]["reason"] == "DDEATH"
    assert source.assets()["pump-1.line-1"]["online"]
    edge.close()  # NDEATH with this session's bdSeq
    wait_for(lambda: not source.assets()["pump-1.line-1"]["online"], 10, "pump-1 offline after the NDEATH")
    assert source.assets()["pump-1.line-1"]["reason"] == "NDEATH"
    edge.connect()  # the next session: new births
    wait_for(lambda: source.assets()["pump-1.line-1"]["online"], 10, "pump-1 online again")
    wait_for(lambda: source.assets()["pump-2.line-1"]["online"], 10, "pump-2 online again")
    gaps = source.assets()["pump-1.line-1"]["gaps"]
    assert len(gaps) == 1 and gaps[0]["reason"] == "NDEATH" and gaps[0]["to"] >= gaps[0]["from"]
    # One record per birth; nothing was scored while the node was dead.
    wait_for(lambda: len(decisions.of("pump-1.line-1")) == 2, 10, "the new birth's record")
    time.sleep(0.2)
    assert len(decisions.of("pump-1.line-1")) == 2


def test_data_from_a_node_born_before_the_source_started_asks_for_a_rebirth(
    runtime: Runtime, broker: str, group: str
) -> None:
    devices = {"pump-1": {metric: ("Double", 0.0) for metric in METRICS}}
    edge = EdgeNode(MqttOptions(url=broker, client_id=f"{group}-edge"), group, "line-9", devices).connect()
    decisions = Decisions()
    options = SparkplugOptions(group=group, broker=MqttOptions(url=broker, client_id=f"{group}-host"))
    source = SparkplugIngest(runtime, options, on_done=decisions).start()
    try:
        assert source.wait_connected(10)
        edge.data("pump-1", {"Flow": 1.0})
        wait_for(lambda: edge.rebirths == 1, 10, "a rebirth request")
        # Unlisted devices are served as <node>.<device>, every numeric metric under its own name.
        wait_for(lambda: "line-9.pump-1" in source.assets(), 10, "the unlisted device's asset")
        # The DDATA, and the DBIRTH too when the broker handled it after the source subscribed, came before
        # any NBIRTH the source saw; one rebirth request answers them all (they are rate limited).
        counts = source.status()["sparkplug"]["counts"]
        assert counts["before_birth"] >= 1 and counts["rebirth_requests"] == 1 and edge.rebirths == 1
    finally:
        source.stop()
        edge.stop()


def test_options_refuse_a_device_mapped_twice_and_a_bad_group() -> None:
    twice = (SparkplugAsset("n", "d", asset="a"), SparkplugAsset("n", "d", asset="b"))
    with pytest.raises(ValueError, match="Sparkplug n/d is mapped twice"):
        SparkplugOptions(group="g", assets=twice)
    with pytest.raises(ValueError, match="must be non-empty, without '/'"):
        SparkplugOptions(group="a/b")


def test_a_broker_restart_is_a_gap_with_no_invented_record_and_scoring_resumes_within_10_s(
    runtime: Runtime, own_broker, group: str
) -> None:
    url = f"mqtt://127.0.0.1:{own_broker.port}"
    decisions = Decisions()
    options = SparkplugOptions(
        group=group,
        broker=MqttOptions(url=url, client_id=f"{group}-host", reconnect_min=1, reconnect_max=2),
        assets=(SparkplugAsset("line-1", "pump-1", asset="pump-1", sensors=BY_SENSOR),),
        unlisted=False,
    )
    source = SparkplugIngest(runtime, options, on_done=decisions).start()
    first = normal_readings(np.random.default_rng(5))
    devices = {"pump-1": {metric: ("Double", first[sensor]) for metric, sensor in METRICS.items()}}
    edge_broker = MqttOptions(url=url, client_id=f"{group}-edge", reconnect_min=1, reconnect_max=2)
    edge = EdgeNode(edge_broker, group, "line-1", devices)
    try:
        assert source.wait_connected(10)
        edge.connect()
        rng = np.random.default_rng(6)
        restarted_at = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            edge.data("pump-1", as_metrics(normal_readings(rng)))
            if restarted_at is None and len(decisions.of("pump-1")) >= 10:
                own_broker()  # SIGTERM, then a new Mosquitto on the same port
                restarted_at = time.time()
            if restarted_at is not None and any(d.time.timestamp() > restarted_at for d in decisions.of("pump-1")):
                break
            time.sleep(0.1)  # the node's data rate
        assert restarted_at is not None
        resumed = [d.time.timestamp() for d in decisions.of("pump-1") if d.time.timestamp() > restarted_at]
        assert resumed and resumed[0] - restarted_at < 10.0, "scoring did not resume within 10 s of the broker"
        asset = source.assets()["pump-1"]
        (gap,) = asset["gaps"]
        # Mosquitto publishes the edge node's will (NDEATH) as it goes down, unless the source saw it go first.
        assert gap["reason"] in ("NDEATH", "the connection to the broker was lost") and gap["to"] > gap["from"]
        times = [d.time.timestamp() for d in decisions.of("pump-1")]
        assert not [t for t in times if gap["from"] < t < gap["to"]]  # nothing was scored inside the gap
        assert source.connections == 2 and edge.sessions == 2
    finally:
        source.stop()
        edge.stop()
