"""Hostile files given to the commands that read files: a clear error (exit 2) or a clear note, no traceback."""

from __future__ import annotations

import pytest

from vigil.cli import main


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    pytest.importorskip("dpkt", reason="pip install 'vigil[network]' to read captures")
    folder = tmp_path_factory.mktemp("synth")
    assert main(["synth-capture", "-o", str(folder), "--train-seconds", "60", "--seed", "2"]) == 0
    model = folder / "model"
    assert main(["fit", str(folder / "benign.pcap"), "--detector", "kitnet", "-o", str(model)]) == 0
    return folder


def test_a_capture_cut_inside_a_packet_is_scored_and_says_so(synth, tmp_path, capsys):
    data = (synth / "capture.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 7])
    capsys.readouterr()
    assert main(["score", str(synth / "model"), str(cut), "-o", str(tmp_path / "s.csv")]) == 0
    assert "the capture ends inside a packet (cut short)" in capsys.readouterr().out


def test_a_header_only_capture_names_the_file(synth, tmp_path, capsys):
    empty = tmp_path / "header-only.pcap"
    empty.write_bytes((synth / "capture.pcap").read_bytes()[:24])
    capsys.readouterr()
    assert main(["fit", str(empty), "--detector", "kitnet", "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "holds no IP packet" in err and "Traceback" not in err


def test_replay_of_a_binary_file_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("paho.mqtt.client")
    binary = tmp_path / "firmware.csv"
    binary.write_bytes(bytes(range(128, 256)) * 8)
    assert main(["replay", str(binary), "--mqtt", "mqtt://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert str(binary) in err and "not a text CSV file" in err and "Traceback" not in err


def test_replay_to_an_unreachable_broker_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("paho.mqtt.client")
    table = tmp_path / "plant.csv"
    table.write_text("a,b\n1,2\n3,4\n")
    assert main(["replay", str(table), "--mqtt", "mqtt://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the MQTT broker 127.0.0.1:1" in err and "Traceback" not in err
