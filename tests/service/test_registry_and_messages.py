"""The model registry (versions, active pointer, rollback) and the payload schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.errors import InvalidInputError
from vigil.pipeline import Pipeline
from vigil.streaming.messages import Reading, Rejection, decode_payload, parse_record
from vigil.streaming.model_registry import ModelRegistry


def test_versions_activation_history_and_rollback(tmp_path: Path, fitted: Pipeline, fitted_v2: Pipeline) -> None:
    registry = ModelRegistry(tmp_path)
    v1 = registry.add("pump", fitted, activate=True)
    v2 = registry.add("pump", fitted_v2, activate=True)
    assert registry.add("pump", fitted_v2) == v2  # idempotent
    assert registry.active("pump") == v2
    assert [info.version for info in registry.versions("pump")] == [v1, v2]
    assert registry.rollback("pump") == v1
    assert registry.active("pump") == v1
    assert registry.load("pump").version_ == v1
    assert [entry["version"] for entry in registry.history("pump")] == [v1, v2, v1]
    assert registry.names() == ["pump"]


def test_a_saved_model_directory_is_copied_in(tmp_path: Path, fitted: Pipeline) -> None:
    fitted.save(tmp_path / "model")
    registry = ModelRegistry(tmp_path / "registry")
    version = registry.add("default", tmp_path / "model", activate=True)
    assert version == fitted.version_
    assert (registry.version_dir("default", version) / "meta.json").is_file()


def test_deploy_activates_a_first_version_and_keeps_an_active_one(
    tmp_path: Path, fitted: Pipeline, fitted_v2: Pipeline
) -> None:
    fitted.save(tmp_path / "v1")
    fitted_v2.save(tmp_path / "v2")
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.deploy([("pump", tmp_path / "v1"), ("fan", None)]) == ["pump", "fan"]
    assert registry.active("pump") == fitted.version_
    # A restart with a newer directory stores it but does not switch: the operator's choice stands.
    assert registry.deploy([("pump", tmp_path / "v2")]) == ["pump"]
    assert registry.active("pump") == fitted.version_
    assert [info.version for info in registry.versions("pump")] == [fitted.version_, fitted_v2.version_]


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 65])
def test_names_cannot_escape_the_registry(tmp_path: Path, fitted: Pipeline, name: str) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(InvalidInputError):
        registry.add(name, fitted)


def test_rollback_without_history_is_refused(tmp_path: Path, fitted: Pipeline) -> None:
    registry = ModelRegistry(tmp_path)
    registry.add("pump", fitted, activate=True)
    with pytest.raises(InvalidInputError, match="no earlier"):
        registry.rollback("pump")


def test_payload_shapes() -> None:
    one = decode_payload(b'{"device": "a"}', max_bytes=100, max_records=5)
    assert one == [{"device": "a"}]
    assert decode_payload(b'{"records": [1, 2]}', max_bytes=100, max_records=5) == [1, 2]
    assert decode_payload(b"[]", max_bytes=100, max_records=5).kind == "invalid_record"
    assert decode_payload(b'{"records": 3}', max_bytes=100, max_records=5).kind == "invalid_record"
    assert decode_payload(b"[" * 100_000, max_bytes=1_000_000, max_records=5).kind == "invalid_json"


def test_records_take_the_device_from_the_topic_but_never_contradict_it() -> None:
    reading = parse_record({"time": 1.5, "readings": {"a": 1}}, device_hint="p1")
    assert isinstance(reading, Reading) and reading.device == "p1"
    clash = parse_record({"device": "p2", "time": 1.5, "readings": {"a": 1}}, device_hint="p1")
    assert isinstance(clash, Rejection) and "topic" in clash.reason
    iso = parse_record({"device": "p1", "time": "2024-05-01T12:00:00Z", "readings": {"a": 1}})
    assert iso.timestamp == 1714564800.0
    for bad_time in [None, "soon", float("inf"), 1e20, True]:
        rejected = parse_record({"device": "p1", "time": bad_time, "readings": {"a": 1}})
        assert isinstance(rejected, Rejection), bad_time
    assert parse_record({"device": "p\x00", "time": 0, "readings": {"a": 1}}).kind == "invalid_record"
