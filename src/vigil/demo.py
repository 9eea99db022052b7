"""``vigil demo``: simulate a smart factory, learn its normal behaviour, watch it live, explain what breaks."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vigil.alarms.rules import make_alarm_stage
from vigil.alerts import (
    DEFAULT_INCIDENT_WINDOW,
    Alert,
    AlertEvent,
    AlertSink,
    AlertTracker,
    AssetIncident,
    SqlAlertStore,
)
from vigil.calibration.thresholds import POTThreshold
from vigil.data.simulator import Incident, PlantRecording, simulate_plant
from vigil.demo_incident import SCAN_DELAY, format_incidents, incident_correlator, machine_incident, scan_controller
from vigil.evaluation.metrics import evaluate
from vigil.evaluation.report import Report
from vigil.explain.text import explain_rows
from vigil.pipeline import Pipeline
from vigil.progress import progress as progress_bar
from vigil.registry import make_detector
from vigil.streaming.scorer import StreamScorer

__all__ = ["DemoResult", "IncidentOutcome", "run_demo"]

BATCH_ROWS = 60  # one minute of 1 Hz readings per micro-batch
DEVICE = "line-1"
# With ~60 physically coupled sensors, faults hide in the smallest principal directions: keep 99 % of the
# variance in the model plane so that Q watches only the last 1 %. POT sets the threshold from the tail of
# the held-out training scores (risk 1e-3 per reading).
DEMO_PARAMS: dict[str, dict[str, Any]] = {"pca": {"n_components": 0.99}}


@dataclass(frozen=True)
class IncidentOutcome:
    """How the deployed pipeline did on one injected incident."""

    incident: Incident
    detected: bool
    delay_seconds: float | None
    top_features: list[tuple[str, float]]
    explained: bool  # one of the incident's sensors is among the top features at first detection
    explanation: str = ""  # what Vigil says about the first flagged reading


@dataclass(frozen=True)
class DemoResult:
    outcomes: list[IncidentOutcome]
    metrics: dict[str, Any]
    alerts: list[Alert]
    report: Path
    store: Path
    model_dir: Path
    incidents: list[AssetIncident] = field(default_factory=list)  # asset incidents across modalities


@contextmanager
def _stage(step: str, quiet: bool) -> Iterator[None]:
    start = time.perf_counter()
    if not quiet:
        print(f"{step} …", file=sys.stderr, flush=True)
    yield
    if not quiet:
        print(f"{step}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def _replay(
    pipe: Pipeline, frame: pd.DataFrame, tracker: AlertTracker, sink: AlertSink, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scorer = StreamScorer(pipe)
    names = pipe.feature_names_in_
    scores, flags, shares = [], [], []
    starts = range(0, len(frame), BATCH_ROWS)
    for start in progress_bar(starts, desc="streaming", unit="min", enabled=progress):
        batch = frame.iloc[start : start + BATCH_ROWS]
        scored = scorer.score(batch)
        # Alert times are absolute: a naive clock is read as UTC.
        moments = batch.index if batch.index.tz is not None else batch.index.tz_localize("UTC")
        events: list[AlertEvent] = []
        for i, moment in enumerate(moments):
            events += tracker.update(
                DEVICE,
                moment.to_pydatetime(),
                float(scored.scores[i]),
                float(scored.thresholds[i]),
                bool(scored.anomalies[i]),
                dict(zip(names, scored.shares[i].tolist(), strict=True)) if scored.anomalies[i] else {},
            )
        sink.deliver(events)  # one micro-batch, one commit: as the service's runtime does
        scores.append(scored.scores)
        flags.append(scored.anomalies)
        shares.append(scored.shares)
    sink.deliver(tracker.close_all())
    return np.concatenate(scores), np.concatenate(flags), np.vstack(shares)


def _outcomes(
    recording: PlantRecording, pipe: Pipeline, flags: np.ndarray, shares: np.ndarray
) -> list[IncidentOutcome]:
    offset, names = recording.train_rows, pipe.feature_names_in_
    live = recording.frame.iloc[offset:]
    out = []
    for incident in recording.incidents:
        lo, hi = incident.start - offset, incident.end - offset
        hits = np.flatnonzero(flags[lo:hi])
        if hits.size == 0:
            out.append(IncidentOutcome(incident, False, None, [], False))
            continue
        first = lo + int(hits[0])
        order = np.argsort(-shares[first])[:3]
        top = [(names[j], float(shares[first, j])) for j in order]
        explained = any(name in incident.sensors for name, _ in top)
        # A point-wise model can explain the flagged row on its own; a windowed one needs its history.
        context = pipe.context_rows
        window = live.iloc[max(first - context, 0) : first + 1]
        sentence = explain_rows(pipe, window)[-1][1] if len(window) > context else ""
        out.append(IncidentOutcome(incident, True, float(hits[0]), top, explained, sentence))
    return out


def _timeline_figure(
    index: pd.DatetimeIndex, scores: np.ndarray, threshold: float, recording: PlantRecording, offset: int
):
    fig, ax = plt.subplots(figsize=(12, 3.6))
    ax.plot(index, scores, lw=0.6, color="#30475e", label="anomaly score")
    ax.axhline(threshold, color="#c0392b", lw=1, ls="--", label="threshold (from training data)")
    for incident in recording.incidents:
        ax.axvspan(
            index[incident.start - offset],
            index[min(incident.end - offset, len(index) - 1)],
            color="#f5b041",
            alpha=0.35,
        )
        ax.annotate(
            incident.kind.replace("_", " "),
            (index[incident.start - offset], 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="top",
            ha="right",
        )
    ax.set_yscale("log")
    ax.set_ylabel("score (log)")
    ax.set_title("Anomaly score over the live period; shaded: injected incidents", loc="right", fontsize=10)
    # Above the plot, where the incident labels along its top edge cannot be covered.
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=8, frameon=False)
    fig.autofmt_xdate()
    return fig


def _incident_figure(
    frame: pd.DataFrame, scores: np.ndarray, threshold: float, outcomes: list[IncidentOutcome], offset: int
):
    n = len(outcomes)
    cols = 3
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.7 * rows), squeeze=False)
    for ax, outcome in zip(axes.flat, outcomes, strict=False):
        incident = outcome.incident
        sensor = incident.sensors[0]
        lo = max(incident.start - offset - 300, 0)
        hi = min(incident.end - offset + 300, len(frame))
        window = frame.iloc[lo:hi]
        ax.plot(window.index, window[sensor], lw=0.8, color="#30475e")
        ax.axvspan(
            frame.index[incident.start - offset], frame.index[incident.end - offset - 1], color="#f5b041", alpha=0.3
        )
        ax.set_title(f"{incident.kind.replace('_', ' ')} · {sensor}", fontsize=9)
        ax.tick_params(labelsize=7)
        twin = ax.twinx()
        twin.plot(window.index, scores[lo:hi] / threshold, lw=0.7, color="#c0392b", alpha=0.8)
        twin.axhline(1.0, color="#c0392b", lw=0.6, ls=":")
        twin.set_yscale("log")
        twin.tick_params(which="both", labelsize=7, colors="#c0392b")
        for label in ax.get_xticklabels():
            label.set_rotation(30)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Each incident: the affected sensor (blue) and score ÷ threshold (red, log)", fontsize=10)
    fig.tight_layout()
    return fig


def _write_report(
    path: Path,
    recording: PlantRecording,
    live: pd.DataFrame,
    scores: np.ndarray,
    pipe: Pipeline,
    outcomes: list[IncidentOutcome],
    metrics: dict[str, Any],
    alerts: list[Alert],
    detector: str,
    evidence: list[tuple[AssetIncident, list[Alert]]],
) -> Path:
    offset = recording.train_rows
    detected = sum(o.detected for o in outcomes)
    report = Report(
        "Vigil demo: smart-factory line",
        subtitle=f"{recording.frame.shape[1]} sensors on {len(recording.machines)} machines, "
        f"{len(recording.frame) / 3600:.1f} h at 1 Hz; trained on the first {offset / 3600:.1f} h; "
        f"detector {detector}, model {pipe.version_}",
    )
    report.kpis(
        [
            ("incidents detected", f"{detected} / {len(outcomes)}"),
            ("false-alarm rate (normal points)", f"{100 * metrics['far']:.2f} %"),
            ("false-alarm events per hour", f"{metrics['false_alarms_per_hour']:.2f}"),
            ("alerts raised", str(len(alerts))),
            ("point F1 (not adjusted)", f"{metrics['f1']:.3f}"),
        ]
    )
    report.section("Injected incidents")
    rows = []
    for o in outcomes:
        status = Report.raw('<span class="ok">detected</span>' if o.detected else '<span class="bad">missed</span>')
        rows.append(
            [
                o.incident.kind.replace("_", " "),
                o.incident.category,
                str(live.index[o.incident.start - offset]),
                f"{o.incident.end - o.incident.start} s",
                status,
                "—" if o.delay_seconds is None else f"{o.delay_seconds:.0f} s",
                ", ".join(f"{n} ({100 * s:.0f} %)" for n, s in o.top_features) or "—",
                "yes" if o.explained else "no",
                o.incident.description,
                o.explanation or "—",
            ]
        )
    report.table(
        [
            "incident",
            "category",
            "start",
            "duration",
            "result",
            "delay",
            "top sensors at detection",
            "explained",
            "what happened",
            "what Vigil said at detection",
        ],
        rows,
    )
    report.figure(_timeline_figure(live.index, scores, pipe.threshold_, recording, offset))
    report.figure(_incident_figure(live, scores, pipe.threshold_, outcomes, offset))
    report.section("Alerts", "A sustained anomaly is one alert that grows; alerts are stored in alerts.db (SQLite).")
    report.table(
        ["start", "end", "points", "peak score ÷ threshold", "incident type", "explanation"],
        [
            [
                a.start.strftime("%H:%M:%S"),
                a.end.strftime("%H:%M:%S"),
                a.n_points,
                a.score / a.threshold if a.threshold else float("nan"),
                a.incident_type,
                a.explanation,
            ]
            for a in alerts[:100]
        ],
    )
    if evidence:
        report.section(
            "Asset incidents",
            "Alerts of one machine from the telemetry and the plant network that came within "
            f"{DEFAULT_INCIDENT_WINDOW:g} s of each other: one incident, with all its evidence.",
        )
        report.table(
            ["machine", "modality", "device", "start", "end", "incident type", "explanation"],
            [
                [
                    incident.asset,
                    a.modality,
                    a.device,
                    a.start.strftime("%H:%M:%S"),
                    a.end.strftime("%H:%M:%S"),
                    a.incident_type,
                    a.explanation,
                ]
                for incident, members in evidence
                for a in members
            ],
        )
    report.section("Honest evaluation of the live period")
    report.table(
        ["metric", "value"],
        [
            ["precision", metrics["precision"]],
            ["recall (share of anomalous points flagged)", metrics["recall"]],
            ["F1 (point-wise, not adjusted)", metrics["f1"]],
            ["F1, point-adjusted (inflated: shown only beside the unadjusted figure)", metrics["f1_point_adjusted"]],
            ["FAR (false alarms among normal points)", metrics["far"]],
            ["MAR (missed anomalous points)", metrics["mar"]],
            ["ROC-AUC", metrics["roc_auc"]],
            ["PR-AUC", metrics["pr_auc"]],
            ["event recall", metrics["event_recall"]],
            ["false-alarm events per hour", metrics["false_alarms_per_hour"]],
        ],
    )
    report.section(
        "How the model was built",
        "Scaler, detector and threshold were fitted on the training period only; the threshold comes from the "
        "tail of scores on held-out training rows (peaks over threshold, risk 1e-3 per reading). No label was "
        "used for fitting or for the threshold.",
    )
    report.code(repr(pipe))
    return report.write(path)


def _print_summary(outcomes: list[IncidentOutcome], metrics: dict[str, Any], n_alerts: int) -> None:
    header = f"{'incident':<16}{'category':<14}{'detected':<10}{'delay':>8}  top sensor at detection"
    print(header)
    print("-" * len(header))
    for o in outcomes:
        delay = "—" if o.delay_seconds is None else f"{o.delay_seconds:.0f} s"
        top = f"{o.top_features[0][0]} ({100 * o.top_features[0][1]:.0f} %)" if o.top_features else "—"
        print(
            f"{o.incident.kind.replace('_', ' '):<16}{o.incident.category:<14}"
            f"{'yes' if o.detected else 'NO':<10}{delay:>8}  {top}"
        )
    detected = sum(o.detected for o in outcomes)
    explained = sum(o.explained for o in outcomes)
    print("-" * len(header))
    print(
        f"detected {detected}/{len(outcomes)} incidents · false-alarm rate {100 * metrics['far']:.2f} % of normal "
        f"points · {metrics['false_alarms_per_hour']:.2f} false-alarm events/h · {n_alerts} alerts · "
        f"point F1 {metrics['f1']:.3f} (unadjusted)"
    )
    print(f"root cause: a sensor the incident hit is among the top 3 at detection for {explained}/{detected}")


def run_demo(
    *,
    output: Path,
    hours: float = 4.0,
    seed: int = 7,
    detector: str = "pca",
    progress: bool = True,
    network: bool = False,
    alarms: str = "recommended",
) -> DemoResult:
    """Run the whole demo and write ``report.html``, ``alerts.db`` and ``model/`` under ``output``.

    ``alarms`` names the alarm rule the deployed pipeline decides with (:data:`vigil.alarms.rules.ALARM_RULES`).

    With ``network`` the plant's device traffic is simulated too — a DDoS flood and an SSH brute force over
    normal traffic — and the packet detector's findings are printed after the telemetry summary.
    """
    quiet = not progress
    steps = 5 if network else 4
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with _stage(f"[1/{steps}] simulating the plant", quiet):
        recording = simulate_plant(hours=hours, seed=seed)
    train = recording.frame.iloc[: recording.train_rows]
    live = recording.frame.iloc[recording.train_rows :]
    with _stage(f"[2/{steps}] training {detector} on {len(train)} s of normal operation", quiet):
        params = {"random_state": seed, **DEMO_PARAMS.get(detector, {})}
        pipe = Pipeline(
            make_detector(detector, **params), threshold=POTThreshold(risk=1e-3), alarm=make_alarm_stage(alarms)
        ).fit(train)
        model_dir = pipe.save(output / "model")
    store_path = output / "alerts.db"
    store_path.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{store_path}{suffix}").unlink(missing_ok=True)
    # With the network, the controller of the machine that an incident hits is port-scanned meanwhile.
    chosen = machine_incident(recording) if network else None
    correlator = incident_correlator(chosen[1] if chosen else None, DEVICE)
    with _stage(f"[3/{steps}] replaying {len(live)} s as a live stream", quiet), SqlAlertStore(store_path) as store:
        if chosen is not None:
            moment = live.index[chosen[0].start - recording.train_rows]
            moment = (moment if moment.tzinfo is not None else moment.tz_localize("UTC")).to_pydatetime()
            with tempfile.TemporaryDirectory() as folder:
                scan_controller(
                    at=moment + timedelta(seconds=SCAN_DELAY),
                    store=store,
                    correlator=correlator,
                    folder=Path(folder),
                    seed=seed,
                )
        tracker = AlertTracker(device_gap_seconds=30.0, model_version=pipe.version_)
        scores, flags, shares = _replay(pipe, live, tracker, AlertSink(store, correlator=correlator), progress)
        correlator.close_all()  # the replay is over: nothing more can join
        store.upsert_many([], incidents=correlator.unsaved())
        alerts = sorted((a for a in store.list(limit=None) if a.modality == "telemetry"), key=lambda a: a.start)
        incidents = sorted(store.list_incidents(status="closed", limit=None), key=lambda i: i.start)
        evidence = [(incident, store.get_many(incident.alert_ids)) for incident in incidents]
    labels = recording.labels[recording.train_rows :]
    metrics = evaluate(labels, flags, scores, timestamps=live.index.to_numpy())
    outcomes = _outcomes(recording, pipe, flags, shares)
    with _stage(f"[4/{steps}] writing the report", quiet):
        report = _write_report(
            output / "report.html", recording, live, scores, pipe, outcomes, metrics, alerts, detector, evidence
        )
    _print_summary(outcomes, metrics, len(alerts))
    if network:
        from vigil.network.demo import format_network_summary, run_network_demo

        with _stage(f"[5/{steps}] the plant's network: device traffic with a DDoS flood and an SSH brute force", quiet):
            network_result = run_network_demo(seed=seed)
        print()
        print(format_network_summary(network_result))
    if incidents:
        print()
        print(format_incidents(evidence))
    print(f"report: {report}\nalerts: {store_path}\nmodel:  {model_dir}")
    return DemoResult(outcomes, metrics, alerts, report, store_path, model_dir, incidents)
