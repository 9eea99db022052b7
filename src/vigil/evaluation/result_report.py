"""``vigil report``: one self-contained HTML page from the JSON results of bench, evaluate and tune."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from vigil.errors import InvalidInputError
from vigil.evaluation.metrics import segments
from vigil.evaluation.operating_points import COST_HEADER, cost_caption, cost_rows
from vigil.evaluation.report import Report
from vigil.evaluation.scores_file import PartScores, read_scores

__all__ = ["load_results", "write_result_report"]


def load_results(paths: Sequence[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Read result JSON files, with a clear error for a missing or malformed one."""
    out = []
    for raw in paths:
        path = Path(raw)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError as exc:
            msg = f"{path}: no such result file"
            raise InvalidInputError(msg) from exc
        except json.JSONDecodeError as exc:
            msg = f"{path} is not JSON: {exc}"
            raise InvalidInputError(msg) from exc
        if not isinstance(document, dict) or not ({"f1", "comparison"} & set(document)):
            msg = f"{path} is not a result of vigil bench, evaluate or tune"
            raise InvalidInputError(msg)
        out.append((path, document))
    return out


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def _curves(parts: list[PartScores], title: str):
    labels = np.concatenate([p.labels for p in parts])
    relative = np.concatenate([p.scores / p.threshold if p.threshold > 0 else p.scores for p in parts])
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4))
    if labels.any() and not labels.all():
        fpr, tpr, _ = roc_curve(labels, relative)
        precision, recall, _ = precision_recall_curve(labels, relative)
        roc_ax.plot(fpr, tpr, color="#30475e")
        pr_ax.plot(recall, precision, color="#30475e")
        decided = relative > 1.0
        roc_ax.plot(
            [decided[~labels].mean()], [decided[labels].mean()], "o", color="#c0392b", label="calibrated threshold"
        )
        pr_ax.axhline(labels.mean(), color="#999", ls=":", label="flag everything")
        roc_ax.legend(loc="lower right", fontsize=8)
        pr_ax.legend(loc="lower left", fontsize=8)
    roc_ax.plot([0, 1], [0, 1], color="#bbb", ls="--")
    roc_ax.set(xlabel="false-alarm rate", ylabel="detection rate", title=f"ROC · {title}")
    pr_ax.set(xlabel="recall", ylabel="precision", title=f"Precision–recall · {title}", ylim=(0, 1.02))
    fig.tight_layout()
    return fig


