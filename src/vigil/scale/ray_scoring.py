"""Score a partitioned Parquet archive on a Ray cluster: a pool of actors, each reading, scoring and writing.

Each actor holds one fitted :class:`~vigil.pipeline.Pipeline` (the model directory's files travel with the
job, so the nodes need no copy of the model) and takes pieces of the archive (a few row groups of one file)
from a shared queue as it finishes the last: it reads them in batches with pyarrow, scores them and appends
the result to its own Parquet part file. Nothing but row counts passes through Ray's object store, memory is
bounded by one batch per actor, and the only fixed cost is starting the actors (each imports Vigil and loads
the model); an earlier version streamed through Ray Data, whose planning, listing, read and write tasks
added several seconds to every run (docs/scaling.md). The archive and the output directory must be
reachable from every node under the same path (a shared file system), as they were for Ray Data's readers
and writers. With GPUs in the cluster each actor takes one (deep detectors use it).

The output is a Parquet dataset (a directory of part files): the archive's non-feature columns (time,
device, partition keys as strings), the source file, and ``score``, ``threshold``, ``anomaly`` and
``top_features`` (``name=share;...``, for anomalous rows). By default only anomalous rows are written
(``keep="anomalies"``); ``keep="all"`` writes one row per reading.

Only pipelines that score each row on its own are distributed this way (``context_rows == 0``: PCA,
Isolation Forest, Mahalanobis, dense autoencoders). A windowed model needs each series in time order with
its history, which pieces of files do not give; it is refused with a message rather than scored wrongly.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from vigil.errors import InvalidInputError, VigilError
from vigil.pipeline import Pipeline, top_features
from vigil.progress import progress as progress_bar
from vigil.scale._optional import require
from vigil.scale.archive import ArchiveInfo, describe_archive
from vigil.scale.ray_cluster import ray_session

__all__ = ["ArchivePiece", "ArchiveScorer", "plan_pieces", "read_model_files", "score_archive_with_ray"]

#: Name of the column that says which archive file a row came from.
SOURCE_COLUMN = "source_file"

#: Pieces per actor the archive is cut into, so that a slow actor does not hold up the end of the run.
PIECES_PER_ACTOR = 8


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


@dataclass(frozen=True)
class ArchivePiece:
    """Some consecutive row groups of one archive file: the unit an actor takes from the queue.

    Attributes
    ----------
    path : str
        The Parquet file.
    row_groups : tuple of int
    rows : int
    partition : tuple of (str, str)
        The Hive partition keys and values of the file's directory (``plant=north`` → ``("plant", "north")``).
    """

    path: str
    row_groups: tuple[int, ...]
    rows: int
    partition: tuple[tuple[str, str], ...]


def plan_pieces(info: ArchiveInfo, *, actors: int) -> list[ArchivePiece]:
    """Cut the archive into pieces of whole row groups, about ``PIECES_PER_ACTOR`` per actor, largest first.

    Largest first, so that the last pieces handed out are small and the actors finish together.
    """
    target = max(1, math.ceil(info.rows / (PIECES_PER_ACTOR * actors)))
    pieces = []
    for path, group_rows in zip(info.files, info.row_group_rows, strict=True):
        partition = _partition_of(path, info.root, info.partition_keys)
        groups: list[int] = []
        rows = 0
        for index, n in enumerate(group_rows):
            groups.append(index)
            rows += n
            if rows >= target:
                pieces.append(ArchivePiece(path, tuple(groups), rows, partition))
                groups, rows = [], 0
        if groups:
            pieces.append(ArchivePiece(path, tuple(groups), rows, partition))
    return sorted(pieces, key=lambda piece: -piece.rows)


def _partition_of(path: str, root: Path, keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    found = {}
    for part in Path(path).relative_to(root).parent.parts if root.is_dir() else ():
        key, sep, value = part.partition("=")
        if sep and key in keys:
            found[key] = unquote(value)
    return tuple((key, found[key]) for key in keys if key in found)


class ArchiveScorer:
    """What each Ray actor runs: Arrow table of readings in, Arrow table of scores out.

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
        self.ready_at = time.time()

    def score_piece(self, piece: ArchivePiece, output: str, *, batch_size: int) -> tuple[int, int, float]:
        """Score one piece in batches and write what is kept to ``output`` (no file when nothing is).

        Returns the rows read, the rows above the threshold and when this actor had loaded its model
        (seconds since the epoch), from which the caller measures the start-up.
        """
        pa = self._pa
        pq = require("pyarrow.parquet", purpose="Parquet archives")
        partition = dict(piece.partition)
        wanted = [*self.pipeline.feature_names_in_, *(n for n in self.passthrough if n not in partition)]
        reader = pq.ParquetFile(piece.path)
        columns = [name for name in wanted if name in reader.schema_arrow.names]
        writer = None
        rows = flagged = 0
        try:
            for batch in reader.iter_batches(batch_size=batch_size, row_groups=list(piece.row_groups), columns=columns):
                table = pa.Table.from_batches([batch])
                n = table.num_rows
                for key, value in [*partition.items(), (SOURCE_COLUMN, piece.path)]:
                    table = table.append_column(key, pa.repeat(pa.scalar(value, pa.string()), n))
                scored = self(table)
                rows += n
                flagged += int(np.count_nonzero(scored.column("anomaly").to_numpy(zero_copy_only=False)))
                if scored.num_rows:
                    writer = writer or pq.ParquetWriter(output, scored.schema)
                    writer.write_table(scored)
        finally:
            if writer is not None:
                writer.close()
        return rows, flagged, self.ready_at

    def __call__(self, batch: Any) -> Any:
        pa = self._pa
        pipe = self.pipeline
        X = np.column_stack(
            [batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64) for name in pipe.feature_names_in_]
        )
        finite = np.isfinite(X)
        if not finite.all():
            raise InvalidInputError(self._locate(batch, X, finite))
        scored = pipe.score_with_contributions(X)
        scores = scored.scores
        flagged = scores > pipe.threshold_
        described = [""] * len(scores)
        if flagged.any():
            ranked = top_features(scored.contributions(flagged), pipe.feature_names_in_, top_k=self.top_k)
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
        Rows an actor reads and scores at a time (its memory bound).
    progress : bool
        Report the rows scored (on stderr).

    Returns
    -------
    dict
        ``rows``, ``anomalies``, ``files``, ``workers``, ``gpus_per_worker``, ``seconds``,
        ``startup_seconds`` (until the last actor had loaded the model), ``rows_per_second``,
        ``model_version``, ``threshold``, ``output``.

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
    wall_start = time.time()
    with ray_session(address, actors=workers or 1) as ray:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        n_workers = workers or max(1, (gpus or int(resources.get("CPU", 2))) - 1)
        gpus_per_worker = 1 if gpus >= n_workers and gpus > 0 else 0
        actor_class = ray.remote(num_cpus=1, num_gpus=gpus_per_worker)(ArchiveScorer)
        actors = [
            actor_class.remote(model_files, passthrough=passthrough, keep=keep, top_k=top_k) for _ in range(n_workers)
        ]
        pieces = plan_pieces(info, actors=n_workers)
        destination.mkdir(parents=True)
        pool = require("ray.util", purpose="Ray scale-out").ActorPool(actors)
        work = pool.map_unordered(
            lambda actor, item: actor.score_piece.remote(
                item[1], str(destination / f"part-{item[0]:05d}.parquet"), batch_size=batch_size
            ),
            list(enumerate(pieces)),
        )
        anomalies = 0
        ready = wall_start
        bar = progress_bar(desc="scoring the archive", unit="row", total=info.rows, enabled=progress)
        try:
            for rows, flagged, ready_at in work:
                anomalies += flagged
                ready = max(ready, ready_at)
                bar.update(rows)
        except Exception as exc:
            # The directory is this run's own (it did not exist): remove the part files of a failed run, so
            # that running again with the same output works.
            shutil.rmtree(destination, ignore_errors=True)
            cause = _vigil_cause(exc)
            if cause is not None:
                raise InvalidInputError(str(cause)) from exc
            raise
        finally:
            bar.close()
            for actor in actors:
                ray.kill(actor)
    seconds = time.perf_counter() - started
    return {
        "rows": info.rows,
        "anomalies": anomalies,
        "files": len(info.files),
        "workers": n_workers,
        "gpus_per_worker": gpus_per_worker,
        "seconds": seconds,
        "startup_seconds": ready - wall_start,
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
