"""`vigil serve --config plant.toml` end to end: an OPC UA server feeds declared assets, one asset stays silent."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("asyncua")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from opcua_plant import PlantServer, free_port

from vigil.detectors.pca import PCADetector
from vigil.pipeline import Pipeline

PLANT = """\
[service]
http = "127.0.0.1:{port}"
store = "sqlite:///{store}"
registry = "registry"
silent_after = 1.5

[asset_types.pump]
model = "models/pump"
sampling_period = 0.25
[asset_types.pump.sensors]
temp_c = {{ unit = "degC", range = [0, 5000] }}
flow_m3h = {{ unit = "m3/h", range = [0, 5000] }}

[sources.line3]
kind = "opcua"
endpoint = "{endpoint}"
reconnect_min = 0.2

[assets.pump-1]
type = "pump"
source = "line3"
map = {{ temp_c = "ns=2;s=pump-1.temp_c", flow_m3h = "ns=2;s=pump-1.flow_m3h" }}

[assets.pump-2]
type = "pump"
source = "line3"
map = {{ temp_c = "ns=2;s=pump-2.temp_c", flow_m3h = "ns=2;s=pump-2.flow_m3h" }}

[assets.pump-9]   # declared, fed by HTTP, never sends
type = "pump"
"""


def get(port: int, path: str) -> object:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        return json.loads(reply.read())


@pytest.mark.slow
def test_serve_runs_a_plant_file(tmp_path):
    rng = np.random.default_rng(0)
    level = rng.uniform(1000, 1100, size=(400, 1))
    frame = pd.DataFrame(np.hstack([level, level + rng.normal(size=(400, 1))]), columns=["temp_c", "flow_m3h"])
    Pipeline(PCADetector(n_components=1)).fit(frame).save(tmp_path / "models" / "pump")
    server = PlantServer(free_port(), {"pump-1": ["temp_c", "flow_m3h"], "pump-2": ["temp_c", "flow_m3h"]})
    server.period = 0.1
    server.start()
    port = free_port()
    plant = tmp_path / "plant.toml"
    plant.write_text(PLANT.format(port=port, store=tmp_path / "alerts.db", endpoint=server.endpoint))
    command = [sys.executable, "-m", "vigil.service", "serve", "--config", str(plant), "--log-level", "warning"]
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        service = subprocess.Popen(command, stderr=sink)
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text():
            assert service.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        devices = {d["device"]: d for d in get(port, "/devices")["devices"]}
        assert set(devices) == {"pump-1", "pump-2", "pump-9"}  # all declared, before or as they send
        assert all(d["declared"] and d["model"] == "pump" for d in devices.values())
        deadline = time.monotonic() + 30
        while True:
            devices = {d["device"]: d for d in get(port, "/devices")["devices"]}
            if devices["pump-1"]["points"] >= 4 and devices["pump-2"]["points"] >= 4 and devices["pump-9"]["silent"]:
                break
            assert time.monotonic() < deadline, devices
            time.sleep(0.2)
        health = get(port, "/health")
        assert health["silent_assets"] == ["pump-9"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            assert "vigil_silent_assets 1.0" in reply.read().decode().splitlines()
        source = health["sources"]["line3"]
        assert source["connected"] is True
        assert source["scored"] >= 8
        assert source["dead_letters"] == 0
        assert not devices["pump-1"]["silent"]
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        server.stop()
    errors = log.read_text()
    assert service.returncode == 0, errors
    assert "asset pump-9 is silent" in errors


def test_serve_refuses_a_bad_plant_file_with_its_lines(tmp_path):
    plant = tmp_path / "plant.toml"
    plant.write_text(PLANT.format(port=1, store="x", endpoint="opc.tcp://x/").replace('type = "pump"\n"""', ""))
    plant.write_text(plant.read_text().replace("sampling_period = 0.25", "sampling_period = 0.25\nsampling = 1"))
    result = subprocess.run(
        [sys.executable, "-m", "vigil.service", "serve", "--config", str(plant)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert f"{plant}:10: unknown key 'sampling' in [asset_types.pump]" in result.stderr
