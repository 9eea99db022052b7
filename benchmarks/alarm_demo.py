"""The demo plant's alarm load under each alarm rule: false-alarm events per hour and incidents detected.

.venv/bin/python benchmarks/alarm_demo.py --json benchmarks/results/alarms/demo/demo.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from vigil.alarms.rules import ALARM_RULES
from vigil.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    rows = {}
    for rule in ALARM_RULES:
        with tempfile.TemporaryDirectory() as folder:
            result = run_demo(output=Path(folder), progress=False, alarms=rule)
        metrics = result.metrics
        rows[rule] = {
            "incidents_detected": sum(o.detected for o in result.outcomes),
            "incidents": len(result.outcomes),
            "false_alarms_per_hour": metrics["false_alarms_per_hour"],
            "far": metrics["far"],
            "f1": metrics["f1"],
            "alarm_floods": metrics["alarm_floods"],
            "alerts": len(result.alerts),
            "missed": [f"{o.incident.kind} at row {o.incident.start}" for o in result.outcomes if not o.detected],
        }
    document = {"command": " ".join(["benchmarks/alarm_demo.py", *sys.argv[1:]]), "rules": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(document, indent=1))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
