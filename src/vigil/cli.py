"""The ``vigil`` command: a thin layer over the library.

Exit codes: 0 success, 1 unexpected failure, 2 bad input or arguments (the message says what and where).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil import __version__
from vigil.errors import InvalidInputError, VigilError
from vigil.progress import set_reporting

if TYPE_CHECKING:
    from vigil.base import BaseDetector

__all__ = ["dispatch", "main"]

_EXTENSION_COMMANDS = ("vigil.service.cli", "vigil.network.cli", "vigil.scale.cli", "vigil.plant.cli")
_TELEMETRY_BENCHMARKS = ("skab", "smd", "ton-iot")
_NETWORK_BENCHMARKS = ("nsl-kdd", "modbus", "mqttset")
_IMAGE_BENCHMARKS = ("magnetic-tile",)


# ---------------------------------------------------------------------------------------------- helpers
def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        msg = f"--param expects KEY=VALUE, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _split_columns(text: str | None) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


def _add_pipeline_options(
    parser: argparse.ArgumentParser, *, default_detector: str | None = None, default_alarms: str = "plain"
) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--detector",
        required=default_detector is None,
        default=default_detector,
        help="see `vigil detectors`; auto chooses detector, settings and alarm rule on the training rows"
        + (f" (default: {default_detector})" if default_detector else ""),
    )
    group.add_argument(
        "--param",
        action="append",
        type=_parse_param,
        default=[],
        metavar="KEY=VALUE",
        help="detector parameter (JSON value), repeatable, e.g. --param n_components=0.95",
    )
    group.add_argument("--scaler", default="standard", choices=["standard", "robust", "none"])
    group.add_argument(
        "--threshold",
        default="target-far",
        choices=["target-far", "quantile", "pot"],
        help="how the decision threshold is learned from training scores (default: target-far)",
    )
    group.add_argument("--far", type=float, default=0.01, help="target false-alarm rate for target-far (0.01)")
    group.add_argument("--quantile", type=float, default=0.99, help="training-score quantile for quantile (0.99)")
    group.add_argument("--factor", type=float, default=1.0, help="multiplier of the quantile (1.0)")
    group.add_argument("--risk", type=float, default=1e-3, help="tail probability for pot (0.001)")
    group.add_argument(
        "--holdout",
        type=float,
        default=0.25,
        help="share of the training rows (the last ones) held out to calibrate the threshold (0.25)",
    )
    group.add_argument(
        "--smoothing",
        type=int,
        default=1,
        metavar="K",
        help="score = causal mean of the detector's scores over the last K rows; threshold calibrated on it (1 = off)",
    )
    group.add_argument(
        "--calibrate",
        default="smoothed",
        choices=["smoothed", "raw"],
        help="with --smoothing: set the threshold from the smoothed (default) or the raw held-out scores",
    )
    group.add_argument("--seed", type=int, default=0, help="random_state of the detector (0)")
    group.add_argument(
        "--candidates",
        metavar="LIST",
        help="--detector auto: comma-separated labels of the candidates to choose among (default: all of them)",
    )
    group.add_argument(
        "--auto-budget",
        type=float,
        metavar="SECONDS",
        help="--detector auto: start no further candidate once this many seconds are spent",
    )
    _add_alarm_options(parser, default_alarms)


def _add_alarm_options(parser: argparse.ArgumentParser, default_alarms: str) -> None:
    alarms = parser.add_argument_group("alarms (see docs/alarms.md)")
    alarms.add_argument(
        "--alarms",
        default=None,
        choices=["plain", "recommended"],
        help=f"alarm rule to start from (default: {default_alarms}; with --detector auto: chosen among them); "
        "the flags below override its parts",
    )
    parser.set_defaults(default_alarms=default_alarms)
    alarms.add_argument("--on-delay", metavar="K/N", help="raise an alarm when K of the last N readings are flagged")
    alarms.add_argument("--off-delay", type=int, metavar="M", help="clear after M readings at or below the clear level")
    alarms.add_argument("--deadband", type=float, metavar="D", help="clear level = set level × (1 − D)")
    alarms.add_argument("--holdoff", type=int, metavar="H", help="no re-alarm within H readings of a clear")
    alarms.add_argument(
        "--bypass", type=float, metavar="B", help="one reading above B × the set level alarms at once (high-high)"
    )
    alarms.add_argument(
        "--adapt", choices=["fixed", "baseline", "conformal", "spot"], help="how the set level follows the plant"
    )
    alarms.add_argument(
        "--adapt-param",
        action="append",
        type=_parse_param,
        default=[],
        metavar="KEY=VALUE",
        help="parameter of --adapt, repeatable, e.g. --adapt-param memory=600",
    )
    alarms.add_argument(
        "--alarm-guard", type=float, metavar="G", help="freeze adaptation above this share of alarmed readings"
    )


def _alarm_stage(args: argparse.Namespace):
    from vigil.alarms.rules import make_alarm_stage, parse_on_delay

    return make_alarm_stage(
        _alarm_rule(args),
        on_delay=None if args.on_delay is None else parse_on_delay(args.on_delay),
        off_delay=args.off_delay,
        deadband=args.deadband,
        holdoff=args.holdoff,
        bypass=args.bypass,
        adapt=args.adapt,
        adapt_params=dict(args.adapt_param),
        guard=args.alarm_guard,
    )


def _alarm_rule(args: argparse.Namespace) -> str:
    return args.alarms if args.alarms is not None else args.default_alarms


def _alarm_given(args: argparse.Namespace) -> bool:
    """Whether the command line fixes the alarm stage (a rule or any of its parts), rather than auto choosing it."""
    parts = (args.on_delay, args.off_delay, args.deadband, args.holdoff, args.bypass, args.adapt, args.alarm_guard)
    return args.alarms is not None or any(v is not None for v in parts) or bool(args.adapt_param)


def _threshold_params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "target-far": {"far": args.far},
        "quantile": {"quantile": args.quantile, "factor": args.factor},
        "pot": {"risk": args.risk},
    }[args.threshold]


def _auto_factory(args: argparse.Namespace):
    """``--detector auto``: a pipeline that chooses its detector, settings and alarm rule when fitted."""
    from vigil.calibration.thresholds import make_thresholder
    from vigil.tuning.auto import CANDIDATES, AutoPipeline, candidates_named

    candidates = CANDIDATES if args.candidates is None else candidates_named(_split_columns(args.candidates))
    if args.param:
        msg = "--detector auto chooses the detector's parameters itself: leave out --param, or name a detector"
        raise InvalidInputError(msg)
    if args.smoothing != 1 or args.calibrate != "smoothed":
        msg = "--detector auto chooses the score smoothing itself: leave out --smoothing and --calibrate"
        raise InvalidInputError(msg)
    threshold_params = _threshold_params(args)
    stage = _alarm_stage(args) if _alarm_given(args) else None
    budget = args.auto_budget

    def make():
        return AutoPipeline(
            scaler=args.scaler,
            threshold=make_thresholder(args.threshold, **threshold_params),
            holdout=args.holdout,
            alarm=None if stage is None else stage.clone(),
            candidates=candidates,
            seed=args.seed,
            budget_seconds=budget,
            progress=not getattr(args, "quiet", False),
        )

    config = {
        "detector": "auto",
        "candidates": [c.to_dict() for c in candidates],
        "scaler": args.scaler,
        "threshold": {"kind": args.threshold, **threshold_params},
        "holdout": args.holdout,
        "alarm": {"rule": _alarm_rule(args) if stage is not None else "chosen"},
        "budget_seconds": budget,
    }
    make()
    return make, config


def _pipeline_factory(args: argparse.Namespace):
    from vigil.calibration.thresholds import make_thresholder
    from vigil.pipeline import Pipeline
    from vigil.registry import detector_class

    if args.detector == "auto":
        return _auto_factory(args)
    if args.candidates is not None or args.auto_budget is not None:
        msg = "--candidates and --auto-budget belong to --detector auto"
        raise InvalidInputError(msg)
    cls = detector_class(args.detector)
    params = dict(args.param)
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        msg = f"{cls.__name__} has no parameter {unknown[0]!r}; valid: {cls._param_names()}"
        raise InvalidInputError(msg)
    if "random_state" in cls._param_names() and "random_state" not in params:
        params["random_state"] = args.seed
    threshold_params = _threshold_params(args)
    stage = _alarm_stage(args)

    def make():
        return Pipeline(
            cls(**params),
            scaler=args.scaler,
            threshold=make_thresholder(args.threshold, **threshold_params),
            holdout=args.holdout,
            smoothing=args.smoothing,
            calibrate=args.calibrate,
            alarm=stage.clone(),
        )

    config = {
        "detector": args.detector,
        "params": params,
        "scaler": args.scaler,
        "threshold": {"kind": args.threshold, **threshold_params},
        "holdout": args.holdout,
        "smoothing": args.smoothing,
        "calibrate": args.calibrate,
        "alarm": {
            "rule": _alarm_rule(args),
            "policy": (stage.policy.to_dict() if stage.policy is not None else {}),
            "adapt": stage.threshold.to_dict() if stage.threshold is not None else {"kind": "fixed"},
            "guard": stage.guard,
        },
    }
    make()  # fail now, before any data are read, on a bad parameter name
    return make, config


def _command_line(argv: Sequence[str] | None) -> str:
    words = list(sys.argv[1:] if argv is None else argv)
    return "vigil " + shlex.join(words)


def _write_json(path: str | None, document: dict[str, Any]) -> None:
    if path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        print(f"wrote {out}", file=sys.stderr)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _print_result(result: dict[str, Any]) -> None:
    rows = _result_rows(result)
    width = max(len(k) for k, _ in rows)
    print(f"{result.get('dataset', 'evaluation')} · {result.get('detector')}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def _result_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures of a result, each that applies (accuracy only for classifiers, floods only when counted...)."""
    r = result.get
    rows = [("accuracy", _pct(r("accuracy")))] if r("accuracy") is not None else []
    if r("accuracy_test21"):
        rows.append(("accuracy on KDDTest-21", _pct(r("accuracy_test21"))))
    rows += [("F1", _num(r("f1"))), ("FAR", _pct(r("far"))), ("MAR", _pct(r("mar")))]
    rows += [("precision", _num(r("precision"))), ("recall", _num(r("recall"))), ("ROC-AUC", _num(r("roc_auc")))]
    rows.append(("PR-AUC", _num(r("pr_auc"))))
    if r("vus_pr") is not None:
        rows.append(("VUS-PR", _num(r("vus_pr"))))
    rows.append(("event recall", _num(r("event_recall"))))
    if r("false_alarms_per_hour") is not None:
        rows.append(("false-alarm events per hour", _num(r("false_alarms_per_hour"), 2)))
    if r("flood_intervals"):
        rows.append(("alarm floods (>10 alarms in 10 min)", f"{result['alarm_floods']} of {result['flood_intervals']}"))
    if r("far_ratio_median") is not None:
        rows.append(("realised FAR ÷ target, median over parts", _num(r("far_ratio_median"), 1)))
    if r("detection_delay_p90") is not None:
        delay = f"{_num(result['detection_delay_median'], 1)} / {_num(result['detection_delay_p90'], 1)}"
        rows.append((f"time to detect, median / p90 ({r('detection_delay_unit', 'rows')})", delay))
    rows.append(("F1, point-adjusted (inflated)", _num(r("f1_point_adjusted"))))
    rows.append(("F1, oracle threshold (mean over parts)", _num(r("oracle_best_f1_mean"))))
    for key, label in (("", ""), ("_detected", ", detected anomalies")):
        if f"hitrate_100{key}" in result:
            hits = f"{_num(result[f'hitrate_100{key}'])} / {_num(result[f'hitrate_150{key}'])}"
            rows.append((f"root cause HitRate@100% / @150%{label}", hits))
    rows.append(("fit / score seconds", f"{_num(r('fit_seconds'), 2)} / {_num(r('score_seconds'), 2)}"))
    recall = r("per_category_recall") or {}
    rows += _scored_rows(result)
    return rows + [(f"recall of {kind}", _num(value)) for kind, value in recall.items() if isinstance(value, float)]


