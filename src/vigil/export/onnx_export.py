"""``vigil export MODEL --format onnx -o DIR``: a saved model as one ONNX graph and the JSON of what surrounds it.

The graph comes from :mod:`vigil.export.image_graphs` (padim, patchcore, patch-gauss) or
:mod:`vigil.export.table_graphs` (telemetry pipelines of pca and the reconstruction networks), traced by
torch's TorchScript-based exporter (``dynamo=False``: it needs only the ``onnx`` package, where the dynamo
exporter would also need ``onnxscript``). Before anything is written, the export scores a fixed input with
Vigil and with onnxruntime and refuses to write a graph whose scores differ by more than 1e-4 (relative to
the score, or absolute below 1); the differences found are recorded in the JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import vigil
from vigil.errors import InvalidInputError, NumericalError
from vigil.export.runtime import _FORMAT_VERSION, EXPORT_FORMAT, EXPORT_JSON, OnnxScorer

__all__ = ["PARITY_TOLERANCE", "export_model"]

PARITY_TOLERANCE = 1e-4
"""Largest difference allowed between Vigil's scores and the exported graph's, relative to max(1, |score|)."""

_OPSET = 17
_FORMATS = ("onnx",)


def _require_onnx() -> None:
    import importlib.util

    missing = [m for m in ("torch", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"exporting to ONNX needs {', '.join(missing)}: pip install 'vigil[export]'"
        raise ImportError(msg)


def _trace(module: Any, example: Any, input_name: str, outputs: list[str]) -> bytes:
    import torch

    module = module.eval()  # the exporter puts the module back in the mode it found it in: leave it in eval
    with torch.inference_mode():
        module(example)  # makes the blur matrices of these sizes, which the trace then takes as constants
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo, and notes constant folds it skips.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes file objects; the stubs say paths
            dynamo=False,
            opset_version=_OPSET,
            input_names=[input_name],
            output_names=outputs,
            dynamic_axes={input_name: {0: "n"}, **{name: {0: "n"} for name in outputs}},
        )
    return buffer.getvalue()


def _image_export(model: Path) -> tuple[Any, Any, dict[str, Any], Any]:
    """Graph, example input, the JSON's fields, and Vigil's scoring function, for an image model."""
    import torch

    from vigil.export.image_graphs import image_graph
    from vigil.vision.base import ImageDetector

    layout = json.loads((model / "input.json").read_text())
    detector = ImageDetector.load(model)
    graph = image_graph(detector)
    h, w, c = (int(v) for v in detector.image_shape_)
    rng = np.random.default_rng(0)
    fixed = (rng.random((3, h, w, c)) * 255).astype(np.uint8)  # the fixed input of the parity check
    example = torch.from_numpy(fixed[:1].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0))
    fields = {
        "kind": "image",
        "detector": layout["detector"],
        "input": {"name": "images", "dtype": "float32", "shape": [None, c, h, w]},
        "outputs": ["score", "map"],
        "threshold": float(detector.threshold_),
        "image": {
            "height": h,
            "width": w,
            "channels": c,
            "size": layout["size"],
            "mode": layout["mode"],
            "resize": layout["resize"],
        },
    }
    return graph, example, fields, (fixed, detector.score_samples)


def _table_export(model: Path) -> tuple[Any, Any, dict[str, Any], Any]:
    import torch

    from vigil.export.table_graphs import table_graph
    from vigil.pipeline import Pipeline

    pipe = Pipeline.load(model)
    graph, window = table_graph(pipe)
    d = len(pipe.feature_names_in_)
    rng = np.random.default_rng(0)
    rows = pipe.scaler_.center_ + rng.normal(size=(window + 63, d)) * pipe.scaler_.scale_
    rows[window + 10] += 6.0 * pipe.scaler_.scale_  # one clear anomaly among normal rows
    example = torch.from_numpy(np.ascontiguousarray(rows[None, :window]))
    fields: dict[str, Any] = {
        "kind": "table",
        "detector": pipe.detector_.name,
        "model_version": pipe.version_,
        "input": {"name": "windows", "dtype": "float64", "shape": [None, window, d]},
        "outputs": ["score"],
        "threshold": float(pipe.threshold_),
        "table": {"feature_names": list(pipe.feature_names_in_), "window": window, "smoothing": int(pipe.smoothing)},
    }
    if not pipe.alarm_.is_plain:
        fields["alarm_stage"] = (
            "not exported: the model's alarm stage (delays, deadband, adaptive level) runs in Vigil; "
            "the export flags every score above the threshold"
        )
    return graph, example, fields, (rows, pipe.score_samples)


def export_model(model: str | Path, output: str | Path, *, format: str = "onnx") -> str:
    """Export the model saved in ``model`` to ``output`` (``model.onnx`` and ``vigil-export.json``).

    Returns
    -------
    str
        A one-line summary: what was exported, the parity found, where it went.

    Raises
    ------
    InvalidInputError
        Unknown format, a model directory that is not Vigil's, or a detector that cannot be exported
        (the message lists those that can).
    NumericalError
        The exported graph's scores differ from Vigil's by more than :data:`PARITY_TOLERANCE` (nothing is
        written).
    ImportError
        torch, onnx or onnxruntime is missing.
    """
    from vigil.vision.folders import is_image_model

    if format not in _FORMATS:
        msg = f"unknown export format {format!r}; available: {', '.join(_FORMATS)}"
        raise InvalidInputError(msg)
    model = Path(model)
    if not (model / "config.json").is_file():
        msg = f"{model} is not a model directory written by `vigil fit` (no config.json)"
        raise InvalidInputError(msg)
    layout_path = model / "input.json"
    if layout_path.is_file() and json.loads(layout_path.read_text()).get("kind") == "capture":
        msg = f"{model} scores packet captures: its feature extraction is not part of an ONNX export"
        raise InvalidInputError(msg)
    _require_onnx()
    build = _image_export if is_image_model(model) else _table_export
    graph, example, fields, (fixed, vigil_scores) = build(model)
    outputs = fields["outputs"]
    data = _trace(graph, example, fields["input"]["name"], outputs)

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    spec = {
        "format": EXPORT_FORMAT,
        "format_version": _FORMAT_VERSION,
        "vigil_version": vigil.__version__,
        "onnx": "model.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "opset": _OPSET,
        **fields,
    }
    staging = out / ".export-check"
    staging.mkdir(exist_ok=True)
    try:
        (staging / "model.onnx").write_bytes(data)
        (staging / EXPORT_JSON).write_text(json.dumps(spec, indent=2) + "\n")
        ours, theirs = vigil_scores(fixed), OnnxScorer(staging).score(fixed)
    finally:
        for file in staging.iterdir():
            file.unlink()
        staging.rmdir()
    difference = np.abs(theirs - ours) / np.maximum(1.0, np.abs(ours))
    spec["parity"] = {
        "inputs": len(fixed),
        "max_abs_difference": float(np.abs(theirs - ours).max()),
        "max_relative_difference": float(difference.max()),
        "tolerance": PARITY_TOLERANCE,
        "what": "seeded random images of the model's size" if fields["kind"] == "image" else
                "seeded rows around the scaler's centre, one of them 6 scales off",
    }  # fmt: skip
    if difference.max() > PARITY_TOLERANCE:
        msg = (
            f"the ONNX graph of {model} scores differently from Vigil (largest difference "
            f"{difference.max():.3g} relative to max(1, |score|), tolerance {PARITY_TOLERANCE:g}); nothing written"
        )
        raise NumericalError(msg)
    (out / "model.onnx").write_bytes(data)
    (out / EXPORT_JSON).write_text(json.dumps(spec, indent=2) + "\n")
    return (
        f"exported {fields['detector']} ({fields['kind']}) to {out / 'model.onnx'} ({len(data) / 1e6:.1f} MB) "
        f"and {out / EXPORT_JSON}; parity on {len(fixed)} fixed {'images' if fields['kind'] == 'image' else 'rows'}: "
        "largest difference "
        f"{spec['parity']['max_abs_difference']:.2g} (tolerance {PARITY_TOLERANCE:g} relative)"
    )
