"""Run one network benchmark and write its JSON, recording the command: the script behind the network tables.

    VIGIL_DATA_DIR=../shared/data python benchmarks/network_bench.py --dataset nsl-kdd --detector mlp+ae \
        --json benchmarks/results/network/nsl-kdd-mlp+ae.json

Datasets: nsl-kdd (detectors ``mlp``, ``mlp+ae`` or any registered anomaly detector), modbus and mqttset (a
registered detector, ``kitnet`` by default), ton-iot (a registered detector). Same as ``vigil bench`` once the
CLI routes these data sets to :func:`vigil.network.bench.run_network_bench`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from vigil.network.bench import NETWORK_BENCHMARKS, run_network_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=NETWORK_BENCHMARKS)
    parser.add_argument("--detector", default="kitnet")
    parser.add_argument("--data-dir")
    parser.add_argument("--json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads for the NSL-KDD networks")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="JSON value")
    args = parser.parse_args()
    params = {}
    for item in args.param:
        key, _, raw = item.partition("=")
        params[key] = json.loads(raw)
    options = {"n_threads": args.threads} if args.dataset == "nsl-kdd" else {}
    result = run_network_bench(
        args.dataset,
        args.detector,
        data_dir=args.data_dir,
        json_path=args.json,
        params=params,
        seed=args.seed,
        command="python benchmarks/network_bench.py " + shlex.join(sys.argv[1:]),
        **options,
    )
    keys = ("accuracy", "accuracy_test21", "f1", "far", "roc_auc", "roc_auc_mean", "event_recall", "benign_fpr_max",
            "per_category_recall", "fit_seconds", "score_seconds")  # fmt: skip
    for key in keys:
        if key in result:
            print(f"{key:>20}: {result[key]}")


if __name__ == "__main__":
    main()
