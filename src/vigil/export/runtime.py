"""Score with an exported model on a gateway: needs only ``onnxruntime`` and ``numpy`` (no torch).

``vigil export MODEL --format onnx -o DIR`` writes ``DIR/model.onnx`` and ``DIR/vigil-export.json``, which
says what the graph takes and what surrounds it: the threshold, the image size and colour mode, or the
sensor columns, the window and the smoothing of a telemetry pipeline. :class:`OnnxScorer` reads both and
scores numpy arrays as Vigil does (the export checked that on a fixed input, to 1e-4).

A directory that does not hold what the JSON describes is refused when it is opened, with the file named:
a truncated or corrupt ``model.onnx``, a model whose input or outputs are not those exported (say, a model
of your own for another image size), or a file that was changed after the export (its SHA-256).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError, ModelFormatError, NumericalError
from vigil.features.windows import causal_mean, rows_from_windows, sliding_windows

__all__ = ["EXPORT_FORMAT", "EXPORT_JSON", "OnnxScorer"]

EXPORT_FORMAT = "vigil.onnx-export"
EXPORT_JSON = "vigil-export.json"
_FORMAT_VERSION = 1
_IMAGES_PER_RUN = 16  # images per session run: bounds the memory of PatchCore's distance matrix
_ROWS_PER_RUN = 4096
_DTYPES = {"float32": ("tensor(float)", np.float32), "float64": ("tensor(double)", np.float64)}


def _session(path: Path, data: bytes, threads: int) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        msg = "scoring an exported model needs onnxruntime: pip install 'vigil[edge]'"
        raise ImportError(msg) from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: the gateway's log is not the place for optimiser notes
    try:
        return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a bad file; all mean the same here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{path} is not a readable ONNX model (truncated or corrupt?): {reason[:300]}; export it again"
        raise ModelFormatError(msg) from exc


def _shape_text(shape: list[Any]) -> str:
    return "[" + ", ".join("N" if not isinstance(v, int) else str(v) for v in shape) + "]"


class OnnxScorer:
    """An exported image detector or telemetry pipeline, scored with onnxruntime.

    Parameters
    ----------
    path : path
        The directory ``vigil export`` wrote.
    threads : int
        Threads onnxruntime may use for one call (1: what a small gateway has to spare).

    Attributes
    ----------
    kind : {"image", "table"}
    threshold : float
        Scores above it are anomalies (the model's calibrated threshold).
    spec : dict
        The export's JSON.

    Raises
    ------
    ModelFormatError
        The JSON is missing or not an export's, ``model.onnx`` is missing, unreadable, takes another input
        or gives other outputs than the JSON describes, or is not the file exported (SHA-256).
    ImportError
        onnxruntime is not installed.
    """

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        directory = Path(path)
        spec_path = directory / EXPORT_JSON
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, ValueError) as exc:
            msg = f"{spec_path} cannot be read ({exc}): give the directory `vigil export` wrote"
            raise ModelFormatError(msg) from exc
        if not isinstance(spec, dict) or spec.get("format") != EXPORT_FORMAT:
            msg = f"{spec_path} is not a Vigil ONNX export (format {EXPORT_FORMAT!r} expected)"
            raise ModelFormatError(msg)
        if int(spec.get("format_version", 0)) > _FORMAT_VERSION:
            version = spec["format_version"]
            msg = f"{spec_path} has export format version {version}; this Vigil reads versions up to {_FORMAT_VERSION}"
            raise ModelFormatError(msg)
        self.spec = spec
        self._spec_path = spec_path  # named in every error about the input, so a gateway log says which model
        self.kind = str(spec["kind"])
        self.threshold = float(spec["threshold"])
        onnx_path = directory / str(spec["onnx"])
        try:
            data = onnx_path.read_bytes()
        except OSError as exc:
            msg = f"cannot read the exported model {onnx_path}: {exc}"
            raise ModelFormatError(msg) from exc
        self._session = _session(onnx_path, data, threads)
        self._check_signature(onnx_path, spec_path)
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec["sha256"]:
            msg = (
                f"{onnx_path} is not the model exported with {spec_path.name}: SHA-256 {digest}, expected "
                f"{spec['sha256']}; export it again"
            )
            raise ModelFormatError(msg)

    def _check_signature(self, onnx_path: Path, spec_path: Path) -> None:
        """The graph must take and give what the JSON says: a model of another size would score nonsense."""
        want = self.spec["input"]
        inputs = self._session.get_inputs()
        got = [(i.name, list(i.shape), i.type) for i in inputs]
        onnx_type, self._dtype = _DTYPES[want["dtype"]]
        expected = [(want["name"], list(want["shape"]), onnx_type)]

        def same(a: list[Any], b: list[Any]) -> bool:
            # The batch axis is symbolic in both; every other axis must be the same number.
            return len(a) == len(b) and all(x == y for x, y in zip(a[1:], b[1:], strict=True))

        if len(got) != 1 or got[0][0] != want["name"] or got[0][2] != onnx_type or not same(got[0][1], want["shape"]):
            found = ", ".join(f"{n!r} {_shape_text(s)} {t}" for n, s, t in got) or "no input"
            msg = (
                f"{onnx_path} takes {found}, but {spec_path.name} expects one input {want['name']!r} "
                f"{_shape_text(expected[0][1])} {expected[0][2]}: it is not the model exported there"
            )
            raise ModelFormatError(msg)
        outputs = [o.name for o in self._session.get_outputs()]
        if outputs != list(self.spec["outputs"]):
            msg = f"{onnx_path} gives outputs {outputs}, but {spec_path.name} expects {self.spec['outputs']}"
            raise ModelFormatError(msg)

    # ------------------------------------------------------------------ images
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the frames an image model takes."""
        image = self.spec["image"]
        return int(image["height"]), int(image["width"]), int(image["channels"])

    def _images(self, X: Any) -> NDArray[np.float32]:
        """Frames as (n, C, H, W) float32 in [0, 1], checked as :func:`vigil.vision.base.check_images` does."""
        array = np.asarray(X)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            msg = f"images must hold numbers, got dtype {array.dtype}"
            raise InvalidInputError(msg)
        if array.ndim == 3:
            array = array[..., None]
        h, w, c = self.image_shape
        if array.ndim != 4 or tuple(array.shape[1:]) != (h, w, c) or array.shape[0] < 1:
            msg = (
                f"images must have shape (n, {h}, {w}){'' if c == 1 else f' with {c} channels'} or (n, {h}, {w}, {c}) "
                f"as exported in {self._spec_path} ({self.spec['image']['mode']}, {h}×{w} px), got {np.shape(X)}"
            )
            raise InvalidInputError(msg)
        values = array.astype(np.float32) / np.float32(255.0) if array.dtype == np.uint8 else array.astype(np.float32)
        if not np.isfinite(values).all():
            n, row, col, _ = (int(v) for v in np.argwhere(~np.isfinite(values))[0])
            msg = f"images[image {n}, row {row}, column {col}] is not finite"
            raise InvalidInputError(msg)
        return np.ascontiguousarray(values.transpose(0, 3, 1, 2))

    def _run_images(self, images: NDArray[np.float32], want_maps: bool) -> tuple[NDArray[np.float64], Any]:
        name = self.spec["input"]["name"]
        scores, maps = [], []
        for start in range(0, len(images), _IMAGES_PER_RUN):
            outputs = self._session.run(None, {name: images[start : start + _IMAGES_PER_RUN]})
            scores.append(np.asarray(outputs[0], dtype=np.float64))
            if want_maps:
                maps.append(np.asarray(outputs[1], dtype=np.float64))
        return self._finite(np.concatenate(scores)), (np.concatenate(maps) if want_maps else None)

    def score_with_maps(self, images: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Scores (n,) and anomaly maps (n, H, W) of frames of the exported size (``uint8`` or floats in [0, 1])."""
        if self.kind != "image":
            msg = "score_with_maps is for image models; this export is a telemetry pipeline"
            raise InvalidInputError(msg)
        return self._run_images(self._images(images), want_maps=True)

    # ------------------------------------------------------------------ telemetry
    @property
    def feature_names(self) -> list[str]:
        """The sensor columns a telemetry pipeline takes, in order."""
        return [str(n) for n in self.spec["table"]["feature_names"]]

    def _rows(self, X: Any) -> NDArray[np.float64]:
        array = np.asarray(X, dtype=np.float64) if not isinstance(X, np.ndarray) else X.astype(np.float64)
        d = len(self.feature_names)
        window = int(self.spec["table"]["window"])
        if array.ndim != 2 or array.shape[1] != d:
            msg = (
                f"rows must have shape (n, {d}) with the columns {self.feature_names[:6]}... as exported in "
                f"{self._spec_path}, got {np.shape(X)}"
            )
            raise InvalidInputError(msg)
        if array.shape[0] < window:
            msg = (
                f"the pipeline exported in {self._spec_path} scores windows of {window} rows: give at least "
                f"{window} rows, got {array.shape[0]}"
            )
            raise InvalidInputError(msg)
        if not np.isfinite(array).all():
            row, col = (int(v) for v in np.argwhere(~np.isfinite(array))[0])
            msg = f"rows[{row}, {self.feature_names[col]!r}] is not finite"
            raise InvalidInputError(msg)
        return array

    # ------------------------------------------------------------------ both
    def score(self, X: Any) -> NDArray[np.float64]:
        """One score per image, or per row of telemetry (time-ordered rows of one device); higher = worse."""
        if self.kind == "image":
            return self._run_images(self._images(X), want_maps=False)[0]
        rows = self._rows(X)
        table = self.spec["table"]
        window = int(table["window"])
        windows = np.ascontiguousarray(sliding_windows(rows, window))
        name = self.spec["input"]["name"]
        parts = [
            self._session.run(None, {name: windows[s : s + _ROWS_PER_RUN].astype(self._dtype)})[0]
            for s in range(0, len(windows), _ROWS_PER_RUN)
        ]
        scores = rows_from_windows(np.concatenate(parts).astype(np.float64), window)
        return self._finite(causal_mean(scores, int(table["smoothing"])))

    def predict(self, X: Any) -> NDArray[np.bool_]:
        """True where the score is above the exported threshold."""
        return self.score(X) > self.threshold

    @staticmethod
    def _finite(scores: NDArray[np.float64]) -> NDArray[np.float64]:
        if not np.isfinite(scores).all():
            first = int(np.flatnonzero(~np.isfinite(scores))[0])
            msg = f"the exported model produced a non-finite score for input {first}"
            raise NumericalError(msg)
        return scores
