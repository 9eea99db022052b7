"""Every public network module exports exactly what it defines."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "vigil.network.flows",
    "vigil.network.encoding",
    "vigil.network.nsl_kdd",
    "vigil.network.report",
    "vigil.network.bench",
    "vigil.network.damped",
    "vigil.network.packets",
    "vigil.network.features",
    "vigil.network.reference",
    "vigil.network.kitnet",
    "vigil.network.synthetic",
    "vigil.network.incidents",
    "vigil.network.incident_alarms",
    "vigil.network.beacons",
    "vigil.network.capture",
    "vigil.network.capture_bench",
    "vigil.network.ton_iot_bench",
    "vigil.network.demo",
]
TORCH_MODULES = ["vigil.network.torch_models", "vigil.network.classifier", "vigil.network.autoencoder",
                 "vigil.network.hybrid"]  # fmt: skip
DPKT_MODULES = ["vigil.network.pcap", "vigil.network.cli"]


@pytest.mark.parametrize("name", MODULES + TORCH_MODULES + DPKT_MODULES)
def test_all_names_exist_and_are_unique(name: str) -> None:
    if name in TORCH_MODULES:
        pytest.importorskip("torch")
    if name in DPKT_MODULES:
        pytest.importorskip("dpkt")
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names missing {member}"
