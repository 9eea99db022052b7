"""``--detector auto`` against the fixed detectors, on the same parts of a benchmark (tables for docs/alarms.md).

    python benchmarks/auto_compare.py benchmarks/results/skab/auto-no-tcn-forecaster.json \
        --fixed benchmarks/results/skab benchmarks/results/alarms/skab --json benchmarks/results/auto/skab.json

Reads a ``vigil bench --detector auto --per-part`` JSON and every fixed-detector JSON with per-part figures
in the ``--fixed`` folders, and pools each fixed run over the parts the auto run covered (counts summed, as
``vigil bench`` pools), so that a subset run is compared on its own parts. "Best fixed" is the fixed run
with the highest pooled F1: it is chosen on the test labels, so it is a bound that no deployable choice is
promised to reach; auto chose on each part's training rows only. Also reported: the best fixed run among
auto's own candidate list (same detectors, one choice for every part) and what auto chose per part.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _pooled(per_part: dict[str, dict[str, Any]], names: list[str]) -> dict[str, float] | None:
    if any(name not in per_part for name in names):
        return None
    tp, fp, fn, tn = (sum(per_part[n][k] for n in names) for k in ("tp", "fp", "fn", "tn"))
    events = sum(per_part[n]["false_alarm_events"] for n in names)
    hours = sum(per_part[n]["normal_hours"] for n in names)
    found = sum(per_part[n]["event_recall"] * per_part[n]["n_segments"] for n in names if per_part[n]["n_segments"])
    segments = sum(per_part[n]["n_segments"] for n in names)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "far": fp / (fp + tn) if fp + tn else float("nan"),
        "mar": fn / (tp + fn) if tp + fn else float("nan"),
        "event_recall": found / segments if segments else float("nan"),
        "false_alarms_per_hour": events / hours if hours else float("nan"),
        "macro_f1": sum(per_part[n]["f1"] for n in names) / len(names),
    }


def _label(document: dict[str, Any], path: Path) -> str:
    rule = (document.get("config") or {}).get("alarm", {}).get("rule", "plain")
    return f"{path.stem} ({rule})" if rule != "plain" and "recommended" not in path.stem else path.stem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("auto", help="JSON of vigil bench --detector auto --per-part")
    parser.add_argument("--fixed", nargs="+", required=True, help="folders of fixed-detector bench JSONs")
    parser.add_argument("--json", help="write the comparison here")
    args = parser.parse_args(argv)
    auto = json.loads(Path(args.auto).read_text())
    names = list(auto["per_part"])
    candidates = {c["detector"] for c in auto["config"]["candidates"]}
    rows = []
    for folder in args.fixed:
        for path in sorted(Path(folder).glob("*.json")):
            document = json.loads(path.read_text())
            if document.get("detector") in (None, "auto") or "per_part" not in document:
                continue
            pooled = _pooled(document["per_part"], names)
            if pooled is None:
                continue
            rows.append(
                {
                    "run": _label(document, path),
                    "file": str(path),
                    "detector": document["detector"],
                    "in_auto_list": document["detector"] in candidates,
                    **pooled,
                }
            )
    rows.sort(key=lambda r: -r["f1"])
    mine = _pooled(auto["per_part"], names)
    best = rows[0] if rows else None
    best_listed = next((r for r in rows if r["in_auto_list"]), None)
    result = {
        "auto": {"file": args.auto, "command": auto.get("command"), **mine},
        "parts": len(names),
        "best_fixed": best,
        "best_fixed_in_auto_list": best_listed,
        "gap_to_best_fixed": None if best is None else mine["f1"] - best["f1"],
        "choices": auto.get("auto_choice_counts"),
        "fixed": rows,
        "note": "best fixed = highest pooled F1 over these parts among the fixed runs, chosen on test labels",
    }
    print(f"{'run':<40}{'F1':>7}{'FAR %':>8}{'MAR %':>8}{'event recall':>14}{'FA events/h':>13}{'macro F1':>10}")
    for row in [{"run": "auto", **mine}, *rows[:12]]:
        print(
            f"{row['run']:<40}{row['f1']:>7.3f}{100 * row['far']:>8.2f}{100 * row['mar']:>8.2f}"
            f"{row['event_recall']:>14.2f}{row['false_alarms_per_hour']:>13.1f}{row['macro_f1']:>10.3f}"
        )
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
