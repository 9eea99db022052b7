"""A feature backbone from an ONNX file, run by onnxruntime: ``--param backbone=path/to/model.onnx``.

The file is the user's: any network exported to ONNX that takes one float tensor (n, 3, H, W) with values in
[0, 1] and returns one or more feature maps (n, C, h, w), as a module of one's own does (see
:mod:`vigil.vision.backbones`); ``layers`` picks outputs by position. A detector records the file's SHA-256
when it is fitted and refuses to score with a file that has changed since, so a saved model never scores
silently with other features than it learned.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from vigil.errors import InvalidInputError, ModelFormatError

__all__ = ["is_onnx_path", "onnx_backbone"]

_INSTALL = "pip install 'vigil[edge]'"


def is_onnx_path(value: Any) -> bool:
    """True when ``value`` names an ONNX file (by its suffix; whether it exists is checked when it is loaded)."""
    return isinstance(value, str) and value.lower().endswith(".onnx")


def onnx_backbone(path: str | Path, expected_sha256: str | None = None) -> Any:
    """A ``torch.nn.Module`` that runs the ONNX network at ``path`` on CPU and returns its outputs as tensors.

    Raises
    ------
    InvalidInputError
        The file cannot be read, is not a model onnxruntime can load, or does not take exactly one input.
    ModelFormatError
        ``expected_sha256`` is given and the file's hash differs (it changed since the model was fitted).
    ImportError
        onnxruntime is not installed (the message says what to install).
    """
    if importlib.util.find_spec("onnxruntime") is None:
        msg = f"an ONNX backbone needs onnxruntime: {_INSTALL}"
        raise ImportError(msg)
    import onnxruntime
    import torch
    from torch import nn

    # Read once: the bytes whose hash is checked are the bytes onnxruntime loads.
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        msg = f"cannot read the ONNX backbone {path}: {exc}"
        raise InvalidInputError(msg) from exc
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        msg = (
            f"the ONNX backbone {path} changed since the model was fitted: SHA-256 {digest}, the model learned on "
            f"{expected_sha256}; restore that file or fit again"
        )
        raise ModelFormatError(msg)
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        msg = f"onnxruntime cannot load the ONNX backbone {path}: {exc}"
        raise InvalidInputError(msg) from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = [i.name for i in inputs]
        msg = f"the ONNX backbone {path} takes {len(inputs)} inputs {names}; a backbone takes one image batch"
        raise InvalidInputError(msg)
    name = inputs[0].name

    class OnnxBackbone(nn.Module):
        """The ONNX network at ``path`` as a module (inference only: no gradients flow through it)."""

        def __init__(self) -> None:
            super().__init__()
            self.path, self.sha256 = str(path), digest

        def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
            feed = {name: images.detach().cpu().float().contiguous().numpy()}
            return [torch.from_numpy(out) for out in session.run(None, feed)]

    return OnnxBackbone().eval()