def _timelines(parts: list[PartScores], title: str, limit: int = 6):
    shown = parts[:limit]
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 1.9 * len(shown)), squeeze=False)
    for ax, part in zip(axes[:, 0], shown, strict=True):
        relative = part.scores / part.threshold if part.threshold > 0 else part.scores
        x = np.arange(len(relative))
        for start, end in segments(part.labels):
            ax.axvspan(start, end, color="#f5b041", alpha=0.35, lw=0)
        ax.plot(x, np.maximum(relative, 1e-3), lw=0.7, color="#30475e")
        ax.axhline(1.0, color="#c0392b", lw=0.8, ls="--")
        alarms = relative > 1.0
        # Ticks at the foot of the axes (x in rows, y as a share of the height), so the log scale cannot
        # place them outside the plot, as the lower data limit did before.
        ax.plot(x[alarms], np.full(alarms.sum(), 0.04), "|", color="#c0392b", ms=6, transform=ax.get_xaxis_transform())
        ax.set_yscale("log")
        ax.set_ylabel("score ÷ thr.", fontsize=8)
        ax.set_title(part.name, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("row of the test part")
    which = f"all {len(parts)} parts" if len(shown) == len(parts) else f"the first {len(shown)} of {len(parts)} parts"
    fig.suptitle(
        f"{title}, {which}: score over threshold (log); shaded: labelled anomalies; red ticks: alarms", fontsize=10
    )
    fig.tight_layout()
    return fig


def _confusion(result: dict[str, Any]) -> list[list[Any]]:
    return [
        ["labelled anomalous", result.get("tp"), result.get("fn")],
        ["labelled normal", result.get("fp"), result.get("tn")],
    ]


def _bench_section(report: Report, path: Path, result: dict[str, Any]) -> None:
    title = f"{result.get('dataset')} · {result.get('detector')}"
    report.section(title, result.get("protocol", ""))
    report.kpis(
        [
            ("F1 (point-wise, not adjusted)", _num(result.get("f1"))),
            ("false-alarm rate", _pct(result.get("far"))),
            ("missed-alarm rate", _pct(result.get("mar"))),
            ("event recall", _num(result.get("event_recall"))),
            ("ROC-AUC", _num(result.get("roc_auc"))),
        ]
    )
    report.table(["", "flagged", "not flagged"], _confusion(result))
    rows_per_second = result.get("rows_scored", 0) / max(result.get("score_seconds") or 1e-9, 1e-9)
    report.table(
        ["metric", "value"],
        [
            ["precision", _num(result.get("precision"))],
            ["recall (detection rate)", _num(result.get("recall"))],
            ["PR-AUC", _num(result.get("pr_auc"))],
            [
                "mean detection delay",
                f"{_num(result.get('detection_delay_mean'))} {result.get('detection_delay_unit', '')}",
            ],
            ["false alarms per hour", _num(result.get("false_alarms_per_hour"))],
            [
                "F1, point-adjusted (inflated; shown only beside the unadjusted F1)",
                _num(result.get("f1_point_adjusted")),
            ],
            ["F1, oracle threshold chosen on test labels (not deployable)", _num(result.get("oracle_best_f1_mean"))],
            ["fit seconds / score seconds", f"{result.get('fit_seconds')} / {result.get('score_seconds')}"],
            ["scoring throughput", f"{rows_per_second:,.0f} rows/s"],
        ],
    )
    per_part = result.get("per_part")
    if per_part:
        report.paragraph("Per part (file, machine or device):")
        report.table(
            ["part", "F1", "FAR", "MAR", "event recall", "mean delay", "threshold"],
            [
                [
                    name,
                    _num(m.get("f1")),
                    _pct(m.get("far")),
                    _pct(m.get("mar")),
                    _num(m.get("event_recall")),
                    _num(m.get("detection_delay_mean")),
                    _num(m.get("threshold")),
                ]
                for name, m in per_part.items()
            ],
        )
    view = result.get("operating_points")
    if view and view.get("rows"):
        report.paragraph("Operating points: " + cost_caption(view))
        report.table(COST_HEADER, cost_rows(view))
    choices = result.get("auto_choice_counts")
    if choices:
        report.paragraph(
            "--detector auto chose, per part on that part's training rows (the reasons are in the JSON's "
            "per-part selection records):"
        )
        report.table(["detector / alarm rule", "parts"], [[choice, n] for choice, n in choices.items()])
    scores_path = result.get("scores_file")
    if scores_path:
        resolved = (path.parent / scores_path) if not Path(scores_path).is_absolute() else Path(scores_path)
        parts = read_scores(resolved)
        report.figure(_curves(parts, title))
        report.figure(_timelines(parts, title))
    report.paragraph("Produced by:")
    report.code(result.get("command", "(command not recorded)"))


def _tune_section(report: Report, result: dict[str, Any]) -> None:
    report.section(f"Tuning · {result.get('detector')} on {result.get('source')}")
    header = ["model", "scope", "detection rate", "false-alarm rate", "F1", "µs per row", "parameters"]
    rows = []
    for row in result["comparison"]:
        for scope in ("validation", "test"):
            if scope in row:
                m = row[scope]
                rows.append(
                    [
                        row["model"],
                        scope,
                        _pct(m["recall"]),
                        _pct(m["far"]),
                        _num(m["f1"]),
                        f"{1000 * m['ms_per_row']:.1f}",
                        json.dumps(row["params"]) or "defaults",
                    ]
                )
    report.table(header, rows)
    report.paragraph("Validation folds come from the training data only (synthetic faults where it has no labels).")
    report.code(result.get("command", "(command not recorded)"))


def write_result_report(paths: Sequence[str | Path], output: str | Path) -> Path:
    """Write one HTML page summarising the given result files; return its path."""
    results = load_results(paths)
    report = Report("Vigil evaluation report", subtitle=f"{len(results)} result file(s)")
    benches = [(p, r) for p, r in results if "f1" in r]
    if len(benches) > 1:
        report.section("Comparison")
        report.table(
            ["data set", "detector", "F1", "FAR", "MAR", "ROC-AUC", "event recall"],
            [
                [
                    r.get("dataset"),
                    r.get("detector"),
                    _num(r.get("f1")),
                    _pct(r.get("far")),
                    _pct(r.get("mar")),
                    _num(r.get("roc_auc")),
                    _num(r.get("event_recall")),
                ]
                for _, r in benches
            ],
        )
    for path, result in results:
        if "comparison" in result:
            _tune_section(report, result)
        else:
            _bench_section(report, path, result)
    environment = next((r.get("environment") for _, r in results if r.get("environment")), None)
    if environment:
        report.section("Versions")
        report.table(["component", "version"], [[k, v] for k, v in environment.items()])
    return report.write(output)