def _scored_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """How much was scored: rows of tables, or packets of captures (a capture benchmark counts per part)."""
    if result.get("rows_scored") is not None:
        return [("rows scored", str(result["rows_scored"]))]
    packets = [part.get("packets") for part in (result.get("per_part") or {}).values() if isinstance(part, dict)]
    counts = [n for n in packets if isinstance(n, int)]
    if packets and len(counts) == len(packets):
        return [("packets scored", str(sum(counts)))]
    return []


def _print_image_result(result: dict[str, Any]) -> None:
    print(f"{result.get('dataset')} · {result.get('detector')} · {result.get('split')} split")
    print(f"  image ROC-AUC      {_num(result.get('roc_auc'))}")
    for kind, value in (result.get("roc_auc_per_type") or {}).items():
        print(f"    {kind:<16} {_num(value)}")
    print(f"  pixel ROC-AUC      {_num(result.get('pixel_roc_auc'))}")
    print(f"  AUPRO (FPR ≤ 0.3)  {_num(result.get('aupro'))}")
    print(
        f"  at the threshold calibrated on good images: false-reject rate {_num(result.get('far_at_threshold'))}, "
        f"recall {_num(result.get('recall_at_threshold'))}"
    )
    for kind, value in (result.get("recall_at_threshold_per_type") or {}).items():
        print(f"    recall {kind:<9} {_num(value)}")
    print(f"  images per second  {_num(result.get('images_per_second'), 1)}")


