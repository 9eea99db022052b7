"""Network benchmarks under their protocols, one call each: NSL-KDD flows and the packet captures.

:func:`run_network_bench` is what ``vigil bench --dataset nsl-kdd|modbus|mqttset`` calls. It returns (and
optionally writes) one JSON-ready dict with at least ``dataset``, ``detector``, ``protocol``, ``accuracy``,
``precision``, ``recall``, ``f1``, ``far``, ``roc_auc``, ``per_category_recall``, ``fit_seconds`` and
``score_seconds``.

Detectors for NSL-KDD: ``mlp`` (supervised :class:`~vigil.network.classifier.FlowClassifier`), ``mlp+ae``
(:class:`~vigil.network.hybrid.HybridFlowModel`: the MLP plus an autoencoder novelty detector), or any
registered anomaly detector (``flow-ae``, ``pca``, ``iforest``, ...) trained on the normal training rows
through a :class:`~vigil.pipeline.Pipeline`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from vigil.errors import InvalidInputError
from vigil.evaluation.runner import environment
from vigil.network.encoding import FlowEncoder
from vigil.network.flows import FlowTable
from vigil.network.nsl_kdd import (
    NSL_KDD_CATEGORY_ORDER,
    NSL_KDD_LOG_COLUMNS,
    NSL_KDD_PROTOCOL,
    attack_recall,
    load_nsl_kdd,
    sample_rows,
)
from vigil.network.report import binary_report, json_ready

__all__ = ["NETWORK_BENCHMARKS", "SUPERVISED_DETECTORS", "nsl_kdd_bench", "run_network_bench"]

NETWORK_BENCHMARKS = ("nsl-kdd", "modbus", "mqttset", "ton-iot")
SUPERVISED_DETECTORS = ("mlp", "mlp+ae")
_NOVELTY_SWEEP = (0.01, 0.02, 0.05, 0.1)


def _log(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split ``--param`` values into classifier, autoencoder and hybrid parameters (``ae.`` prefix: autoencoder)."""
    clf, ae, hybrid = {}, {}, {}
    for key, value in params.items():
        if key.startswith("ae."):
            ae[key[3:]] = tuple(value) if isinstance(value, list) else value
        elif key in ("novelty_far", "calibration"):
            hybrid[key] = value
        else:
            clf[key] = tuple(value) if isinstance(value, list) else value
    return clf, ae, hybrid


def _encoder(fit_rows: FlowTable) -> FlowEncoder:
    schema = fit_rows.schema
    return FlowEncoder(categorical=schema.categorical, numeric=schema.numeric, log_columns=NSL_KDD_LOG_COLUMNS).fit(
        fit_rows.features
    )


def _category_recall(table: FlowTable, decisions: np.ndarray) -> dict[str, float | None]:
    assert table.category is not None
    out: dict[str, float | None] = {}
    for category in NSL_KDD_CATEGORY_ORDER:
        mask = table.category == category
        out[category] = float(decisions[mask].mean()) if mask.any() else None
    return out


def _evaluate_split(
    name: str, table: FlowTable, decisions: np.ndarray, scores: np.ndarray, seen: frozenset[str]
) -> dict[str, Any]:
    assert table.y is not None and table.label is not None
    report = binary_report(table.y, decisions, scores)
    per_attack = attack_recall(table.label, decisions, seen=seen)
    unseen = [v for v in per_attack.values() if not v["seen_in_training"]]
    n_unseen = sum(int(v["n"]) for v in unseen)
    return {
        **report,
        "per_category_recall": _category_recall(table, decisions),
        "per_attack_recall": per_attack,
        "unseen_attack_types": len(unseen),
        "unseen_attack_rows": n_unseen,
        "unseen_attack_recall": sum(int(v["detected"]) for v in unseen) / n_unseen if n_unseen else None,
        "rows": len(table),
        "file": name,
    }


