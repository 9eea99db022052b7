"""``vigil bench`` on the telemetry benchmarks (SKAB, SMD, TON_IoT): every part under the official protocol.

The network benchmarks run through :func:`vigil.network.bench.run_network_bench` and the image one through
:func:`vigil.vision.bench.run_image_bench`; this is their telemetry counterpart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["run_table_bench"]


def run_table_bench(
    dataset: str,
    make: Callable[[], Any],
    *,
    detector: str,
    data_dir: str | None = None,
    parts: Sequence[str] | None = None,
    attribution: str = "model",
    fleet: bool = True,
    costs: dict[str, float] | None = None,
    record_scores: bool = False,
    per_part: bool = False,
    progress: bool = True,
) -> tuple[dict[str, Any], Any]:
    """Fit ``make()`` on each part's training rows and score its test rows, as the benchmark's protocol says.

    Returns the result (``dataset``, ``detector``, ``protocol`` — which names a subset of ``parts`` — and
    the figures of :func:`~vigil.evaluation.runner.evaluate_parts`; per-part figures only with ``per_part``)
    and, with ``record_scores``, the :class:`~vigil.evaluation.scores_file.ScoreRecorder` holding the scores.
    """
    from vigil.data.benchmarks import load_benchmark
    from vigil.evaluation.runner import EvaluationPart, evaluate_parts
    from vigil.evaluation.scores_file import ScoreRecorder

    subset = list(parts) if parts else None
    benchmark = load_benchmark(dataset, data_dir=data_dir, parts=subset)
    tests = [EvaluationPart(p.name, p.X_train, p.X_test, p.y_test, p.time_test, extra=p.extra) for p in benchmark.parts]
    recorder = ScoreRecorder() if record_scores else None
    result = evaluate_parts(
        tests,
        make,
        progress=progress,
        label=f"{dataset} · {detector}",
        on_part=recorder.record if recorder else None,
        attribution=attribution,
        fleet=fleet,
        costs=costs,
    )
    document = {
        "dataset": benchmark.name,
        "detector": detector,
        "protocol": benchmark.protocol + (f" SUBSET: only the parts {', '.join(subset)} were run." if subset else ""),
        **result,
    }
    if not per_part:
        document.pop("per_part")
        if "operating_points" in document:
            document["operating_points"].pop("per_part")
    return document, recorder
