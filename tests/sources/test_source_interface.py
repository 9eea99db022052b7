"""Every live source has the one small interface the service runs them by."""

from __future__ import annotations

import importlib

import pytest

from vigil.streaming.sources import Source

SOURCES = [
    ("vigil.streaming.sources.mqtt", "MqttIngest"),
    ("vigil.streaming.sources.opcua", "OpcUaSource"),
    ("vigil.streaming.sources.sparkplug", "SparkplugIngest"),
    ("vigil.streaming.sources.modbus", "ModbusSource"),
    ("vigil.streaming.sources.capture", "CaptureMonitor"),
]


@pytest.mark.parametrize(("module", "name"), SOURCES)
def test_each_source_starts_stops_and_reports(module: str, name: str) -> None:
    klass = getattr(importlib.import_module(module), name)
    assert issubclass(klass, Source)
    assert klass.stop.__code__.co_argcount - len(klass.stop.__defaults__ or ()) == 1  # stop() needs no argument


def test_something_without_status_is_not_a_source() -> None:
    class Half:
        def start(self):
            return self

        def stop(self) -> None: ...

    assert not issubclass(Half, Source)
