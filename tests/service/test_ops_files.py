"""The operations files: the Grafana dashboard covers exactly the metrics the service exports, and the systemd
unit runs a command line that ``vigil serve`` accepts."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.cli import build_parser
from vigil.service.prometheus import render_metrics
from vigil.streaming.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "vigil-dashboard.json"
UNIT = ROOT / "ops" / "systemd" / "vigil.service"


def exported_families(runtime: Runtime) -> dict[str, set[str]]:
    """Metric family -> the sample names Prometheus stores for it (``_total``, ``_bucket``...)."""
    text = render_metrics(runtime).decode()
    families: dict[str, set[str]] = {}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M):
        family = name.removesuffix("_total") if kind == "counter" else name
        samples = {m for m in re.findall(r"^(\w+)(?:\{|\s)", text, flags=re.M) if m.startswith(family)}
        if kind == "counter":  # a counter with no sample yet (no label value seen) is still name_total
            samples |= {f"{family}_total"}
        families[family] = samples
    return families


def dashboard_exprs() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]


def test_every_exported_metric_has_a_panel_and_every_panel_metric_is_exported(runtime: Runtime) -> None:
    families = exported_families(runtime)
    assert "vigil_queue_depth" in families and "vigil_ingest_latency_seconds" in families
    used = {name for expr in dashboard_exprs() for name in re.findall(r"\bvigil_\w+", expr)}
    samples = set().union(*families.values())
    assert not used - samples, f"panels query metrics the service does not export: {sorted(used - samples)}"
    unshown = [family for family, names in families.items() if not names & used]
    assert not unshown, f"exported metrics without a panel: {unshown}"


def test_the_dashboard_is_importable_with_any_prometheus_data_source() -> None:
    document = json.loads(DASHBOARD.read_text())
    assert document["uid"] and document["title"] == "Vigil"
    assert [i["name"] for i in document["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert 'instance=~"$instance"' in target["expr"]  # every query follows the instance picker
            assert target["expr"].count("(") == target["expr"].count(")")


def unit_file() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text().replace("\\\n", " "))
    return parser


def test_the_units_command_line_is_accepted_by_vigil_serve() -> None:
    service = unit_file()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/vigil") and argv[1] == "serve"
    args = build_parser().parse_args(argv[1:])
    assert args.store == "sqlite:////var/lib/vigil/alerts.db" and args.token_file == "${CREDENTIALS_DIRECTORY}/tokens"
    # Bad input (exit 2) is not retried; a stop leaves time for the runtime to commit what it holds.
    assert service["RestartPreventExitStatus"] == "2" and int(service["TimeoutStopSec"]) >= 30
    assert service["KillSignal"] == "SIGTERM"


def test_systemd_finds_nothing_wrong_in_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    vigil = Path(sys.executable).with_name("vigil")
    if not vigil.exists():
        pytest.skip("the vigil command is not installed beside this interpreter")
    copy = tmp_path / "vigil.service"
    copy.write_text(UNIT.read_text().replace("/opt/vigil/bin/vigil", str(vigil)))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # verify exits 0 even for unknown keys or bad values; what it prints is the verdict.
    problems = [line for line in (result.stdout + result.stderr).splitlines() if str(copy) in line]
    assert result.returncode == 0 and not problems, problems
