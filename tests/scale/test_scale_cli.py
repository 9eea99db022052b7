"""The scale-out commands' argument handling (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.scale.cli import main


def test_worker_without_a_model_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("confluent_kafka", reason="the worker needs confluent-kafka: pip install 'vigil[scale]'")
    code = main(
        ["worker", "--kafka", "127.0.0.1:9", "--topic", "t", "--group", "g", "--registry", str(tmp_path / "none")]
    )
    assert code == 2
    assert "give --model MODEL_DIR" in capsys.readouterr().err


def test_kafka_options_must_be_key_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--kafka", "k:1", "--topic", "t", "--group", "g", "--kafka-option", "novalue"])
    assert exit_info.value.code == 2
    assert "KEY=VALUE" in capsys.readouterr().err
