"""Expose the runtime's counters in Prometheus' text format (``GET /metrics``).

Metrics (all prefixed ``vigil_``): ``messages_received_total{source}``, ``records_scored_total{model}``,
``dead_letters_total{kind}``, ``redeliveries_total``, ``alert_events_total{event}``,
``ingest_latency_seconds`` (histogram, receipt to stored decision), ``queue_depth``, ``store_errors_total``,
``model_info{model,version}``,
``score_drift_z{model}`` and ``score_drifted{model}``. Each app has its own registry, so several services
(or tests) in one process never share counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vigil.service._optional import require
from vigil.streaming.dead_letters import DEAD_LETTER_KINDS
from vigil.streaming.runtime import Runtime

prometheus_client = require("prometheus_client")
from prometheus_client.core import (  # noqa: E402
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry  # noqa: E402

__all__ = ["CONTENT_TYPE", "RuntimeCollector", "render_metrics"]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST


class RuntimeCollector(Collector):
    """A Prometheus collector that reads a :class:`~vigil.streaming.runtime.Runtime` when scraped."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        snap = self.runtime.metrics.snapshot()
        received = CounterMetricFamily("vigil_messages_received", "Records received, by transport", labels=["source"])
        for source, n in sorted(snap["received"].items()):
            received.add_metric([source], n)
        yield received
        scored = CounterMetricFamily("vigil_records_scored", "Records scored, by model", labels=["model"])
        for model, n in sorted(snap["scored"].items()):
            scored.add_metric([model], n)
        yield scored
        dead = CounterMetricFamily("vigil_dead_letters", "Refused messages and records, by kind", labels=["kind"])
        for kind in DEAD_LETTER_KINDS:
            dead.add_metric([kind], snap["dead_letters"].get(kind, 0))
        yield dead
        partial = CounterMetricFamily(
            "vigil_partial_readings", "Readings handled by their sensor's partial-record policy", labels=["kind"]
        )
        for kind in ("missing", "out_of_range", "numeric_string"):
            partial.add_metric([kind], snap["partial_readings"].get(kind, 0))
        yield partial
        yield GaugeMetricFamily(
            "vigil_silent_assets",
            "Declared assets that sent nothing for longer than their silence limit",
            value=sum(self.runtime.declared_assets().values()),
        )
        yield CounterMetricFamily(
            "vigil_redeliveries", "Records identical to one already processed, acknowledged", value=snap["redeliveries"]
        )
        alerts = CounterMetricFamily("vigil_alert_events", "Alert events, by kind", labels=["event"])
        for event in ("opened", "updated", "closed"):
            alerts.add_metric([event], snap["alerts"].get(event, 0))
        yield alerts
        latency = snap["latency"]
        buckets = []
        cumulative = 0
        for bound, n in zip((*latency.bounds, float("inf")), latency.counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        histogram = HistogramMetricFamily(
            "vigil_ingest_latency_seconds", "Seconds from receipt to a stored decision, per record"
        )
        histogram.add_metric([], buckets, latency.total)
        yield histogram
        yield GaugeMetricFamily(
            "vigil_queue_depth", "Submissions waiting for the worker", value=self.runtime.queue_depth
        )
        yield CounterMetricFamily("vigil_store_errors", "Failed store commits (retried)", value=snap["store_errors"])
        info = GaugeMetricFamily("vigil_model_info", "Served model versions", labels=["model", "version"])
        drift_z = GaugeMetricFamily("vigil_score_drift_z", "Largest |z| of the score drift checks", labels=["model"])
        drifted = GaugeMetricFamily("vigil_score_drifted", "1 when recent scores drifted", labels=["model"])
        for model in self.runtime.models():
            info.add_metric([model["name"], model["version"]], 1)
            report = self.runtime.drift(model["name"])
            worst = max((abs(c["z"]) for c in report.checks), default=0.0)
            drift_z.add_metric([model["name"]], worst)
            drifted.add_metric([model["name"]], 1.0 if report.drifted else 0.0)
        yield info
        yield drift_z
        yield drifted


def render_metrics(runtime: Runtime) -> bytes:
    """The runtime's metrics in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    return prometheus_client.generate_latest(registry)