# ---------------------------------------------------------------------------------------------- commands
def _cmd_detectors(args: argparse.Namespace) -> int:
    from vigil.registry import available_detectors

    def kind(cls: type[BaseDetector]) -> str:
        return "labels" if cls.requires_y else "online" if hasattr(cls, "learn_one") else "batch"

    rows = [(n, kind(c), c.summary) for n, c in available_detectors().items()]
    try:
        from vigil.vision.registry import available_image_detectors
    except ImportError:  # the image extra (Pillow) is not installed
        pass
    else:
        rows += [(n, "image", c.summary) for n, c in available_image_detectors().items()]
    rows.append(
        ("auto", "select", "Chooses a detector, its settings and alarm rule on validation folds of the training rows")
    )
    width = max(len(n) for n, _, _ in rows)
    for name, what, summary in rows:
        print(f"{name:<{width}}  {what:<6}  {summary}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from vigil.evaluation.runner import environment

    if args.dataset in _NETWORK_BENCHMARKS:
        from vigil.network.cli import run_network_bench

        result = run_network_bench(
            args.dataset,
            args.detector,
            data_dir=args.data_dir,
            json_path=args.json,
            params=dict(args.param),
            seed=args.seed,
            quiet=args.quiet,
            command=_command_line(args._argv),
        )
        _print_result(result)
        return 0
    if args.dataset in _IMAGE_BENCHMARKS:
        from vigil.vision.bench import run_image_bench

        result = run_image_bench(
            args.dataset,
            args.detector,
            data_dir=args.data_dir,
            json_path=args.json,
            split=args.split,
            size=args.size,
            resize=args.resize,
            params=dict(args.param),
            seed=args.seed,
            report_path=args.report,
            quiet=args.quiet,
        )
        _print_image_result(result)
        return 0
    from vigil.evaluation.table_bench import run_table_bench

    make, config = _pipeline_factory(args)
    result, recorder = run_table_bench(
        args.dataset, make, detector=args.detector, data_dir=args.data_dir, parts=_split_columns(args.parts),
        attribution=args.attribution, fleet=not args.one_at_a_time, costs=_costs(args), record_scores=bool(args.scores),
        per_part=args.per_part, progress=not args.quiet,
    )  # fmt: skip
    extra = {"config": config, "attribution": args.attribution, "seed": args.seed}
    document = {**result, **extra, "command": _command_line(args._argv), "environment": environment()}
    _save_scores(recorder, args, document)
    _print_result(document)
    _print_choices(document)
    _print_costs(document)
    _write_json(args.json, document)
    return 0


def _print_choices(document: dict[str, Any]) -> None:
    """What --detector auto chose, per part (the reasons are in the JSON's per_part selection records)."""
    counts = document.get("auto_choice_counts")
    if counts:
        print("  auto chose (detector / alarm rule, parts):")
        for choice, n in counts.items():
            print(f"    {choice}: {n}")


def _save_scores(recorder: Any, args: argparse.Namespace, document: dict[str, Any]) -> None:
    if recorder is None:
        return
    saved = recorder.write(args.scores)
    # Reports find the scores relative to the JSON when both sit together.
    if args.json and Path(args.json).resolve().parent == saved.resolve().parent:
        document["scores_file"] = saved.name
    else:
        document["scores_file"] = str(saved.resolve())
    print(f"wrote {saved}", file=sys.stderr)


def _read(
    path: str,
    args: argparse.Namespace,
    *,
    label: str | None,
    columns: Sequence[str] | None = None,
    group: str | None = None,
    categorical: Sequence[str] | None = None,
):
    """Read a table; text columns as ``--categorical`` says, or as the training table had them."""
    from vigil.data.tables import read_table

    flag = getattr(args, "categorical", "none")
    if categorical is None:
        categorical = "auto" if flag == "auto" else () if flag == "none" else _split_columns(flag)
    table = read_table(
        path,
        label=label,
        time=args.time,
        drop=_split_columns(args.drop),
        sep=args.sep,
        columns=columns,
        sort_time=args.sort_time,
        drop_duplicate_times=args.drop_duplicate_times,
        group=group,
        categorical=categorical,
    )
    if flag == "auto" and table.categorical and columns is None:
        print(
            f"{table.source}: one-hot encoding the text columns {', '.join(table.categorical)} "
            "(--categorical none refuses text columns instead)",
            file=sys.stderr,
        )
    return table


def _encoding(make: Any, table: Any) -> Any:
    """``make`` for pipelines that one-hot encode the table's text columns (``make`` itself when none)."""
    if not table.categorical:
        return make

    def build():
        pipe = make()
        pipe.categorical = tuple(table.categorical)
        return pipe

    return build


def _add_cost_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("operating points (expected cost per day of each candidate threshold)")
    group.add_argument("--cost-false-alarm", type=float, metavar="C", help="cost of handling one false alarm")
    group.add_argument("--cost-fault-hour", type=float, metavar="C", help="cost of one hour of undetected fault")
    group.add_argument(
        "--faults-per-day", type=float, default=1.0, metavar="F", help="faults expected per day and asset (1)"
    )


def _costs(args: argparse.Namespace) -> dict[str, float] | None:
    given = (args.cost_false_alarm is not None, args.cost_fault_hour is not None)
    if not any(given):
        return None
    if not all(given):
        msg = "the operating-point view needs both --cost-false-alarm and --cost-fault-hour"
        raise InvalidInputError(msg)
    return {
        "cost_false_alarm": args.cost_false_alarm,
        "cost_fault_hour": args.cost_fault_hour,
        "faults_per_day": args.faults_per_day,
    }


def _print_costs(document: dict[str, Any]) -> None:
    from vigil.evaluation.operating_points import cost_table

    view = document.get("operating_points")
    if view and view.get("rows"):
        print()
        print(cost_table(view))


def _add_ray_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray (pip install 'vigil[scale]')")
    group.add_argument("--ray", action="store_true", help="run on Ray (a local instance unless --ray-address)")
    group.add_argument("--ray-address", help="address of a running Ray cluster")
    group.add_argument("--workers", type=int, help="Ray workers (actors, trials at once, training workers)")


def _add_table_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("input file")
    group.add_argument("--time", help="timestamp column (ISO 8601 or epoch seconds)")
    group.add_argument("--drop", help="comma-separated columns to ignore")
    group.add_argument("--sep", default=",", help="field separator (default ',')")
    group.add_argument(
        "--sort-time", action="store_true", help="sort rows by time instead of rejecting out-of-order timestamps"
    )
    group.add_argument(
        "--drop-duplicate-times",
        action="store_true",
        help="keep the first row of each repeated timestamp instead of rejecting duplicates",
    )
    group.add_argument(
        "--categorical",
        default="auto",
        metavar="COLUMNS",
        help="comma-separated text columns to one-hot encode (with a bucket for unseen values); 'auto' "
        "(default) encodes every column of mostly non-numeric text and says so, 'none' refuses text",
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vigil.data.tables import split_rows
    from vigil.evaluation.runner import EvaluationPart, environment, evaluate_parts
    from vigil.evaluation.scores_file import ScoreRecorder
    from vigil.fitting import normal_rows

    make, config = _pipeline_factory(args)
    if args.cv:
        if args.test is not None or args.train_rows is not None:
            msg = "--cv validates on folds of --train alone: leave out --test and --train-rows"
            raise InvalidInputError(msg)
        table = _read(args.train, args, label=args.label)
        return _evaluate_cv(args, _encoding(make, table), table)
    if (args.test is None) == (args.train_rows is None):
        msg = "give either --test TEST.csv or --train-rows N (to split TRAIN.csv), not both or neither"
        raise InvalidInputError(msg)
    train = _read(args.train, args, label=args.label)
    make = _encoding(make, train)
    if args.train_rows is not None:
        train, test = split_rows(train, args.train_rows)
    else:
        test = _read(args.test, args, label=args.label, columns=list(train.X.columns), categorical=train.categorical)
    X_train, _, _ = normal_rows(train)  # unsupervised detectors learn normal behaviour
    _note_left_out(train)
    if test.y is None:
        msg = f"{test.source}: --label column is needed to evaluate"
        raise InvalidInputError(msg)
    if args.stream:
        return _evaluate_stream(args, make, X_train, test)

    part = EvaluationPart(test.source, X_train, test.X, test.y, test.time)
    recorder = ScoreRecorder() if args.scores else None
    result = evaluate_parts(
        [part],
        make,
        progress=not args.quiet,
        label="evaluating",
        on_part=recorder.record if recorder else None,
        costs=_costs(args),
    )
    if "operating_points" in result:
        result["operating_points"].pop("per_part")
    part_result = result.pop("per_part")
    selection = next(iter(part_result.values())).get("selection")
    if selection is not None:
        from vigil.tuning.auto import describe_selection

        print(describe_selection(selection))
        result["selection"] = selection
    document = {
        "dataset": test.source,
        "detector": args.detector,
        "protocol": (
            f"fit on {len(X_train)} rows of {train.source}"
            + (f" (first {args.train_rows} rows)" if args.train_rows else "")
            + f", score {len(test.X)} rows of {test.source}; point-wise, no point-adjust"
        ),
        **result,
        "config": config,
        "command": _command_line(args._argv),
        "environment": environment(),
    }
    _save_scores(recorder, args, document)
    _print_result(document)
    _print_costs(document)
    _write_json(args.json, document)
    return 0


def _evaluate_cv(args: argparse.Namespace, make: Any, table: Any) -> int:
    from vigil.evaluation.cv import evaluate_folds, forward_chaining_folds, shuffled_folds

    if args.shuffle:
        print(
            "warning: shuffled folds assume independent records (flow tables, images); on a time series they "
            "train on the future and inflate every figure",
            file=sys.stderr,
        )
        folds = shuffled_folds(len(table.X), args.cv, random_state=args.seed)
    else:
        folds = forward_chaining_folds(len(table.X), args.cv, gap=args.gap)
    result = evaluate_folds(table.X, table.y, folds, make, time_ordered=not args.shuffle)
    kind = "shuffled" if args.shuffle else f"forward-chaining (gap {args.gap} rows)"
    print(f"{args.cv} {kind} folds of {table.source} · {args.detector}")
    keys = [
        ("f1", "F1"),
        ("far", "FAR"),
        ("mar", "MAR"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("roc_auc", "ROC-AUC"),
        ("event_recall", "event recall"),
    ]
    print(f"{'fold':<6}{'train rows':>11}{'rows':>7}" + "".join(f"{label:>14}" for _, label in keys))
    for fold in result["per_fold"]:
        cells = "".join(f"{fold.get(k, float('nan')):>14.3f}" for k, _ in keys)
        print(f"{fold['fold']:<6}{fold['train_rows']:>11}{fold['rows']:>7}{cells}")
    mean_std = "".join(
        f"{result['mean'].get(k, float('nan')):>7.3f}±{result['std'].get(k, float('nan')):<6.3f}" for k, _ in keys
    )
    print(f"{'mean ± std':<24}{mean_std}")
    _write_json(
        args.json,
        {
            "dataset": table.source,
            "detector": args.detector,
            "protocol": kind,
            **result,
            "command": _command_line(args._argv),
        },
    )
    return 0


def _evaluate_stream(args: argparse.Namespace, make: Any, X_train: Any, test: Any) -> int:
    import numpy as np
    import pandas as pd

    from vigil.evaluation.prequential import prequential

    X = pd.concat([X_train, test.X], ignore_index=True)
    y = np.concatenate([np.zeros(len(X_train), dtype=bool), test.y])
    result = prequential(
        X,
        y,
        make,
        initial_rows=len(X_train),
        chunk=args.chunk,
        window=args.window,
        guard=args.guard,
        feedback=not args.no_feedback,
        progress=not args.quiet,
    )
    made = sum(u["updated"] for u in result.updates)
    print(
        f"prequential replay of {len(test.X)} rows of {test.source}: {made} updates, "
        f"{len(result.updates) - made} refused"
    )
    print(f"{'':<10}{'F1':>8}{'FAR':>9}{'MAR':>9}{'event recall':>14}{'false alarms/h':>16}")
    for label, m in (("static", result.static), ("adaptive", result.adaptive)):
        print(
            f"{label:<10}{m['f1']:>8.3f}{100 * m['far']:>8.2f}%{100 * m['mar']:>8.2f}%"
            f"{m['event_recall']:>14.3f}{m['false_alarms_per_hour']:>16.2f}"
        )
    _write_json(
        args.json,
        {
            "dataset": test.source,
            "detector": args.detector,
            "protocol": "prequential (test-then-train)",
            "static": result.static,
            "adaptive": result.adaptive,
            "updates": result.updates,
            "command": _command_line(args._argv),
        },
    )
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from vigil.network.pcap import is_capture

    if args.detector == "auto" and (Path(args.train).is_dir() or is_capture(args.train)):
        what = "an image folder" if Path(args.train).is_dir() else "a packet capture"
        msg = f"{args.train} is {what}: --detector auto chooses among telemetry detectors; name a detector"
        raise InvalidInputError(msg)
    if Path(args.train).is_dir():
        from vigil.vision.folders import fit_image_folder

        options = {"size": args.size, "mode": args.mode, "resize": args.resize, "seed": args.seed}
        print(fit_image_folder(args.train, args.detector, args.output, params=dict(args.param), **options))
        return 0
    make, _ = _pipeline_factory(args)
    if args.ray and args.detector == "auto":
        msg = "--ray fits a named detector: --detector auto selects on one machine (leave out --ray or name one)"
        raise InvalidInputError(msg)
    if args.ray and not args.group_by:
        from vigil.scale.archive import feature_columns
        from vigil.scale.ray_training import fit_with_ray

        features = feature_columns(args.train, exclude=[c for c in (args.time, args.label) if c])
        pipe = fit_with_ray(make, args.train, features, workers=args.workers or 2, address=args.ray_address)
        out = pipe.save(args.output)
        print(f"fitted {args.detector} on the archive {args.train} with Ray; model {pipe.version_} saved to {out}")
        return 0
    from vigil import fitting

    fitting.refuse_supervised(args.detector)
    if is_capture(args.train):
        print(fitting.fit_capture_file(make, args.train, args.output, detector=args.detector))
        return 0
    table = _read(args.train, args, label=args.label, group=args.group_by)
    _note_left_out(table)
    if args.group_by:
        summary, skipped, added = fitting.fit_fleet(
            make, table, args.output, detector=args.detector, group_by=args.group_by, source=args.train,
            ray=args.ray, workers=args.workers or 2, address=args.ray_address,
        )  # fmt: skip
        print(summary)
        for reason in skipped:
            print(f"skipped {reason}", file=sys.stderr)
        if not added:
            msg = f"{args.train}: no {args.group_by} could be fitted"
            raise InvalidInputError(msg)
        return 0
    layout = {"time": args.time, "label": args.label, "drop": _split_columns(args.drop), "sep": args.sep}
    make = _encoding(make, table)
    print(fitting.fit_table(make, table, args.output, detector=args.detector, layout=layout, source=args.train))
    return 0


def _note_left_out(table: Any) -> None:
    if table.y is not None and table.y.any():
        print(f"left {int(table.y.sum())} labelled anomalous rows out of training", file=sys.stderr)


def _cmd_score(args: argparse.Namespace) -> int:
    if args.ray:
        from vigil.scale.ray_scoring import score_archive_with_ray

        summary = score_archive_with_ray(
            args.model, args.data, args.output, address=args.ray_address, workers=args.workers, keep=args.keep,
            top_k=args.top_k, progress=True,
        )  # fmt: skip
        print(
            f"scored {summary['rows']} rows of {summary['files']} files on {summary['workers']} Ray workers in "
            f"{summary['seconds']:.1f} s ({summary['rows_per_second']:,.0f} rows/s): {summary['anomalies']} above "
            f"the threshold; wrote {summary['output']}"
        )
        return 0
    from vigil.scoring import score_file

    drop = _split_columns(args.drop) if args.drop is not None else None
    options = {"label": args.label, "time": args.time, "drop": drop, "sep": args.sep, "maps": args.maps}
    flags = {"sort_time": args.sort_time, "drop_duplicate_times": args.drop_duplicate_times}
    print(score_file(args.model, args.data, args.output, top_k=args.top_k, **options, **flags))
    return 0


def _tuning_tables(args: argparse.Namespace):
    from vigil.data.benchmarks import load_benchmark
    from vigil.evaluation.runner import EvaluationPart
    from vigil.fitting import normal_rows
    from vigil.tuning.search import TrainingTable

    if args.dataset:
        benchmark = load_benchmark(args.dataset, data_dir=args.data_dir)
        parts = benchmark.parts
        # Tune on an evenly spread subset of the parts' *training* rows; evaluate on every part's test rows.
        chosen = parts[:: max(1, len(parts) // args.parts)][: args.parts] if args.parts else parts
        tables = [TrainingTable(p.name, p.X_train) for p in chosen]
        tests = [EvaluationPart(p.name, p.X_train, p.X_test, p.y_test, p.time_test, extra=p.extra) for p in parts]
        return tables, tests, benchmark.name
    train = _read(args.train, args, label=args.label)
    if train.categorical:
        msg = (
            f"{train.source}: vigil tune does not encode text columns yet ({', '.join(train.categorical)}): "
            "drop them with --drop, or tune on the numeric columns and fit with them"
        )
        raise InvalidInputError(msg)
    tables = [TrainingTable(train.source, train.X, train.y)]
    tests = []
    if args.test:
        test = _read(args.test, args, label=args.label, columns=list(train.X.columns))
        X_train, _, _ = normal_rows(train)
        if test.y is not None:
            tests = [EvaluationPart(test.source, X_train, test.X, test.y, test.time)]
    return tables, tests, train.source


def _cmd_tune(args: argparse.Namespace) -> int:
    from vigil.evaluation.runner import environment
    from vigil.tuning.compare import tune_and_compare

    if (args.dataset is None) == (args.train is None):
        msg = "give either --train TRAIN.csv or --dataset NAME"
        raise InvalidInputError(msg)
    make_default, config = _pipeline_factory(args)
    tables, tests, source = _tuning_tables(args)
    result, rows, make = tune_and_compare(
        make_default, args.detector, tables, tests, n_trials=args.trials, n_folds=args.folds, gap=args.gap,
        seed=args.seed, timeout=args.timeout, storage=args.storage, study_name=args.study_name, ray=args.ray,
        address=args.ray_address, workers=args.workers, progress=not args.quiet,
    )  # fmt: skip
    print(f"tuned {args.detector} on {source}: {result.n_trials} trials in {result.seconds:.1f} s")
    header = f"{'':<10}{'detection rate':>16}{'false-alarm rate':>18}{'F1':>8}{'µs/row':>9}"
    for scope in ("validation", "test"):
        if scope not in rows[0]:
            continue
        title = "validation folds of the training data (synthetic faults)" if scope == "validation" else "test data"
        print(f"\n{title}\n{header}")
        for row in rows:
            m = row[scope]
            rate, far, micros = 100 * m["recall"], 100 * m["far"], 1000 * m["ms_per_row"]
            print(f"{row['model']:<10}{rate:>15.1f}%{far:>17.2f}%{m['f1']:>8.3f}{micros:>9.1f}")
    tuned = json.dumps(result.best_params) if result.best_params else "the defaults were not beaten"
    print(f"\ntuned parameters: {tuned}")
    if args.output:
        pipe = make(result.best_params)
        X = tables[0].X if tables[0].y is None else tables[0].X.loc[~tables[0].y]
        saved = pipe.fit(X).save(args.output)
        print(f"saved the tuned pipeline ({pipe.version_}) to {saved}")
    _write_json(
        args.json,
        {
            "source": source,
            "detector": args.detector,
            "config": config,
            "best_params": result.best_params,
            "validation_f1_default": result.default_value,
            "validation_f1_best": result.best_value,
            "comparison": rows,
            "trials": result.trials,
            "seconds": result.seconds,
            "command": _command_line(args._argv),
            "environment": environment(),
        },
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from vigil.export import export_model

    try:
        print(export_model(args.model, args.output, format=args.format))
    except ImportError as exc:  # the export extra is not installed: say what to install, not a traceback
        print(f"vigil export: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from vigil.evaluation.result_report import write_result_report

    path = write_result_report(args.results, args.output)
    print(f"wrote {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vigil.demo import run_demo

    if args.examples:
        from vigil.data.examples import write_examples

        written = write_examples(args.examples, seed=args.seed)
        print(f"wrote the tour's files into {args.examples}: {', '.join(p.name for p in written)}")
        if args.examples_only:
            return 0
    run_demo(
        output=Path(args.output),
        hours=args.hours,
        seed=args.seed,
        detector=args.detector,
        progress=not args.quiet,
        network=not args.no_network and importlib.util.find_spec("dpkt") is not None,
        alarms=args.alarms,
    )
    return 0


# ---------------------------------------------------------------------------------------------- parser
def _add_detectors_command(sub: Any) -> None:
    p = sub.add_parser("detectors", help="list the registered detectors")
    p.set_defaults(func=_cmd_detectors)


def _add_bench_command(sub: Any) -> None:
    p = sub.add_parser("bench", help="run a benchmark data set under its official protocol")
    p.add_argument(
        "--dataset", required=True, choices=[*_TELEMETRY_BENCHMARKS, *_NETWORK_BENCHMARKS, *_IMAGE_BENCHMARKS]
    )
    p.add_argument("--data-dir", help="folder holding the data sets (default: $VIGIL_DATA_DIR)")
    p.add_argument(
        "--split",
        default="grouped",
        choices=["grouped", "differnet", "supervised"],
        help="magnetic-tile: grouped (default), differnet (the published, leaky split), supervised",
    )
    p.add_argument("--size", type=int, default=128, help="magnetic-tile: working resolution in pixels (128)")
    p.add_argument(
        "--resize",
        choices=["stretch", "crop", "pad"],
        default="stretch",
        help="magnetic-tile: how a tile becomes size × size; pad keeps its aspect ratio (stretch)",
    )
    p.add_argument("--report", help="magnetic-tile: write an HTML report with heat-map overlays here")
    p.add_argument("--json", help="write the full result as JSON to this file")
    p.add_argument("--per-part", action="store_true", help="include per-file/machine/device figures in the JSON")
    p.add_argument(
        "--parts", metavar="LIST", help="skab/smd/ton-iot: run only these comma-separated parts (a labelled subset)"
    )
    p.add_argument("--scores", help="save every part's scores to this .npz (for vigil report's plots)")
    p.add_argument(
        "--attribution",
        choices=["model", "occlusion"],
        default="model",
        help="smd: root-cause ranking from the detector's own decomposition (model) or occlusion",
    )
    p.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="fit each part's model on its own instead of all parts' as one batched fleet "
        "(the same models to float rounding; the fleet is faster for tcn-forecaster and tcn-sequence)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_pipeline_options(p)
    _add_cost_options(p)
    p.set_defaults(func=_cmd_bench)


def _add_evaluate_command(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="evaluate a detector on your own labelled CSV")
    p.add_argument("--train", required=True, help="training CSV (mostly normal rows)")
    p.add_argument("--test", help="test CSV with the same columns")
    p.add_argument("--train-rows", type=int, help="split --train: its first N rows train, the rest test")
    p.add_argument("--label", required=True, help="label column: 0 normal, non-zero anomalous")
    p.add_argument("--json", help="write the result as JSON to this file")
    p.add_argument("--scores", help="save the test scores to this .npz (for vigil report's plots)")
    p.add_argument("--cv", type=int, help="K forward-chaining folds of --train instead of a test set")
    p.add_argument("--gap", type=int, default=0, help="--cv: rows skipped between training and validation (0)")
    p.add_argument("--shuffle", action="store_true", help="--cv: shuffled folds (independent records only)")
    p.add_argument("--stream", action="store_true", help="prequential replay: static vs adaptive (retrained) model")
    p.add_argument("--chunk", type=int, default=500, help="--stream: rows scored between updates (500)")
    p.add_argument("--window", type=int, default=2000, help="--stream: recent rows an update learns from (2000)")
    p.add_argument("--guard", type=float, default=0.5, help="--stream: refuse updates above this alarm share (0.5)")
    p.add_argument("--no-feedback", action="store_true", help="--stream: operators review no alarm")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_table_options(p)
    _add_pipeline_options(p)
    _add_cost_options(p)
    p.set_defaults(func=_cmd_evaluate)


def _add_fit_command(sub: Any) -> None:
    p = sub.add_parser("fit", help="fit a pipeline (scaler + detector + threshold) and save it")
    p.add_argument(
        "train",
        help="training CSV, a benign packet capture (.pcap/.pcapng), or a folder of good images (its good/ "
        "subfolder when it has one) for an image detector",
    )
    p.add_argument("-o", "--output", required=True, help="model directory to write (a registry with --group-by)")
    p.add_argument("--label", help="label column; rows labelled anomalous are left out of training")
    p.add_argument(
        "--group-by",
        help="column naming each row's asset: fit one model per asset (as one fleet where the detector "
        "supports it) into the model registry at --output, each active under the asset's name",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    images = p.add_argument_group("image folder")
    images.add_argument("--size", type=int, default=128, help="working size in pixels, square (128)")
    images.add_argument("--mode", choices=["L", "RGB"], default="L", help="grey (L, default) or colour")
    images.add_argument(
        "--resize", choices=["stretch", "crop", "pad"], default="stretch", help="resize policy (stretch)"
    )
    _add_table_options(p)
    _add_pipeline_options(p, default_detector="auto", default_alarms="recommended")
    _add_ray_options(p)
    p.set_defaults(func=_cmd_fit)


def _add_score_command(sub: Any) -> None:
    p = sub.add_parser("score", help="score a CSV, a packet capture or a folder of images with a saved model")
    p.add_argument("model", help="model directory written by `vigil fit`")
    p.add_argument("data", help="CSV to score (same columns as in training), a packet capture, or a folder of images")
    p.add_argument("-o", "--output", required=True, help="CSV of scores to write")
    p.add_argument("--maps", default=None, help="images: write a heat-map overlay PNG per flagged image here")
    p.add_argument("--top-k", type=int, default=3, help="contributing columns to list per row (3)")
    p.add_argument("--label", default=None, help="label column to ignore (default: as in training)")
    p.add_argument("--time", default=None, help="time column (default: as in training)")
    p.add_argument("--drop", default=None, help="columns to ignore (default: as in training)")
    p.add_argument("--sep", default=None, help="field separator (default: as in training)")
    p.add_argument("--sort-time", action="store_true", help="sort rows by time")
    p.add_argument("--drop-duplicate-times", action="store_true", help="keep the first row of a repeated time")
    _add_ray_options(p)
    p.add_argument("--keep", default="anomalies", choices=["anomalies", "all"], help="--ray: rows to write")
    p.set_defaults(func=_cmd_score)


def _add_export_command(sub: Any) -> None:
    p = sub.add_parser("export", help="export a saved model as ONNX for a gateway (scaler, detector, threshold)")
    p.add_argument("model", help="model directory written by `vigil fit` (an image model or a telemetry pipeline)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format (onnx)")
    p.add_argument("-o", "--output", required=True, help="directory for model.onnx and vigil-export.json")
    p.set_defaults(func=_cmd_export)


def _add_report_command(sub: Any) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report from result JSON files")
    p.add_argument("results", nargs="+", help="JSON files written by vigil bench/evaluate/tune --json")
    p.add_argument("-o", "--output", default="report.html", help="HTML file to write (report.html)")
    p.set_defaults(func=_cmd_report)


def _add_tune_command(sub: Any) -> None:
    p = sub.add_parser("tune", help="tune a detector's hyperparameters on validation folds of the training data")
    p.add_argument("--train", help="training CSV (time-ordered)")
    p.add_argument("--test", help="labelled test CSV for the before/after table")
    p.add_argument("--label", help="label column (training anomalies are left out of fitting)")
    p.add_argument("--dataset", choices=["skab", "smd", "ton-iot"], help="tune on a benchmark's training parts")
    p.add_argument("--data-dir", help="folder holding the data sets (default: $VIGIL_DATA_DIR)")
    p.add_argument("--parts", type=int, default=5, help="benchmark parts to tune on (5; 0 = all)")
    p.add_argument("--trials", type=int, default=20, help="Optuna trials (20)")
    p.add_argument("--folds", type=int, default=3, help="forward-chaining validation folds (3)")
    p.add_argument("--gap", type=int, default=0, help="rows skipped between each fold's training and validation")
    p.add_argument("--timeout", type=float, help="stop the search after this many seconds")
    p.add_argument("--storage", help="Optuna storage to save and resume the study, e.g. sqlite:///study.db")
    p.add_argument("--study-name", help="study name inside --storage")
    p.add_argument("-o", "--output", help="save the tuned pipeline (fitted on the training rows) here")
    p.add_argument("--json", help="write trials and the before/after comparison as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_table_options(p)
    _add_pipeline_options(p)
    _add_ray_options(p)
    p.set_defaults(func=_cmd_tune)


def _add_demo_command(sub: Any) -> None:
    p = sub.add_parser("demo", help="simulate a smart factory, detect its incidents, and write a report")
    p.add_argument("-o", "--output", default="vigil-demo", help="folder for the report and alert store")
    p.add_argument("--hours", type=float, default=4.0, help="simulated hours (4)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (7)")
    p.add_argument("--detector", default="pca", help="detector to deploy (pca)")
    p.add_argument(
        "--alarms",
        default="recommended",
        choices=["plain", "recommended"],
        help="alarm rule to deploy (recommended; plain: every flagged reading is an alarm)",
    )
    p.add_argument("--no-network", action="store_true", help="skip the plant's network traffic part")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--examples", metavar="DIR", help="also write the files the README's tour uses into DIR")
    p.add_argument("--examples-only", action="store_true", help="with --examples: write them and stop")
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Anomaly detection for IoT environments: train on normal history, evaluate honestly, "
        "score new data with explanations.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for add in (_add_detectors_command, _add_bench_command, _add_evaluate_command, _add_fit_command):
        add(sub)
    for add in (_add_score_command, _add_export_command, _add_report_command, _add_tune_command, _add_demo_command):
        add(sub)
    # Commands of the optional parts; their modules import heavy dependencies only when a command runs.
    for module in _EXTENSION_COMMANDS:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command: exit code 2 on bad input, 130 on Ctrl-C."""
    args = parser.parse_args(argv)
    args._argv = argv
    set_reporting(not getattr(args, "quiet", False))
    try:
        return int(args.func(args))
    except VigilError as exc:
        print(f"vigil {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        set_reporting(False)


if __name__ == "__main__":
    sys.exit(main())
