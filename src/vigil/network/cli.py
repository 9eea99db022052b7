"""Hooks through which ``vigil`` (the CLI) reaches the network features, without importing them eagerly.

- :func:`add_commands` adds ``vigil watch`` (score a live capture file or a pcap stream on stdin) and
  ``vigil synth-capture`` (write a synthetic capture with labelled attacks).
- :func:`run_network_bench` runs ``vigil bench --dataset nsl-kdd|modbus|mqttset|ton-iot``.
- :func:`read_packets_as_table` lets ``vigil fit``/``vigil score`` read ``.pcap``/``.pcapng`` files as tables;
  :func:`write_capture_scores` writes ``vigil score``'s per-packet CSV with incident types.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vigil.network.bench import run_network_bench
from vigil.network.capture import read_packets_as_table

__all__ = ["add_commands", "read_packets_as_table", "run_network_bench", "write_capture_scores"]


def write_capture_scores(model: str | Path, capture: str | Path, output: str | Path, *, top_k: int = 3) -> str:
    """Score a capture with a saved pipeline; write one CSV row per packet and return a one-line summary.

    The CSV columns are ``packet, time, score, threshold, anomaly, incident, src, dst, dport, top_features``;
    a JSON file of the typed incidents (evidence and suggested action), the alarm rule and the episodes it
    held back is written beside it (``<output>.incidents.json``).
    """
    from vigil.network.capture import score_capture
    from vigil.pipeline import Pipeline

    pipe = Pipeline.load(model)
    scored = score_capture(pipe, capture, top_k=top_k)
    destination = Path(output)
    destination.parent.mkdir(parents=True, exist_ok=True)
    scored.rows.to_csv(destination, index=False)
    from vigil.network.incident_alarms import DEFAULT_RULE

    incidents = [i.as_dict() for i in scored.incidents]
    held = [i.as_dict() for i in scored.held_back]
    side = destination.with_name(destination.name + ".incidents.json")
    document = {"read_stats": scored.read_stats, "alarm_rule": DEFAULT_RULE.to_dict(), "incidents": incidents,
                "held_back": held}  # fmt: skip
    side.write_text(json.dumps(document, indent=2, default=str))
    kinds: dict[str, int] = {}
    for incident in scored.incidents:
        kinds[incident.kind] = kinds.get(incident.kind, 0) + 1
    typed = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    if scored.held_back:
        typed += f" ({len(scored.held_back)} episodes held back by the alarm rule)"
    skipped = scored.read_stats.get("non_ip", 0) + scored.read_stats.get("malformed", 0)
    cut = (
        "; the capture ends inside a packet (cut short): that last packet was not read"
        if scored.read_stats.get("truncated_tail")
        else ""
    )
    return (
        f"scored {len(scored.rows)} packets with {pipe.version_}: {int(scored.rows['anomaly'].sum())} above the "
        f"threshold {pipe.threshold_:.4g}; incidents: {typed}; {skipped} frames skipped (non-IP or malformed){cut}; "
        f"wrote {destination} and {side}"
    )


def _cmd_watch(args: argparse.Namespace) -> int:
    from vigil.network.capture import CaptureScorer
    from vigil.pipeline import Pipeline

    scorer = CaptureScorer(Pipeline.load(args.model))
    out = open(args.output, "a", encoding="utf-8") if args.output else None
    try:
        for scored in scorer.follow(args.source, batch_size=args.batch_size, follow=not args.once):
            for incident in scored.incidents:
                line = json.dumps({"start": incident.start, **incident.as_dict()}, default=str)
                print(incident.summary(), flush=True)
                if out is not None:
                    out.write(line + "\n")
                    out.flush()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        if out is not None:
            out.close()
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from vigil.network.synthetic import make_capture, write_pcap

    cap = make_capture(args.attacks.split(","), train_seconds=args.train_seconds, seed=args.seed)
    train, _, _ = cap.split()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_pcap(train, out / "benign.pcap")
    write_pcap(cap.packets, out / "capture.pcap")
    (out / "events.json").write_text(json.dumps(cap.events, indent=2) + "\n")
    print(f"wrote {out / 'benign.pcap'} ({len(train)} packets), {out / 'capture.pcap'} ({len(cap.packets)} packets)")
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``watch`` and ``synth-capture`` to ``vigil``'s sub-command parsers (each sets ``func``)."""
    p = subparsers.add_parser("watch", help="score a live packet capture (file being written, or - for stdin)")
    p.add_argument("model", help="model directory written by `vigil fit CAPTURE.pcap ...`")
    p.add_argument("source", help="pcap file to follow as it grows, or - to read a pcap stream from stdin "
                   "(e.g. tcpdump -U -w - -i eth0 | vigil watch MODEL -)")  # fmt: skip
    p.add_argument("-o", "--output", help="append incidents as JSON lines to this file")
    p.add_argument("--batch-size", type=int, default=2048, help="packets scored per step (2048)")
    p.add_argument("--once", action="store_true", help="stop at the end of the file instead of following it")
    p.set_defaults(func=_cmd_watch)

    p = subparsers.add_parser("synth-capture", help="write a synthetic IoT capture with labelled attacks")
    p.add_argument("-o", "--output", default="synthetic-capture", help="folder to write (synthetic-capture)")
    p.add_argument("--attacks", default="syn_flood,port_scan,brute_force", help="comma-separated attack kinds")
    p.add_argument("--train-seconds", type=float, default=900.0, help="benign seconds before the attacks (900)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synth)
