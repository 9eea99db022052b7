"""The command line, run in-process through ``main`` and once as the installed ``vigil`` program."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.cli import main
from vigil.registry import available_detectors

REQUIRED_BENCH_KEYS = {
    "dataset",
    "detector",
    "protocol",
    "f1",
    "far",
    "mar",
    "precision",
    "recall",
    "roc_auc",
    "pr_auc",
    "fit_seconds",
    "score_seconds",
    "rows_scored",
}


@pytest.fixture
def plant_csv(tmp_path):
    """A small coupled process with a labelled fault (flow drops while speed holds) in its last rows."""
    rng = np.random.default_rng(3)
    n = 600
    speed = 1500 + 200 * np.sin(np.arange(n) / 40) + rng.normal(0, 5, n)
    flow = 0.02 * speed + rng.normal(0, 0.3, n)
    current = 0.01 * speed + rng.normal(0, 0.2, n)
    label = np.zeros(n, dtype=int)
    label[550:570] = 1
    flow[550:570] -= 8.0
    time = pd.date_range("2026-01-01", periods=n, freq="s").strftime("%Y-%m-%dT%H:%M:%S")
    frame = pd.DataFrame({"time": time, "speed": speed, "flow": flow, "current": current, "label": label})
    path = tmp_path / "plant.csv"
    frame.to_csv(path, index=False)
    return path


def test_detectors_lists_every_registered_detector(capsys):
    assert main(["detectors"]) == 0
    out = capsys.readouterr().out
    for name, cls in available_detectors().items():
        assert name in out
        assert cls.summary in out


def test_fit_then_score_writes_one_explained_row_per_input_row(tmp_path, plant_csv, capsys):
    model = tmp_path / "model"
    argv = ["fit", str(plant_csv), "--detector", "pca", "--label", "label", "--time", "time", "-o", str(model)]
    assert main(argv) == 0
    assert "left 20 labelled anomalous rows out of training" in capsys.readouterr().err
    out = tmp_path / "scores.csv"
    assert main(["score", str(model), str(plant_csv), "-o", str(out)]) == 0
    scores = pd.read_csv(out)
    assert len(scores) == 600
    assert list(scores.columns) == ["row", "time", "score", "threshold", "anomaly", "alarm", "top_features"]
    assert scores.loc[550:569, "anomaly"].mean() > 0.9
    assert scores.loc[:549, "anomaly"].mean() < 0.05
    assert scores.loc[555, "top_features"].startswith("flow=")


def test_score_rejects_a_file_missing_a_feature_column(tmp_path, plant_csv, capsys):
    model = tmp_path / "model"
    assert (
        main(["fit", str(plant_csv), "--detector", "pca", "--label", "label", "--time", "time", "-o", str(model)]) == 0
    )
    broken = tmp_path / "broken.csv"
    pd.read_csv(plant_csv).drop(columns=["current"]).to_csv(broken, index=False)
    assert main(["score", str(model), str(broken), "-o", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert "broken.csv" in err and "current" in err and "missing" in err


def test_evaluate_splits_one_file_and_reports_far_and_mar_beside_f1(tmp_path, plant_csv, capsys):
    out = tmp_path / "result.json"
    argv = ["evaluate", "--train", str(plant_csv), "--train-rows", "400", "--label", "label", "--time", "time"]
    assert main([*argv, "--detector", "mahalanobis", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert REQUIRED_BENCH_KEYS <= set(result)
    assert result["rows_scored"] == 200
    assert result["recall"] > 0.9
    assert result["far"] < 0.05
    assert "F1" in capsys.readouterr().out


def test_evaluate_names_file_line_and_column_of_a_bad_cell(tmp_path, plant_csv, capsys):
    frame = pd.read_csv(plant_csv)
    frame["flow"] = frame["flow"].astype(object)
    frame.loc[10, "flow"] = "broken"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    argv = ["evaluate", "--train", str(bad), "--train-rows", "400", "--label", "label", "--detector", "pca"]
    assert main([*argv, "--time", "time"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "line 12" in err and "'flow'" in err and "'broken'" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "x.csv", "--detector", "no-such", "-o", "m"], "no detector named 'no-such'"),
        (["fit", "x.csv", "--detector", "pca", "--param", "n_trees=3", "-o", "m"], "no parameter 'n_trees'"),
        (["score", "no-such-model", "x.csv", "-o", "s.csv"], "not a directory holding a saved Vigil pipeline"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bench_without_data_names_the_expected_path(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["bench", "--dataset", "skab", "--detector", "pca", "--data-dir", str(missing), "--quiet"]) == 2
    assert str(missing) in capsys.readouterr().err


@pytest.mark.data
def test_bench_skab_writes_the_official_protocol_result(tmp_path, data_dir):
    out = tmp_path / "skab.json"
    argv = ["bench", "--dataset", "skab", "--detector", "pca", "--data-dir", str(data_dir), "--json", str(out)]
    assert main([*argv, "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert REQUIRED_BENCH_KEYS <= set(result)
    assert result["dataset"] == "skab"
    assert result["n_parts"] == 34
    assert result["rows_scored"] == 23801
    assert result["tp"] + result["fn"] == 12771
    assert "400" in result["protocol"]
    # Better than flagging everything on FAR, which is what makes an F1 near 0.7 meaningful.
    assert result["far"] < 0.5
    assert result["command"].startswith("vigil bench --dataset skab")


def test_installed_program_runs():
    program = shutil.which("vigil", path=str(Path(sys.executable).parent))
    if program is None:
        pytest.skip("the vigil program is not installed beside this Python")
    done = subprocess.run([program, "detectors"], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pca" in done.stdout


def test_fit_and_score_accept_packet_captures(tmp_path, capsys):
    pytest.importorskip("dpkt", reason="pip install 'vigil[network]' to read captures")
    assert main(["synth-capture", "-o", str(tmp_path / "synth"), "--train-seconds", "120", "--seed", "1"]) == 0
    model = tmp_path / "model"
    assert main(["fit", str(tmp_path / "synth" / "benign.pcap"), "--detector", "kitnet", "-o", str(model)]) == 0
    out = tmp_path / "packets.csv"
    assert main(["score", str(model), str(tmp_path / "synth" / "capture.pcap"), "-o", str(out)]) == 0
    scores = pd.read_csv(out)
    assert {"packet", "time", "score", "anomaly", "incident", "top_features"} <= set(scores.columns)
    assert scores["anomaly"].any() and not scores["anomaly"].all()
    assert "incidents:" in capsys.readouterr().out


def test_bench_lists_every_data_set_family():
    from vigil.cli import build_parser

    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    choices = next(a.choices for a in bench._actions if a.dest == "dataset")
    assert {"skab", "smd", "ton-iot", "nsl-kdd", "modbus", "mqttset", "magnetic-tile"} <= set(choices)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
@pytest.mark.filterwarnings("ignore:The inplace keyword:pandas.errors.Pandas4Warning")
def test_score_ray_scores_a_parquet_archive(tmp_path, plant_csv, capsys):
    pytest.importorskip("ray", reason="pip install 'vigil[scale]' for Ray")
    model = tmp_path / "model"
    assert (
        main(["fit", str(plant_csv), "--detector", "pca", "--label", "label", "--time", "time", "-o", str(model)]) == 0
    )
    archive = tmp_path / "archive"
    archive.mkdir()
    frame = pd.read_csv(plant_csv).drop(columns=["label"])
    for day in range(2):
        frame.iloc[day * 300 : (day + 1) * 300].to_parquet(archive / f"day={day}.parquet")
    out = tmp_path / "scores.parquet"
    argv = ["score", str(model), str(archive), "--ray", "--workers", "1", "--keep", "all", "-o", str(out)]
    assert main(argv) == 0
    assert "scored 600 rows of 2 files" in capsys.readouterr().out
    assert len(pd.read_parquet(out)) == 600


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_version_names_the_package(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"vigil {__import__('vigil').__version__}"


def test_errors_name_the_flag_the_file_and_the_reason(tmp_path, plant_csv, capsys):
    frame = pd.read_csv(plant_csv)
    semi = tmp_path / "semi.csv"
    frame.to_csv(semi, sep=";", index=False)
    assert "semi.csv: the header" in (message := _error(["fit", str(semi), "--detector", "pca", "-o", "m"], capsys))
    assert "pass --sep ';'" in message

    reversed_rows = tmp_path / "reversed.csv"
    frame.iloc[::-1].to_csv(reversed_rows, index=False)
    message = _error(["fit", str(reversed_rows), "--detector", "pca", "--time", "time", "-o", "m"], capsys)
    assert "reversed.csv: line 3" in message and "--sort-time" in message

    short = tmp_path / "short.csv"
    frame.iloc[:20].to_csv(short, index=False)
    message = _error(["fit", str(short), "--detector", "lstm-ae", "--time", "time", "-o", "m"], capsys)
    assert message.startswith("vigil fit: error: ") and "short.csv: 20 rows to fit on" in message
    assert "spans 32 rows" in message and "--param window=N" in message


def test_a_model_given_the_wrong_kind_of_data_says_which_it_needs(tmp_path, plant_csv, capsys):
    pytest.importorskip("dpkt", reason="pip install 'vigil[network]' to read captures")
    table_model = tmp_path / "table-model"
    assert (
        main(["fit", str(plant_csv), "--detector", "pca", "--time", "time", "--label", "label", "-o", str(table_model)])
        == 0
    )
    assert main(["synth-capture", "-o", str(tmp_path / "synth"), "--train-seconds", "60", "--seed", "1"]) == 0
    capture = tmp_path / "synth" / "capture.pcap"
    message = _error(["score", str(table_model), str(capture), "-o", str(tmp_path / "x.csv")], capsys)
    assert "capture.pcap is a packet capture, but" in message and "vigil fit BENIGN.pcap" in message
    packet_model = tmp_path / "packet-model"
    assert main(["fit", str(tmp_path / "synth" / "benign.pcap"), "--detector", "kitnet", "-o", str(packet_model)]) == 0
    message = _error(["score", str(packet_model), str(plant_csv), "-o", str(tmp_path / "x.csv")], capsys)
    assert "was fitted on a packet capture: give it a .pcap" in message


def test_an_image_model_scores_one_image_file_and_refuses_a_table(tmp_path, plant_csv, capsys):
    pytest.importorskip("PIL", reason="pip install 'vigil[vision]'")
    from vigil.data.examples import write_examples

    write_examples(tmp_path / "tour")
    tiles, model = tmp_path / "tour" / "tiles", tmp_path / "tile-model"
    assert main(["fit", str(tiles), "--detector", "patch-gauss", "--size", "32", "-o", str(model)]) == 0
    one = sorted((tiles / "defect").iterdir())[0]
    out = tmp_path / "one.csv"
    assert main(["score", str(model), str(one), "-o", str(out)]) == 0
    assert pd.read_csv(out)["path"].tolist() == [one.name]
    message = _error(["score", str(model), str(plant_csv), "-o", str(out)], capsys)
    assert "is an image model: give it a folder of images or one JPEG/PNG file, not" in message


def test_score_decides_with_the_models_alarm_stage(tmp_path, plant_csv, capsys):
    from vigil.pipeline import Pipeline

    model = tmp_path / "model"
    argv = ["fit", str(plant_csv), "--detector", "pca", "--label", "label", "--time", "time", "-o", str(model)]
    assert main([*argv, "--alarms", "recommended", "--on-delay", "3/5"]) == 0
    out = tmp_path / "scores.csv"
    assert main(["score", str(model), str(plant_csv), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    scores = pd.read_csv(out)
    pipe = Pipeline.load(model)
    run = pipe.decide(scores["score"].to_numpy(), timestamps=pd.to_datetime(scores["time"]).to_numpy())
    np.testing.assert_array_equal(scores["alarm"].to_numpy(), run.active)
    np.testing.assert_allclose(scores["threshold"].to_numpy(), run.thresholds)
    assert f"{int(run.raised.sum())} alarm" in printed
    # an on-delay of 3 of 5: no alarm row without at least 3 flagged rows among the last 5, unless one
    # reading is above the recommended rule's bypass level
    flagged = scores["anomaly"].to_numpy()
    policy = pipe.alarm_.policy_
    assert policy.bypass is not None
    for i in np.flatnonzero(run.raised):
        above_bypass = scores["score"][i] > policy.bypass_level(scores["threshold"][i])
        assert above_bypass or flagged[max(0, i - 4) : i + 1].sum() >= 3
    assert scores.loc[555:569, "alarm"].all()


def test_fit_refuses_a_supervised_detector_and_says_where_it_trains(tmp_path, plant_csv, capsys):
    argv = ["fit", str(plant_csv), "--label", "label", "--detector", "mlp", "-o", str(tmp_path / "m")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--detector mlp is supervised" in err and "vigil bench --dataset nsl-kdd --detector mlp" in err
    assert not (tmp_path / "m").exists()
