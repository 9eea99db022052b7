"""Score a file with a saved model: a table (CSV), a packet capture or a folder of images, as the model reads.

``vigil fit`` records what a model was fitted on in the model's ``input.json`` (:func:`model_layout`): the
table's columns and how to read them, ``"kind": "capture"`` for a packet model, ``"kind": "images"`` for an
image model. :func:`score_file` reads that record, so the kind of model is known rather than guessed from
the data, and refuses a capture given to a table model (and the reverse) with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vigil.errors import InvalidInputError
from vigil.network.pcap import is_capture

__all__ = ["model_layout", "score_file", "score_table_file"]


def model_layout(model: str | Path) -> dict[str, Any]:
    """What ``vigil fit`` recorded about a model's input (``input.json``), or {} for a model without it."""
    path = Path(model) / "input.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def score_file(model: str | Path, data: str | Path, output: str | Path, *, top_k: int = 3, **options: Any) -> str:
    """Score ``data`` with the model saved at ``model``, write the scores to ``output`` (CSV) and return a
    one-line summary.

    An image model scores a folder of images (``maps``: a folder for heat-map overlays), a capture model a
    packet capture, any other pipeline a table (``options`` are those of :func:`score_table_file`).
    """
    from vigil.vision.folders import is_image_model

    if is_image_model(model):
        from vigil.vision.folders import score_image_folder

        return score_image_folder(model, data, output, maps=options.get("maps"))
    layout = model_layout(model)
    capture = is_capture(data)
    if capture != (layout.get("kind") == "capture"):
        msg = (
            f"{data} is a packet capture, but {model} was fitted on a table (columns "
            f"{', '.join(layout.get('features', [])[:4])}...): score captures with a model fitted by "
            "`vigil fit BENIGN.pcap`"
            if capture
            else f"{model} was fitted on a packet capture: give it a .pcap/.pcapng file, not {data}"
        )
        raise InvalidInputError(msg)
    if capture:
        from vigil.network.cli import write_capture_scores

        return write_capture_scores(model, data, output, top_k=top_k)
    options.pop("maps", None)
    return score_table_file(model, data, output, top_k=top_k, layout=layout, **options)


def score_table_file(
    model: str | Path,
    data: str | Path,
    output: str | Path,
    *,
    top_k: int = 3,
    layout: dict[str, Any] | None = None,
    label: str | None = None,
    time: str | None = None,
    drop: Sequence[str] | None = None,
    sep: str | None = None,
    sort_time: bool = False,
    drop_duplicate_times: bool = False,
) -> str:
    """Score a table with a saved pipeline; write one CSV row per input row and return a one-line summary.

    The columns are ``row, [time,] score, threshold, anomaly, alarm, top_features``: the model's own alarm
    stage decides, as the service would on the same rows in the same order. ``label``, ``time``, ``drop``
    and ``sep`` default to what ``vigil fit`` recorded (``layout``, read from the model when None).
    """
    import numpy as np
    import pandas as pd

    from vigil.data.tables import read_table
    from vigil.pipeline import Pipeline, top_features

    layout = model_layout(model) if layout is None else layout
    pipe = Pipeline.load(Path(model))
    table = read_table(
        data,
        label=label if label is not None else layout.get("label"),
        time=time if time is not None else layout.get("time"),
        drop=list(drop) if drop is not None else layout.get("drop", []),
        sep=sep if sep is not None else layout.get("sep", ","),
        columns=pipe.feature_names_in_,
        sort_time=sort_time,
        drop_duplicate_times=drop_duplicate_times,
        categorical=pipe.encoder_.columns if pipe.encoder_ is not None else (),
    )
    scored = pipe.score_with_contributions(table.X)
    scores = scored.scores
    ranked = top_features(scored.contributions(), pipe.feature_names_out_, top_k=top_k)
    run = pipe.decide(scores, timestamps=None if table.time is None else table.time.to_numpy())
    out = pd.DataFrame({"row": np.arange(len(scores))})
    if table.time is not None:
        out["time"] = table.time.strftime("%Y-%m-%dT%H:%M:%S")
    out["score"] = scores
    out["threshold"] = run.thresholds
    out["anomaly"] = run.flagged
    out["alarm"] = run.active
    out["top_features"] = [";".join(f"{name}={share:.3f}" for name, share in row) for row in ranked]
    destination = Path(output)
    destination.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(destination, index=False)
    adapts = not np.all(run.thresholds == pipe.threshold_)
    level = f"the threshold {pipe.threshold_:.4g}" + (
        f" (adapting: {run.thresholds.min():.4g} to {run.thresholds.max():.4g})" if adapts else ""
    )
    return (
        f"scored {len(out)} rows with {pipe.version_}: {int(out['anomaly'].sum())} above {level}; "
        f"{_plural(int(run.raised.sum()), 'alarm')} over {_plural(int(run.active.sum()), 'row')}; wrote {destination}"
    )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
