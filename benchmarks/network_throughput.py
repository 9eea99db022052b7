"""Packet pipeline throughput and accuracy: Vigil's vectorised extractor + KitNET against per-packet KitNET.

Both sides see the same synthetic capture (benign IoT traffic, then a SYN flood, a port scan, a host scan, a
brute-force burst and an exfiltration over benign background), written to a pcap and read back with dpkt,
and the same 115 features per packet:

- **Vigil**: :class:`~vigil.network.features.PacketFeatureExtractor` (batched damped statistics) and the
  ``kitnet`` detector in a :class:`~vigil.pipeline.Pipeline`, fitted on the benign part, scoring every packet
  in batches.
- **Reference**: the same features one packet at a time in plain Python
  (:class:`~vigil.network.reference.SequentialFeatureExtractor`, the AfterImage way), and PySAD's ``KitNet``
  (the KitNET-py code, one ``fit_partial``/``score_partial`` call per packet) with grace periods covering the
  same benign part (10 % feature mapping, 90 % training).

Everything runs on one CPU core (BLAS/OpenMP threads set to 1, process pinned to one core). Reported:
packets per second of feature extraction plus scoring over the whole capture, the speed-up, training time,
and per-packet ROC-AUC on the packets after the benign part. PySAD is installed only for this script
(``pip install pysad``); without it, the reference side is skipped.

    python benchmarks/network_throughput.py --json benchmarks/results/network/throughput.json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=24, help="benign IoT devices (24)")
    parser.add_argument("--train-seconds", type=float, default=900.0, help="benign seconds before the attacks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--no-reference", action="store_true", help="time Vigil only")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from vigil.network.features import PacketFeatureExtractor
    from vigil.network.kitnet import KitNETDetector
    from vigil.network.pcap import read_capture
    from vigil.network.synthetic import ATTACK_KINDS, make_capture, write_pcap
    from vigil.pipeline import Pipeline

    cap = make_capture(ATTACK_KINDS, train_seconds=args.train_seconds, n_devices=args.devices, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_pcap(cap.packets, Path(tmp) / "synthetic.pcap")
        start = time.perf_counter()
        packets, _ = read_capture(path)
        parse_seconds = time.perf_counter() - start
    n = len(packets)
    train = packets.time < cap.train_end
    y = cap.y[~train]
    result: dict = {
        "capture": {"packets": n, "benign_train_packets": int(train.sum()), "test_packets": int((~train).sum()),
                    "attack_packets": int(cap.y.sum()), "attacks": list(ATTACK_KINDS), "seed": args.seed},
        "parse_seconds_dpkt": parse_seconds,
        "parse_packets_per_second": n / parse_seconds,
    }  # fmt: skip

    extractor = PacketFeatureExtractor()
    start = time.perf_counter()
    X = extractor.process(packets)
    extract_seconds = time.perf_counter() - start
    features = pd.DataFrame(X, columns=extractor.feature_names)
    start = time.perf_counter()
    pipe = Pipeline(KitNETDetector(random_state=args.seed)).fit(features[train])
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = pipe.score_samples(features)
    score_seconds = time.perf_counter() - start
    vigil_pps = n / (extract_seconds + score_seconds)
    result["vigil"] = {
        "extract_seconds": extract_seconds,
        "score_seconds": score_seconds,
        "fit_seconds": fit_seconds,
        "packets_per_second": vigil_pps,
        "roc_auc": roc_auc_score(y, scores[~train]),
        "far_at_threshold": float((scores[~train][~y] > pipe.threshold_).mean()),
        "recall_at_threshold": float((scores[~train][y] > pipe.threshold_).mean()),
    }
    print(f"vigil: {vigil_pps:,.0f} packets/s (extract {extract_seconds:.2f} s + score {score_seconds:.2f} s for "
          f"{n} packets; fit {fit_seconds:.2f} s), ROC-AUC {result['vigil']['roc_auc']:.4f}")  # fmt: skip

    if not args.no_reference:
        try:
            from pysad.models import KitNet
        except ImportError:
            print("pysad is not installed: reference skipped (pip install pysad)")
        else:
            from vigil.network.reference import SequentialFeatureExtractor

            start = time.perf_counter()
            X_ref = SequentialFeatureExtractor().process(packets)
            ref_extract = time.perf_counter() - start
            n_train = int(train.sum())
            grace_fm = n_train // 10
            model = KitNet(grace_feature_mapping=grace_fm, grace_anomaly_detector=n_train - grace_fm,
                           random_state=args.seed)  # fmt: skip
            ref_scores = np.empty(n)
            start = time.perf_counter()
            for i in range(n):
                if i < n_train:
                    model.fit_partial(X_ref[i])
                    ref_scores[i] = 0.0
                else:
                    ref_scores[i] = model.score_partial(X_ref[i])
            ref_model_seconds = time.perf_counter() - start
            ref_pps = n / (ref_extract + ref_model_seconds)
            result["reference_pysad_kitnet"] = {
                "extract_seconds": ref_extract,
                "train_and_score_seconds": ref_model_seconds,
                "packets_per_second": ref_pps,
                "roc_auc": roc_auc_score(y, ref_scores[~train]),
                "max_abs_feature_difference": float(np.abs(X_ref - X).max()),
            }
            result["speedup"] = vigil_pps / ref_pps
            result["speedup_including_vigil_fit"] = (n / (extract_seconds + score_seconds + fit_seconds)) / ref_pps
            print(f"reference (per-packet features + PySAD KitNet): {ref_pps:,.0f} packets/s, ROC-AUC "
                  f"{result['reference_pysad_kitnet']['roc_auc']:.4f}; speed-up ×{result['speedup']:.1f} "
                  f"(×{result['speedup_including_vigil_fit']:.1f} counting Vigil's fit)")  # fmt: skip
    result["environment"] = {"python": platform.python_version(), "numpy": np.__version__,
                             "platform": platform.platform(), "cores_used": 1}  # fmt: skip
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
