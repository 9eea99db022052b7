"""Live camera inspection: score one frame at a time and turn a defect into a stored, published alert.

:class:`CameraInspector` holds an image model written by ``vigil fit FOLDER`` (the detector plus the
working size, colour mode and resize policy it was trained at). :meth:`CameraInspector.inspect` decodes a
frame exactly as training read its images, scores it with its anomaly map, and, when the score is above the
detector's threshold, stores an alert for the camera: its ``top_features`` are the cells of a 4 × 4 grid
over the frame holding most of the anomaly map (``"row 2, column 3"``, share), and its explanation says
where the defect is. Beside the alert the store keeps one PNG (:func:`~vigil.vision.report.overlay_png`): the
frame as the model read it, its anomaly map over it, a colour bar and the threshold, which the service serves
at ``/alerts/{id}/image`` and the dashboard shows. A frame that cannot be decoded raises
:class:`~vigil.errors.InvalidInputError` naming it; the service turns that into a dead letter and an HTTP 422,
and goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vigil.alerts import Alert, AlertEvent, AlertSink, AlertStore, Publisher, alert_id
from vigil.errors import InvalidInputError, VigilError
from vigil.vision.io import decode_image

__all__ = ["CameraInspector"]

_LOG = logging.getLogger(__name__)

_GRID = 4  # the frame is described in 4 × 4 cells: coarse enough to name, fine enough to find the part
_TOP_CELLS = 3


def _model_version(model: Path, detector: str) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in model.iterdir() if p.is_file()):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return f"{detector}-{digest.hexdigest()[:10]}"


class CameraInspector:
    """Score camera frames with an image model and store an alert for each defective one.

    Parameters
    ----------
    model : path
        A directory written by ``vigil fit FOLDER`` (see :mod:`vigil.vision.folders`).
    store : AlertStore
        Where alerts go, through an :class:`~vigil.alerts.sink.AlertSink` (stored, then published).
    sinks : sequence of Publisher
        Publishers of alert events (webhooks, MQTT), called once the alert is stored.
    store_timeout : float
        Seconds the sink retries a refused alert before :meth:`inspect` gives up (HTTP 503: nothing is
        acknowledged that is not stored).

    Attributes
    ----------
    frames, defects : int
        Frames scored, and how many of them were above the threshold.
    model_version : str
        The detector's name and a digest of the model's files.
    """

    def __init__(
        self, model: str | Path, store: AlertStore, sinks: Sequence[Publisher] = (), *, store_timeout: float = 10.0
    ) -> None:
        from vigil.vision.base import ImageDetector
        from vigil.vision.folders import is_image_model

        model = Path(model)
        if not is_image_model(model):
            msg = f"{model} is not an image model: fit one with `vigil fit FOLDER_OF_GOOD_IMAGES --detector ...`"
            raise InvalidInputError(msg)
        self.layout = json.loads((model / "input.json").read_text())
        self.detector = ImageDetector.load(model)
        self.model_version = _model_version(model, self.layout["detector"])
        self.store = store
        self.sink = AlertSink(store, sinks)
        self.store_timeout = store_timeout
        self.frames = 0
        self.defects = 0
        self._lock = threading.Lock()  # scoring is called from the server's worker threads

    def status(self) -> dict[str, Any]:
        """Counters for ``/health``."""
        return {"model_version": self.model_version, "frames": self.frames, "defects": self.defects}

    def inspect(self, camera: str, frame: bytes, *, name: str = "frame", when: datetime | None = None) -> dict:
        """Score one encoded frame (JPEG or PNG) from ``camera``; store and publish an alert if it is defective.

        Returns
        -------
        dict
            ``camera``, ``score``, ``threshold``, ``anomaly``, ``model_version``, ``alert_id`` (None for a
            good frame) and ``region`` (the hottest cells, for a defective frame).

        Raises
        ------
        InvalidInputError
            The frame is empty, truncated, corrupt or not a JPEG/PNG.
        """
        image = decode_image(
            frame,
            size=int(self.layout["size"]),
            mode=self.layout["mode"],
            resize=self.layout["resize"],
            where=f"frame {name!r} from camera {camera!r}",
        )
        with self._lock:
            if self.detector.localizes:
                scores, maps = self.detector.score_with_maps(image[None])
                heat = maps[0]
            else:
                scores, heat = self.detector.score_samples(image[None]), None
            self.frames += 1
        score, threshold = float(scores[0]), float(self.detector.threshold_)
        result: dict[str, Any] = {
            "camera": camera,
            "score": score,
            "threshold": threshold,
            "anomaly": score > threshold,
            "model_version": self.model_version,
            "alert_id": None,
        }
        if score <= threshold:
            return result
        moment = (when or datetime.now(UTC)).astimezone(UTC)
        cells = _hottest_cells(heat) if heat is not None else []
        where = f" around {cells[0][0]} of a {_GRID} × {_GRID} grid" if cells else ""
        alert = Alert(
            id=alert_id(camera, self.model_version, moment),
            device=camera,
            start=moment,
            end=moment,
            peak_time=moment,
            score=score,
            threshold=threshold,
            model_version=self.model_version,
            top_features=cells,
            incident_type="visual_defect",
            n_points=1,
            explanation=(
                f"frame {name} from {camera} looks defective{where}: score {score:.3g} over the threshold "
                f"{threshold:.3g} of {self.layout['detector']}"
            ),
            modality="camera",
        )
        if heat is not None:
            self._keep_image(alert.id, image, heat, threshold, f"{name} from {camera} · score {score:.3g}")
        if not self.sink.deliver([AlertEvent("opened", alert)], timeout=self.store_timeout):
            # Not stored, so not acknowledged: the service answers 503 and the sender keeps the frame.
            msg = f"the alert store did not take the alert of frame {name!r} within {self.store_timeout:g} s"
            raise VigilError(msg)
        with self._lock:
            self.defects += 1
        result["alert_id"] = alert.id
        result["region"] = [{"cell": cell, "share": share} for cell, share in cells]
        return result

    def _keep_image(self, alert: str, image: np.ndarray, heat: np.ndarray, threshold: float, title: str) -> None:
        """Store the frame with its map beside the alert, before the alert: a dashboard that sees the alert
        finds its image. The image is evidence, not the alert: if it cannot be stored, the alert still is."""
        from vigil.vision.report import overlay_png

        try:
            self.store.put_image(alert, overlay_png(image, heat, threshold=threshold, title=title))
        except Exception:  # the store or the drawing failed: log it, and let the sink's retries deal with the store
            _LOG.exception("the image of camera alert %s could not be stored", alert)


def _hottest_cells(heat: np.ndarray) -> list[tuple[str, float]]:
    """The cells of a grid over the map holding most of it, largest share first."""
    h, w = heat.shape
    rows = np.array_split(np.arange(h), _GRID)
    cols = np.array_split(np.arange(w), _GRID)
    mass = np.array([[heat[np.ix_(r, c)].sum() for c in cols] for r in rows], dtype=np.float64)
    total = mass.sum()
    if total <= 0:
        return []
    order = np.argsort(mass, axis=None)[::-1][:_TOP_CELLS]
    return [(f"row {i // _GRID + 1}, column {i % _GRID + 1}", float(mass.flat[i] / total)) for i in order]
