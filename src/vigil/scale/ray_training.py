"""Data-parallel training of a deep detector with Ray Train, for training data that do not fit one machine.

:meth:`Pipeline.fit <vigil.pipeline.Pipeline.fit>` holds the training rows in memory. :func:`fit_with_ray`
trains the same pipeline from a partitioned Parquet archive that is streamed, never gathered:

1. the archive's files, in path order (Hive partitions by day sort in time order), are split into
   training files and the last ``holdout`` share of files, which calibrate the threshold;
2. the scaler's mean and standard deviation are Ray Data aggregations over the training files
   (``scaler="standard"`` or ``"none"``; the robust scaler needs exact quantiles and is refused);
3. ``workers`` Ray Train workers each stream an equal shard of the training rows and train the detector's
   own network (its ``_build_module``, ``_optimizers`` and ``_train_step``) under PyTorch
   DistributedDataParallel: gradients are averaged over workers at every step, so the workers hold one
   model. Windows are cut inside each streamed batch (a window never spans two batches);
4. on the driver, the trained weights become the fitted detector; its per-feature error scale and the
   pipeline's threshold are learned from a sample of at most ``sample_rows`` held-out rows, and the
   training-score quantiles from as many training rows.

Differences from a local fit, by design: the detector trains for exactly ``epochs`` passes (early stopping
would need a distributed validation loss), and ``relative_drift`` is not applied.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from vigil.alarms import AlarmStage
from vigil.calibration.thresholds import TargetFARThreshold
from vigil.detectors.torch_base import TorchDetector, require_torch
from vigil.errors import InvalidInputError
from vigil.features.scaling import make_scaler
from vigil.pipeline import Pipeline
from vigil.scale._optional import require
from vigil.scale.archive import describe_archive
from vigil.scale.ray_cluster import ray_session

__all__ = ["fit_with_ray"]

_STATE_FILE = "module.pt"


def _train_loop(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: stream its shard, step the shared (DDP) network, report per epoch."""
    import ray.train
    import ray.train.torch
    import torch

    detector: TorchDetector = config["detector"].clone()
    torch.manual_seed(config["seed"])  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    module = ray.train.torch.prepare_model(detector._build_module(len(config["features"])))
    optimizers = detector._optimizers(module)
    device = ray.train.torch.get_device()
    center = torch.tensor(config["center"], dtype=torch.float32, device=device)
    scale = torch.tensor(config["scale"], dtype=torch.float32, device=device)
    rows = detector._sample_rows()
    shard = ray.train.get_dataset_shard("train")
    rank = ray.train.get_context().get_world_rank()
    history: list[float] = []
    for epoch in range(config["epochs"]):
        module.train()
        total, count = 0.0, 0
        for batch in shard.iter_torch_batches(
            batch_size=config["batch_rows"], dtypes=torch.float32, device=device, drop_last=True
        ):
            values = (torch.stack([batch[name] for name in config["features"]], dim=1) - center) / scale
            windows = values.unfold(0, rows, 1).permute(0, 2, 1).contiguous()
            for start in range(0, len(windows), detector.batch_size):
                part = windows[start : start + detector.batch_size]
                loss = detector._train_step(module, part, optimizers, epoch)
                total += float(loss.detach()) * len(part)
                count += len(part)
        history.append(total / max(count, 1))
        checkpoint = None
        if epoch == config["epochs"] - 1 and rank == 0:
            directory = tempfile.mkdtemp(prefix="vigil-train-")
            network = getattr(module, "module", module)  # DistributedDataParallel wraps the network
            torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, Path(directory) / _STATE_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        # Each worker's mean loss over its shard; the history travels in every report, since only the last
        # report is kept with the result.
        ray.train.report({"epoch": epoch + 1, "windows": count, "losses": list(history)}, checkpoint=checkpoint)


class _Pretrained:
    """Fit a detector's remaining state (error scale, thresholds) around weights trained elsewhere."""

    @staticmethod
    def detector(template: TorchDetector, state: dict[str, Any], sample: np.ndarray, losses: list[float]) -> Any:
        torch = require_torch()
        base = type(template)

        class Pretrained(base):  # type: ignore[misc, valid-type]
            def _fit(self, values: np.ndarray, y: Any) -> None:
                self.relative_features_ = np.zeros(values.shape[1], dtype=bool)
                module = self._build_module(values.shape[1])
                module.load_state_dict(state)
                self.module_ = module.to(self._torch_device()).eval()
                self.epochs_trained_ = len(losses)
                self.validation_loss_ = np.asarray(losses, dtype=np.float64)
                self._after_fit(self.module_, torch.from_numpy(self._windows(values)))

        fitted = Pretrained(**template.get_params()).fit(sample)
        with tempfile.TemporaryDirectory(prefix="vigil-detector-") as tmp:
            fitted.save(tmp)  # saved under the original detector's name, so it loads as that class
            return base.load(tmp)


