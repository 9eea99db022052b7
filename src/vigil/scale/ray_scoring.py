"""Score a partitioned Parquet archive on a Ray cluster: Ray Data streams it through an actor pool.

Each actor holds one fitted :class:`~vigil.pipeline.Pipeline` (the model directory's files travel with the
job, so the nodes need no shared storage) and scores Arrow batches as Ray Data streams them from the
Parquet files: reading, scoring and writing overlap, and memory stays bounded by the batches in flight,
not by the archive's size. With GPUs in the cluster each actor takes one (deep detectors use it).

The output is a Parquet dataset (a directory of part files): the archive's non-feature columns (time,
device, partition keys), the source file, and ``score``, ``threshold``, ``anomaly`` and ``top_features``
(``name=share;...``, for anomalous rows). By default only anomalous rows are written (``keep="anomalies"``);
``keep="all"`` writes one row per reading.

Only pipelines that score each row on its own are distributed this way (``context_rows == 0``: PCA,
Isolation Forest, Mahalanobis, dense autoencoders). A windowed model needs each series in time order with
its history, which arbitrary batches do not give; it is refused with a message rather than scored wrongly.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.errors import InvalidInputError, VigilError
from vigil.pipeline import Pipeline, top_features
from vigil.scale._optional import require
from vigil.scale.archive import describe_archive
from vigil.scale.ray_cluster import ray_session

__all__ = ["ArchiveScorer", "read_model_files", "score_archive_with_ray"]

#: Name of the column that says which archive file a row came from.
SOURCE_COLUMN = "source_file"


def read_model_files(model_dir: str | Path) -> dict[str, bytes]:
    """Every file of a saved model directory, by relative path, to ship it to workers without shared storage."""
    root = Path(model_dir)
    if not root.is_dir():
        msg = f"model directory {root} does not exist"
        raise InvalidInputError(msg)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load_pipeline(model_files: dict[str, bytes]) -> Pipeline:
    with tempfile.TemporaryDirectory(prefix="vigil-model-") as tmp:
        root = Path(tmp)
        for name, content in model_files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return Pipeline.load(root)


class ArchiveScorer:
    """The callable each Ray actor runs: Arrow batch of readings in, Arrow batch of scores out.

    Parameters
    ----------
    model_files : dict of str to bytes
        From :func:`read_model_files`.
    passthrough : sequence of str
        Columns copied to the output.
    keep : {"anomalies", "all"}
    top_k : int
        Features named per anomalous row.

    Examples
    --------
    >>> import numpy as np, pyarrow as pa, tempfile
    >>> from vigil.detectors.pca import PCADetector
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> model = Pipeline(PCADetector(n_components=1)).fit(X).save(tempfile.mkdtemp())
    >>> scorer = ArchiveScorer(read_model_files(model), passthrough=["device"], keep="all")
    >>> out = scorer(pa.table({"device": ["a", "b"], "x0": [0.1, 9.0], "x1": [0.0, -9.0]}))
    >>> out.column("anomaly").to_pylist(), out.column("top_features").to_pylist()[1]
    ([False, True], 'x1=0.59...;x0=0.40...')
    """

    def __init__(
        self, model_files: dict[str, bytes], *, passthrough: list[str] | tuple[str, ...], keep: str, top_k: int = 3
    ) -> None:
        self.pipeline = _load_pipeline(model_files)
        self.passthrough = list(passthrough)
        self.keep = keep
        self.top_k = top_k
        self._pa = require("pyarrow", purpose="Parquet archives")

    def __call__(self, batch: Any) -> Any:
        pa = self._pa
        pipe = self.pipeline
        X = np.column_stack(
            [batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64) for name in pipe.feature_names_in_]
        )
        finite = np.isfinite(X)
        if not finite.all():
            raise InvalidInputError(self._locate(batch, X, finite))
        scores = pipe.score_samples(X)
        flagged = scores > pipe.threshold_
        described = [""] * len(scores)
        if flagged.any():
            ranked = top_features(pipe.contributions(X[flagged]), pipe.feature_names_in_, top_k=self.top_k)
            for i, row in zip(np.flatnonzero(flagged), ranked, strict=True):
                described[i] = ";".join(f"{name}={share:.3f}" for name, share in row)
        columns = {name: batch.column(name) for name in self.passthrough if name in batch.column_names}
        columns["score"] = pa.array(scores, type=pa.float64())
        columns["threshold"] = pa.array(np.full(len(scores), pipe.threshold_), type=pa.float64())
        columns["anomaly"] = pa.array(flagged, type=pa.bool_())
        columns["top_features"] = pa.array(described, type=pa.string())
        table = pa.table(columns)
        if self.keep == "anomalies":
            table = table.filter(pa.array(flagged))
        return table

    def _locate(self, batch: Any, X: np.ndarray, finite: np.ndarray) -> str:
        """Name the file, the row (by its other columns) and the sensor of the first non-finite reading."""
        row, column = (int(v) for v in np.argwhere(~finite)[0])
        where = batch.column(SOURCE_COLUMN)[row].as_py() if SOURCE_COLUMN in batch.column_names else "the archive"
        described = ", ".join(
            f"{name}={batch.column(name)[row].as_py()}"
            for name in self.passthrough
            if name != SOURCE_COLUMN and name in batch.column_names
        )
        value = "NaN" if np.isnan(X[row, column]) else "infinite"
        sensor = self.pipeline.feature_names_in_[column]
        return f"{where}: {sensor!r} is {value} in the row with {described or 'no other columns'}"


def score_archive_with_ray(
    model_dir: str | Path,
    archive: str | Path,
    output: str | Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    keep: str = "anomalies",
    top_k: int = 3,
    batch_size: int = 65_536,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every row of a Parquet archive with a saved pipeline on Ray; write the scores as Parquet.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by ``vigil fit`` (:meth:`Pipeline.save`).
    archive : str or Path
        A (Hive-)partitioned directory of Parquet files with the model's sensor columns.
    output : str or Path
        The Parquet dataset (directory) to write; it must not exist yet.
    address : str, optional
        A Ray cluster (``ray://HOST:10001`` or ``auto``); default a local instance. A session the
        caller already opened with ``ray.init`` is used as it is.
    workers : int, optional
        Actors, each with one fitted pipeline (and one GPU when the cluster has them). Default: the
        cluster's CPUs (or GPUs) minus one, at least one.
    keep : {"anomalies", "all"}
        Write only anomalous rows, or every row.
    top_k : int
        Contributing features named per anomalous row.
    batch_size : int
        Rows per batch handed to an actor.
    progress : bool
        Show Ray Data's progress bars (on stderr).

    Returns
    -------
    dict
        ``rows``, ``anomalies``, ``files``, ``workers``, ``gpus_per_worker``, ``seconds``,
        ``rows_per_second``, ``model_version``, ``threshold``, ``output``.

    Raises
    ------
    InvalidInputError
        A missing model or archive, an existing output, a windowed model, bad options, or bad readings
        in the archive (the message names the file).
    """
    if keep not in ("anomalies", "all"):
        msg = f"keep must be 'anomalies' or 'all', got {keep!r}"
        raise InvalidInputError(msg)
    for name, value in (("workers", workers), ("top_k", top_k), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            msg = f"{name} must be a positive integer, got {value!r}"
            raise InvalidInputError(msg)
    pipe = Pipeline.load(model_dir)
    if pipe.context_rows:
        msg = (
            f"model {pipe.version_} scores each row from the {pipe.context_rows} rows before it (a window or "
            "smoothing): Ray batches do not keep series in order, so score such archives per series with "
            "`vigil score` instead"
        )
        raise InvalidInputError(msg)
    info = describe_archive(archive, features=pipe.feature_names_in_)
    destination = Path(output)
    if destination.exists():
        msg = f"the output {destination} exists already: choose a new path"
        raise InvalidInputError(msg)
    model_files = read_model_files(model_dir)
    passthrough = [*info.passthrough, SOURCE_COLUMN]
    started = time.perf_counter()
    with ray_session(address, actors=workers or 1) as ray:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        n_workers = workers or max(1, (gpus or int(resources.get("CPU", 2))) - 1)
        gpus_per_worker = 1 if gpus >= n_workers and gpus > 0 else 0
        context = ray.data.DataContext.get_current()
        # Blocks are what actors share out: cut the archive into at least four per actor, never above Ray's
        # own ceiling (which bounds memory on large archives).
        context.target_max_block_size = int(
            min(context.target_max_block_size, max(1 << 16, info.bytes // (4 * n_workers)))
        )
        context.enable_progress_bars = progress
        context.raise_original_map_exception = True  # a VigilError from an actor reaches the caller as such
        dataset = (
            ray.data.read_parquet(str(info.root), include_paths=True)
            .select_columns([*pipe.feature_names_in_, *info.passthrough, "path"])  # pushed down to the reader
            .rename_columns({"path": SOURCE_COLUMN})
        )
        scored = dataset.map_batches(
            ArchiveScorer,
            fn_constructor_args=(model_files,),
            fn_constructor_kwargs={"passthrough": passthrough, "keep": keep, "top_k": top_k},
            batch_format="pyarrow",
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=n_workers),
            num_cpus=1,
            num_gpus=gpus_per_worker,
        )
        try:
            scored.write_parquet(str(destination))
        except Exception as exc:
            cause = _vigil_cause(exc)
            if cause is not None:
                raise InvalidInputError(str(cause)) from exc
            raise
    seconds = time.perf_counter() - started
    anomalies = _count_anomalies(destination, keep)
    return {
        "rows": info.rows,
        "anomalies": anomalies,
        "files": len(info.files),
        "workers": n_workers,
        "gpus_per_worker": gpus_per_worker,
        "seconds": seconds,
        "rows_per_second": info.rows / seconds if seconds > 0 else float("inf"),
        "model_version": pipe.version_,
        "threshold": float(pipe.threshold_),
        "output": str(destination),
    }


def _vigil_cause(exc: BaseException) -> VigilError | None:
    """The VigilError a Ray task raised, found through Ray's wrappers."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, VigilError):
            return current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else (current.__cause__ or current.__context__)
    return None


def _count_anomalies(destination: Path, keep: str) -> int:
    ds = require("pyarrow.dataset", purpose="Parquet archives")
    if not destination.exists():
        return 0
    dataset = ds.dataset(str(destination), format="parquet")
    if keep == "anomalies":
        return int(sum(f.metadata.num_rows for f in dataset.get_fragments()))
    return int(sum(dataset.to_table(columns=["anomaly"]).column("anomaly").to_numpy(zero_copy_only=False)))