def nsl_kdd_bench(
    detector: str,
    *,
    data_dir: str | PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    n_threads: int | None = None,
    train_rows: int | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Run NSL-KDD under :data:`~vigil.network.nsl_kdd.NSL_KDD_PROTOCOL` with one detector.

    Parameters
    ----------
    detector : str
        ``mlp``, ``mlp+ae`` or a registered anomaly detector name.
    params : mapping, optional
        Model parameters. For ``mlp``/``mlp+ae``: :class:`FlowClassifier` parameters, ``ae.<name>`` for the
        autoencoder, ``novelty_far`` and ``calibration`` for the hybrid. Otherwise the detector's parameters.
        The hybrid's ``novelty_far`` defaults to ``"auto"``: chosen on the training rows by
        :meth:`~vigil.network.hybrid.HybridFlowModel.select_novelty_far`.
    train_rows : int, optional
        Fit on a stratified sample of this many KDDTrain+ rows (for quick checks; the protocol uses all).
    """
    params = dict(params or {})
    split = load_nsl_kdd(data_dir)
    train = split.train
    if train_rows is not None:
        train = sample_rows(train, train_rows, np.random.default_rng(seed))
    assert train.y is not None and train.label is not None and train.category is not None
    seen = frozenset(str(v) for v in train.label.tolist())
    result: dict[str, Any] = {"dataset": "nsl-kdd", "detector": detector, "protocol": NSL_KDD_PROTOCOL}
    start = time.perf_counter()
    if detector in SUPERVISED_DETECTORS:
        from vigil.network.autoencoder import FlowAutoencoderDetector
        from vigil.network.classifier import FlowClassifier
        from vigil.network.hybrid import HybridFlowModel

        clf_params, ae_params, hybrid_params = _split_params(params)
        encoder = _encoder(train)
        X_train = encoder.transform(train.features)
        clf = FlowClassifier(**{"random_state": seed, "n_threads": n_threads, **clf_params})
        _log(quiet, f"nsl-kdd · {detector}: training on {len(train)} rows ({X_train.shape[1]} inputs) …")
        if detector == "mlp":
            model: Any = clf.fit(X_train, train.y, train.category)
        else:
            ae = FlowAutoencoderDetector(**{"random_state": seed, "n_threads": n_threads, **ae_params})
            auto = hybrid_params.get("novelty_far", "auto") == "auto"
            if auto:  # chosen below on the training rows, by leaving each attack category out
                hybrid_params.pop("novelty_far", None)
            model = HybridFlowModel(classifier=clf, novelty=ae, random_state=seed, **hybrid_params)
            model.fit(X_train, train.y, train.category)
            if auto:
                selection = model.select_novelty_far(
                    X_train, train.y, train.category, candidates=_NOVELTY_SWEEP, log=lambda t: _log(quiet, t)
                )
                result["novelty_far_selection"] = selection
            result["novelty_far"] = model.novelty_far
        fit_seconds = time.perf_counter() - start
        result["n_epochs"] = getattr(model, "classifier_", model).n_epochs_
    else:
        from vigil.calibration.thresholds import TargetFARThreshold
        from vigil.pipeline import Pipeline
        from vigil.registry import detector_class

        cls = detector_class(detector)
        if "random_state" in cls._param_names():
            params.setdefault("random_state", seed)
        normal = sample_rows(train, len(train), np.random.default_rng(seed))  # a copy in row order
        keep = ~normal.y if normal.y is not None else None
        normal = FlowTable(normal.features[keep].reset_index(drop=True), normal.schema, source=normal.source)
        encoder = _encoder(normal)
        X_train = encoder.transform(normal.features)
        _log(quiet, f"nsl-kdd · {detector}: fitting on {len(normal)} normal rows ({X_train.shape[1]} inputs) …")
        model = Pipeline(cls(**params), threshold=TargetFARThreshold(far=0.01)).fit(X_train)
        fit_seconds = time.perf_counter() - start
    scored: dict[str, Any] = {}
    score_seconds = 0.0
    for key, table in (("test", split.test), ("test21", split.test21)):
        encoded = encoder.encode(table.features)
        begin = time.perf_counter()
        if detector in SUPERVISED_DETECTORS:
            scores = model.score_samples(encoded.X)  # P(attack) for mlp
            decisions = model.predict(encoded.X)
        else:
            scores = model.score_samples(encoded.X)
            decisions = scores > model.threshold_
        score_seconds += time.perf_counter() - begin
        scored[key] = _evaluate_split(table.source, table, decisions, scores, seen)
        scored[key]["unknown_categories"] = encoded.unknown
        scored[key]["unknown_cells"] = encoded.n_unknown
        if detector in SUPERVISED_DETECTORS:
            category = model.predict_category(encoded.X)
            assert table.category is not None
            scored[key]["five_class_accuracy"] = float((category == table.category).mean())
        if detector == "mlp+ae":
            assert table.y is not None  # evaluated splits are labelled (_evaluate_split checks it too)
            proba, novelty = model.scores(encoded.X)
            sweep = {}
            for far in _NOVELTY_SWEEP:
                flagged = (proba > model.classifier_.threshold_) | (novelty > model.threshold_for(far))
                sweep[str(far)] = binary_report(table.y, flagged)["accuracy"]
            scored[key]["accuracy_by_novelty_far"] = sweep
    test, test21 = scored["test"], scored["test21"]
    headline = ("accuracy", "precision", "recall", "f1", "far", "mar", "roc_auc", "pr_auc", "per_category_recall")
    result.update({k: test.get(k) for k in headline})
    result.update(
        {
            "accuracy_test21": test21["accuracy"],
            "f1_test21": test21["f1"],
            "far_test21": test21["far"],
            "roc_auc_test21": test21.get("roc_auc"),
            "unseen_attack_recall": test["unseen_attack_recall"],
            "fit_seconds": fit_seconds,
            "score_seconds": score_seconds,
            "n_train": len(train) if detector in SUPERVISED_DETECTORS else int((~train.y).sum()),
            "test": test,
            "test21": test21,
            "params": params,
            "seed": seed,
        }
    )
    if "five_class_accuracy" in test:
        result["five_class_accuracy"] = test["five_class_accuracy"]
        result["five_class_accuracy_test21"] = test21["five_class_accuracy"]
    return result


_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {"nsl-kdd": nsl_kdd_bench}


def _packet_runner(name: str) -> Callable[..., dict[str, Any]]:
    from vigil.network import capture_bench

    return {"modbus": capture_bench.modbus_bench, "mqttset": capture_bench.mqttset_bench}[name]


def run_network_bench(
    dataset: str,
    detector: str,
    *,
    data_dir: str | PathLike[str] | None = None,
    json_path: str | PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    quiet: bool = False,
    command: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run a network benchmark and return its JSON-ready result; write it to ``json_path`` when given.

    Parameters
    ----------
    dataset : {"nsl-kdd", "modbus", "mqttset", "ton-iot"}
    detector : str
        See the module docstring; for the captures a registered detector (``kitnet``, ...).
    data_dir : str or os.PathLike, optional
        The folder holding the data sets (default ``$VIGIL_DATA_DIR``).
    json_path : str or os.PathLike, optional
        Where to write the result.
    params : mapping, optional
        Detector parameters (``--param KEY=VALUE``).
    seed : int
    quiet : bool
        No progress lines on stderr.
    command : str, optional
        The command line, recorded in the result.
    **options
        Passed to the data set's runner (for example ``train_rows`` for NSL-KDD).

    Examples
    --------
    >>> run_network_bench("kdd99", "mlp")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: unknown network benchmark 'kdd99'; available: nsl-kdd, modbus, mqttset, ton-iot
    """
    if dataset not in NETWORK_BENCHMARKS:
        msg = f"unknown network benchmark {dataset!r}; available: {', '.join(NETWORK_BENCHMARKS)}"
        raise InvalidInputError(msg)
    if dataset == "ton-iot":
        from vigil.network.ton_iot_bench import ton_iot_bench

        runner: Callable[..., dict[str, Any]] = ton_iot_bench
    else:
        runner = _RUNNERS.get(dataset) or _packet_runner(dataset)
    result = runner(detector, data_dir=data_dir, params=params, seed=seed, quiet=quiet, **options)
    result["command"] = command
    result["environment"] = environment()
    document = json_ready(result)
    if json_path is not None:
        out = Path(json_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        _log(quiet, f"wrote {out}")
    return document