def fit_with_ray(
    make_pipeline: Callable[[], Pipeline],
    archive: str | Path,
    features: Sequence[str],
    *,
    workers: int = 2,
    address: str | None = None,
    use_gpu: bool | None = None,
    sample_rows: int = 100_000,
    batch_rows: int = 4096,
    progress: bool = True,
) -> Pipeline:
    """Fit ``make_pipeline()`` on a Parquet archive with data-parallel training on Ray; return it fitted.

    Parameters
    ----------
    make_pipeline : callable
        Returns an unfitted pipeline whose detector is a PyTorch detector; its ``holdout`` is the share of
        files held out for calibration, its detector's ``epochs`` the number of passes.
    archive : str or Path
        A (Hive-)partitioned directory of Parquet files, normal operation only.
    features : sequence of str
        The sensor columns to train on, in order.
    workers : int
        Ray Train workers (each one GPU when ``use_gpu``; default: GPUs when the cluster has them).
    address : str, optional
        A Ray cluster; default a local instance (or the session the caller opened).
    sample_rows : int
        Most rows gathered on the driver for the error scale, the threshold and the score quantiles.
    batch_rows : int
        Rows per streamed batch; windows are cut inside a batch.
    progress : bool
        Ray Train's progress output.

    Raises
    ------
    InvalidInputError
        A detector that is not a PyTorch one, the robust scaler, too few files to hold some out, or bad
        arguments.
    """
    pipe = make_pipeline()
    template = pipe.detector
    if not isinstance(template, TorchDetector):
        msg = f"distributed training is for PyTorch detectors; {type(template).__name__} is fitted by `vigil fit`"
        raise InvalidInputError(msg)
    if pipe.scaler not in ("standard", "none"):
        msg = f"scaler {pipe.scaler!r} needs exact quantiles over the whole archive: use 'standard' or 'none'"
        raise InvalidInputError(msg)
    for name, value in (("workers", workers), ("sample_rows", sample_rows), ("batch_rows", batch_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            msg = f"{name} must be a positive integer, got {value!r}"
            raise InvalidInputError(msg)
    template._validate_params()
    features = list(features)
    info = describe_archive(archive, features=features)
    files = sorted(info.files)
    n_holdout = max(1, math.ceil(pipe.holdout * len(files)))
    if len(files) - n_holdout < 1:
        msg = f"the archive has {len(files)} file(s): at least two are needed to hold some out for calibration"
        raise InvalidInputError(msg)
    if batch_rows < template._sample_rows():
        msg = f"batch_rows={batch_rows} is shorter than one window of {template._sample_rows()} rows"
        raise InvalidInputError(msg)
    train_files, holdout_files = files[: len(files) - n_holdout], files[len(files) - n_holdout :]
    require("ray.train.torch", purpose="training on Ray")

    with ray_session(address, actors=workers) as ray:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        ray.data.DataContext.get_current().enable_progress_bars = progress
        train = ray.data.read_parquet(train_files).select_columns(features)
        holdout = ray.data.read_parquet(holdout_files).select_columns(features)
        if pipe.scaler == "standard":
            from ray.data.aggregate import Mean, Std

            moments = train.aggregate(*[Mean(f) for f in features], *[Std(f, ddof=0) for f in features])  # one pass
            center = np.array([float(moments[f"mean({f})"]) for f in features])
            spread = np.array([float(moments[f"std({f})"]) for f in features])
            scale = np.where(spread > 0, spread, 1.0)
        else:
            center, scale = np.zeros(len(features)), np.ones(len(features))
        gpu = bool(ray.cluster_resources().get("GPU", 0)) if use_gpu is None else use_gpu
        with tempfile.TemporaryDirectory(prefix="vigil-ray-train-") as storage:
            trainer = TorchTrainer(
                _train_loop,
                train_loop_config={
                    "detector": template,
                    "features": features,
                    "center": center.tolist(),
                    "scale": scale.tolist(),
                    "epochs": int(template.epochs),
                    "seed": int(template.random_state or 0),
                    "batch_rows": batch_rows,
                },
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu),
                datasets={"train": train},
                run_config=RunConfig(storage_path=storage, name="vigil-fit"),
            )
            result = trainer.fit()
            if result.error is not None:
                raise result.error
            torch = require_torch()
            checkpoint, metrics = result.checkpoint, result.metrics
            assert checkpoint is not None and metrics is not None  # rank 0 reports both after the last epoch
            with checkpoint.as_directory() as directory:
                state = torch.load(Path(directory) / _STATE_FILE, weights_only=True)
            losses = [float(v) for v in metrics["losses"]]
        held = holdout.limit(sample_rows).to_pandas()[features].to_numpy(dtype=np.float64)
        trained = train.limit(sample_rows).to_pandas()[features].to_numpy(dtype=np.float64)
    return _assemble(pipe, features, center, scale, state, held, trained, losses)


def _assemble(
    pipe: Pipeline,
    features: list[str],
    center: np.ndarray,
    scale: np.ndarray,
    state: dict[str, Any],
    held: np.ndarray,
    trained: np.ndarray,
    losses: list[float],
) -> Pipeline:
    """Give ``pipe`` what :meth:`Pipeline.fit` would have: scaler, detector, threshold, quantiles, version."""
    scaler = make_scaler(pipe.scaler).restore(center, scale)
    held_scaled = scaler.transform(held)
    pipe.n_features_in_ = len(features)
    pipe.feature_names_in_ = list(features)
    pipe.feature_names_out_ = list(features)
    pipe.encoder_ = None
    pipe._named_input = True
    pipe.scaler_ = scaler
    template = cast(TorchDetector, pipe.detector)  # fit_distributed refuses any other detector
    pipe.detector_ = _Pretrained.detector(template, state, held_scaled, losses)
    thresholder = pipe.threshold if pipe.threshold is not None else TargetFARThreshold(far=0.01)
    calibration = pipe._smooth(pipe.detector_.score_samples(held_scaled))
    pipe.thresholder_ = type(thresholder)(**thresholder.get_params()).fit(calibration)
    pipe.threshold_ = pipe.thresholder_.threshold_
    pipe.calibration_scores_ = calibration
    pipe.alarm_ = (pipe.alarm.clone() if pipe.alarm is not None else AlarmStage()).fit(calibration, pipe.threshold_)
    train_scores = pipe._smooth(pipe.detector_.score_samples(scaler.transform(trained)))
    pipe.train_score_quantiles_ = {str(q): float(np.quantile(train_scores, q)) for q in (0.5, 0.9, 0.99, 1.0)}
    pipe.version_ = pipe._fingerprint()
    return pipe
