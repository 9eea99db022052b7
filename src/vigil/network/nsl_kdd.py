"""NSL-KDD under its standard protocol: train on KDDTrain+, test on KDDTest+ and KDDTest-21.

The encoder (one-hot protocol/service/flag with an unknown bucket, ``log1p`` of the count and byte fields,
standardisation) is fitted on the training rows the model sees: all of KDDTrain+ for supervised models,
its normal rows only for anomaly detectors. The difficulty column is never a feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.data.benchmarks import dataset_path
from vigil.network.flows import NSL_KDD_ATTACK_CATEGORIES, NSL_KDD_SCHEMA, FlowTable, read_nsl_kdd

__all__ = [
    "NSL_KDD_CATEGORY_ORDER",
    "NSL_KDD_FILES",
    "NSL_KDD_LOG_COLUMNS",
    "NSL_KDD_PROTOCOL",
    "NslKddSplit",
    "attack_recall",
    "load_nsl_kdd",
    "sample_rows",
]

NSL_KDD_FILES = {"train": "KDDTrain+.txt", "test": "KDDTest+.txt", "test21": "KDDTest-21.txt"}
NSL_KDD_CATEGORY_ORDER = ("DoS", "Probe", "R2L", "U2R")
NSL_KDD_LOG_COLUMNS = tuple(
    c for c in NSL_KDD_SCHEMA.numeric if not c.endswith("_rate") and c not in ("land", "logged_in", "root_shell")
)
"""Count and byte fields, which span orders of magnitude and go through ``log1p`` before scaling."""

NSL_KDD_PROTOCOL = (
    "NSL-KDD standard split: fit on KDDTrain+ (125,973 rows; anomaly detectors on its 67,343 normal rows "
    "only), test on KDDTest+ (22,544 rows) and KDDTest-21 (11,850 rows, the rows that not all 21 reference "
    "classifiers got right). The difficulty column is dropped. protocol_type, service and flag are one-hot "
    "encoded with categories learned from the training rows plus an unknown bucket (counted); count and byte "
    "fields go through log1p; all numbers are standardised with training statistics. Thresholds and early "
    "stopping use held-out shares of the training rows only. Binary (normal vs attack) accuracy, precision, "
    "recall, F1, FAR (normal rows flagged) and ROC-AUC; recall per attack category (DoS, Probe, R2L, U2R) and "
    "per attack name, including the 17 attack names of the test set that never occur in training."
)


@dataclass(frozen=True, eq=False)
class NslKddSplit:
    """The three NSL-KDD files of the standard protocol, read and validated.

    Examples
    --------
    >>> import pandas as pd
    >>> from vigil.network.flows import FlowSchema
    >>> t = FlowTable(pd.DataFrame({"a": [0.0]}), FlowSchema(("a",), ()))
    >>> len(NslKddSplit(train=t, test=t, test21=t).test21)
    1
    """

    train: FlowTable
    test: FlowTable
    test21: FlowTable


def load_nsl_kdd(data_dir: str | PathLike[str] | None = None) -> NslKddSplit:
    """Read KDDTrain+, KDDTest+ and KDDTest-21 from ``<data_dir>/nsl_kdd/`` (default ``$VIGIL_DATA_DIR``)."""
    folder = dataset_path(data_dir, "nsl_kdd")
    tables = {key: read_nsl_kdd(dataset_path(folder, name)) for key, name in NSL_KDD_FILES.items()}
    return NslKddSplit(**tables)


def sample_rows(table: FlowTable, n: int, rng: np.random.Generator) -> FlowTable:
    """A class-stratified random sample of ``n`` rows (by attack category), for fast tests.

    Examples
    --------
    >>> import pandas as pd
    >>> from vigil.network.flows import FlowSchema
    >>> t = FlowTable(pd.DataFrame({"a": np.arange(10.0)}), FlowSchema(("a",), ()),
    ...               category=np.array(["normal"] * 6 + ["DoS"] * 4, dtype=object))
    >>> s = sample_rows(t, 5, np.random.default_rng(0))
    >>> sorted(s.category.tolist())
    ['DoS', 'DoS', 'normal', 'normal', 'normal']
    """
    assert table.category is not None
    share = min(1.0, n / len(table))
    rows = []
    for value in np.unique(table.category):
        members = np.flatnonzero(table.category == value)
        take = max(1, round(share * len(members)))
        rows.append(rng.choice(members, size=min(take, len(members)), replace=False))
    keep = np.sort(np.concatenate(rows))

    def cut(values: NDArray | None) -> NDArray | None:
        return None if values is None else values[keep]

    extra = {k: (v[keep] if isinstance(v, np.ndarray) and len(v) == len(table) else v) for k, v in table.extra.items()}
    return FlowTable(
        features=table.features.iloc[keep].reset_index(drop=True),
        schema=table.schema,
        label=cut(table.label),
        y=cut(table.y),
        category=cut(table.category),
        source=table.source,
        extra=extra,
    )


def attack_recall(
    labels: NDArray[np.object_], decisions: NDArray[np.bool_], *, seen: set[str] | frozenset[str]
) -> dict[str, dict[str, Any]]:
    """Recall of each attack name: ``{name: {"n", "detected", "recall", "category", "seen_in_training"}}``.

    Examples
    --------
    >>> labels = np.array(["normal", "neptune", "neptune", "mscan"], dtype=object)
    >>> r = attack_recall(labels, np.array([False, True, False, True]), seen={"neptune"})
    >>> r["neptune"]["recall"], r["mscan"]["seen_in_training"]
    (0.5, False)
    """
    out: dict[str, dict[str, object]] = {}
    for name in sorted(set(labels.tolist()) - {"normal"}):
        mask = labels == name
        detected = int(decisions[mask].sum())
        out[str(name)] = {
            "n": int(mask.sum()),
            "detected": detected,
            "recall": detected / int(mask.sum()),
            "category": NSL_KDD_ATTACK_CATEGORIES.get(str(name), "unknown"),
            "seen_in_training": str(name) in seen,
        }
    return out
