"""The plant demo's asset incident: a port scan of a machine's controller beside that machine's deviation.

The line's telemetry arrives as one device (``line-1``) whose sensors are named ``MACHINE.SENSOR``; each of
its alerts belongs to the machine whose sensor drove it most. The plant network is the synthetic IoT
traffic of :mod:`vigil.network.synthetic`, in which the controller at ``10.0.0.12`` is port-scanned; the
asset map makes that controller the machine of the injected incident chosen below. The capture around the
attack is written as a pcap and followed by a :class:`~vigil.streaming.sources.capture.CaptureMonitor`, as ``vigil
serve --capture`` does, with the same :class:`~vigil.alerts.asset_incidents.IncidentCorrelator` behind its
sink as behind the telemetry's, so the network alert and the machine's telemetry alert meet as one
incident in the alert store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from vigil.alerts import DEFAULT_INCIDENT_WINDOW, Alert, AlertStore, AssetIncident, AssetMap, IncidentCorrelator
from vigil.data.simulator import Incident, PlantRecording

__all__ = ["CONTROLLER", "SCAN_DELAY", "format_incidents", "incident_correlator", "machine_incident", "scan_controller"]

#: The plant address of the machine controller that the synthetic port scan targets.
CONTROLLER = "10.0.0.12"

#: Seconds after the start of the machine's injected incident at which its controller is scanned.
SCAN_DELAY = 30.0

_TRAIN_SECONDS = 120.0  # benign traffic the packet model learns from, just before the attack
_GAP_SECONDS = 20.0


def machine_incident(recording: PlantRecording) -> tuple[Incident, str] | None:
    """The injected incident the attack goes with, and its machine: the first valve closing (a controller
    told to close a valve is what an attacker on the network would do), else the first incident of one
    machine that lasts a minute or more."""

    def machine(incident: Incident) -> str | None:
        machines = {sensor.split(".", 1)[0] for sensor in incident.sensors}
        return machines.pop() if len(machines) == 1 and incident.end - incident.start >= 60 else None

    candidates = [i for i in recording.incidents if i.kind == "valve_closing"] + list(recording.incidents)
    for incident in candidates:
        name = machine(incident)
        if name is not None:
            return incident, name
    return None


def incident_correlator(machine: str | None, line_device: str) -> IncidentCorrelator:
    """The demo's correlator: the line device's alerts by sensor, the controller as its machine."""
    devices = {CONTROLLER: machine} if machine is not None else {}
    return IncidentCorrelator(AssetMap(devices, line_devices=[line_device]), window_seconds=DEFAULT_INCIDENT_WINDOW)


def scan_controller(
    *, at: datetime, store: AlertStore, correlator: IncidentCorrelator, folder: Path, seed: int
) -> dict[str, Any]:
    """Simulate the plant network around a port scan of :data:`CONTROLLER` starting at ``at``, learn its
    benign traffic, and follow the capture into ``store`` through ``correlator``; return the monitor's status."""
    from vigil.network.capture import read_packets_as_table
    from vigil.network.kitnet import KitNETDetector
    from vigil.network.synthetic import make_capture, write_pcap
    from vigil.pipeline import Pipeline
    from vigil.streaming.sources.capture import CaptureMonitor

    start = at.timestamp() - _TRAIN_SECONDS - _GAP_SECONDS
    cap = make_capture(
        ["port_scan"], train_seconds=_TRAIN_SECONDS, gap_seconds=_GAP_SECONDS, n_devices=3, seed=seed, start_time=start
    )
    train, _, _ = cap.split()
    features, _ = read_packets_as_table(write_pcap(train, folder / "benign.pcap"))
    pipe = Pipeline(KitNETDetector(epochs=3, random_state=seed)).fit(features)
    monitor = CaptureMonitor(pipe, write_pcap(cap.packets, folder / "network.pcap"), store, follow=False)
    monitor.sink.correlator = correlator
    # The monitor logs each incident as a service would; the demo prints its own summary instead.
    monitor_log = logging.getLogger("vigil.streaming.sources.capture")
    level = monitor_log.level
    monitor_log.setLevel(logging.ERROR)
    try:
        monitor.start()
        monitor.join(timeout=300)
    finally:
        monitor_log.setLevel(level)
    return monitor.status()


def format_incidents(evidence: Sequence[tuple[AssetIncident, Sequence[Alert]]]) -> str:
    """The demo's console lines: each asset incident with the alerts of each modality that make it up."""
    lines = []
    for incident, alerts in evidence:
        lines.append(
            f"asset incident on {incident.asset}: {' + '.join(incident.modalities)}, "
            f"{incident.start:%H:%M:%S}-{incident.end:%H:%M:%S}, {len(incident.alert_ids)} alerts"
        )
        for alert in alerts:
            lines.append(f"  {alert.modality:<10} {alert.device:<10} {alert.start:%H:%M:%S}  {alert.incident_type}")
    return "\n".join(lines)
