"""The scoring of a telemetry :class:`~vigil.pipeline.Pipeline` as a torch module that traces to ONNX.

The graph holds the scaler and the detector: it takes windows of *raw* readings, shape (n, window, d) in
float64 (window = 1 for a detector that scores single rows), in the column order of the fit, and returns one
score per window, computed as the pipeline computes it (float64 where Vigil works in float64, float32 inside
the networks as in Vigil). What surrounds it (cutting rows into windows, giving the first rows the first
window's score, the pipeline's smoothing, the threshold) is plain numpy in :mod:`vigil.export.runtime`,
described by the export's JSON.

Exportable: ``pca`` (a linear map and two statistics) and the reconstruction networks ``autoencoder``,
``conv-ae`` and ``lstm-ae``. Other detectors (trees, neighbours, online statistics, forecasters) and pipelines
with text columns raise :class:`~vigil.errors.InvalidInputError` saying so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil.errors import InvalidInputError

__all__ = ["EXPORTABLE_TABLE_DETECTORS", "table_graph"]

EXPORTABLE_TABLE_DETECTORS = ("pca", "autoencoder", "conv-ae", "lstm-ae")
"""Telemetry detectors whose pipelines ``vigil export`` turns into ONNX."""


def table_graph(pipe: Any) -> tuple[Any, int]:
    """A torch module scoring windows of raw readings as ``pipe`` does, and the window length it takes.

    Raises
    ------
    InvalidInputError
        The detector is not exportable, or the pipeline one-hot encodes text columns.
    """
    from vigil.detectors.torch_base import require_torch

    require_torch()  # says which extra to install
    import torch

    detector = pipe.detector_
    if detector.name not in EXPORTABLE_TABLE_DETECTORS:
        msg = (
            f"{detector.name} has no ONNX export: exportable telemetry detectors are "
            f"{', '.join(EXPORTABLE_TABLE_DETECTORS)} (and the image detectors padim, patchcore, patch-gauss)"
        )
        raise InvalidInputError(msg)
    if pipe.encoder_ is not None:
        msg = "a pipeline that one-hot encodes text columns cannot be exported yet: fit it on numeric columns"
        raise InvalidInputError(msg)
    center = torch.from_numpy(np.asarray(pipe.scaler_.center_, dtype=np.float64))
    scale = torch.from_numpy(np.asarray(pipe.scaler_.scale_, dtype=np.float64))
    score = _pca(detector) if detector.name == "pca" else _reconstruction(detector)

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("center", center)
            self.register_buffer("scale", scale)
            self.score = score

        def forward(self, windows: Any) -> Any:
            return self.score((windows - self.center) / self.scale)

    window = int(detector.context_rows) + 1  # 1 for pca; a reconstruction network's window
    return Scaled(), window


def _pca(detector: Any) -> Any:
    import torch

    class PCA(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name in ("mean_", "components_", "eigenvalues_"):
                self.register_buffer(name[:-1], torch.from_numpy(np.asarray(getattr(detector, name), np.float64)))
            self.t2_limit, self.q_limit = float(detector.t2_limit_), float(detector.q_limit_)

        def forward(self, windows: Any) -> Any:
            centred = windows[:, 0, :] - self.mean
            t = centred @ self.components.T
            residual = centred - t @ self.components
            t2 = (t * t / self.eigenvalues).sum(dim=1)
            q = (residual * residual).sum(dim=1)
            return torch.maximum(t2 / self.t2_limit, q / self.q_limit)

    return PCA()


def _reconstruction(detector: Any) -> Any:
    import torch

    drifting = getattr(detector, "relative_features_", None)
    relative = None if drifting is None or not np.any(drifting) else torch.from_numpy(np.asarray(drifting, bool))
    now = int(detector.window) - 1  # the last row the network is given as input

    class Reconstruction(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = detector.module_.cpu().eval()
            self.register_buffer("error_scale", torch.from_numpy(np.asarray(detector.error_scale_, np.float64)))
            if relative is not None:
                self.register_buffer("relative", relative[None, None, :].double())

        def forward(self, windows: Any) -> Any:
            if relative is not None:  # drifting sensors are seen relative to the window's last input row
                windows = windows - self.relative * windows[:, now : now + 1, :]
            batch = windows.float()
            errors = ((self.network(batch) - batch) ** 2).mean(dim=1)
            return (errors.double() / self.error_scale).mean(dim=1)

    return Reconstruction()
