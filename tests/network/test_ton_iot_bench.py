"""TON_IoT with recall per attack type (needs the data)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.data


def test_per_attack_type_recall_is_reported(data_dir: Path) -> None:
    from vigil.network.ton_iot_bench import ton_iot_bench

    result = ton_iot_bench("pca", data_dir=data_dir, devices=["fridge"])
    types = result["per_attack_type"]
    assert set(types) >= {"ddos", "password", "xss"} and "normal" not in types
    assert all(0.0 <= v["recall"] <= 1.0 and v["n"] > 0 for v in types.values())
    assert result["per_part"]["fridge"]["per_attack_type_recall"].keys() == types.keys()
    for key in ("f1", "far", "mar", "recall", "accuracy", "per_category_recall"):
        assert key in result
