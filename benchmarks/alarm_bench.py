"""Run one `vigil bench` command and record the machine's load average beside its JSON.

    VIGIL_DATA_DIR=../shared/data nice -n 10 python benchmarks/alarm_bench.py bench --dataset smd \
        --detector tcn-sequence --param relative_drift=1.0 --param persistence=true --threshold pot \
        --alarms recommended --quiet --per-part --json benchmarks/results/alarms/smd/x.json

The arguments are `vigil`'s, unchanged; the JSON's ``command`` stays the `vigil` command line. Added to it:
``load_average_1_5_15min_at_start`` / ``_at_end`` (``os.getloadavg``), ``wall_seconds`` and ``cpu_count``,
so that timings in the JSON can be read against how busy the shared machine was.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> int:
    from vigil.cli import main as vigil_main

    argv = sys.argv[1:]
    target = argv[argv.index("--json") + 1] if "--json" in argv else None
    start_load, start = _load(), time.perf_counter()
    code = vigil_main(argv)
    wall, end_load = time.perf_counter() - start, _load()
    if target and Path(target).exists():
        document = json.loads(Path(target).read_text())
        document.update(
            load_average_1_5_15min_at_start=start_load,
            load_average_1_5_15min_at_end=end_load,
            wall_seconds=round(wall, 1),
            cpu_count=os.cpu_count(),
        )
        Path(target).write_text(json.dumps(document, indent=1))
    print(f"load average {start_load} -> {end_load}, {wall:.0f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
