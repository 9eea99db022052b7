"""`vigil fit` and `vigil score` on folders of images: the round trip a camera user makes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from vigil.cli import main
from vigil.vision.synthetic import make_synthetic_set

pytestmark = pytest.mark.torch


def _write(folder, names, images):
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image).save(folder / name)


@pytest.fixture
def plant(tmp_path):
    good = make_synthetic_set(40, 0, size=48, seed=1).images
    _write(tmp_path / "train" / "good", [f"g{i:02d}.png" for i in range(40)], good)
    _write(tmp_path / "train" / "defect" / "hole", ["d0.png"], make_synthetic_set(0, 1, size=48, seed=2).images)
    fresh = make_synthetic_set(6, 6, size=48, kinds=("hole", "cutpaste"), seed=3)
    names = [f"{'ok' if not bad else 'bad'}{i:02d}.png" for i, bad in enumerate(fresh.labels)]
    _write(tmp_path / "line", names, fresh.images)
    (tmp_path / "line" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return tmp_path


def test_fit_on_good_images_then_score_a_folder_with_a_corrupt_frame(plant, capsys):
    model, scores, maps = plant / "model", plant / "scores.csv", plant / "maps"
    assert main(["fit", str(plant / "train"), "--detector", "patch-gauss", "--param", "grid=8", "--size", "48",
                 "-o", str(model)]) == 0  # fmt: skip
    assert "fitted patch-gauss on 40 images" in capsys.readouterr().out  # defect/ is left out
    assert json.loads((model / "input.json").read_text())["size"] == 48

    assert main(["score", str(model), str(plant / "line"), "-o", str(scores), "--maps", str(maps)]) == 0
    out = capsys.readouterr().out
    assert "scored 12 images" in out and "1 could not be read" in out
    with scores.open() as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 13
    assert rows["broken.jpg"]["score"] == "" and "broken.jpg" in rows["broken.jpg"]["error"]
    bad = [float(r["score"]) for p, r in rows.items() if p.startswith("bad")]
    ok = [float(r["score"]) for p, r in rows.items() if p.startswith("ok")]
    assert np.median(bad) > max(ok)
    flagged = sorted(p for p, r in rows.items() if r["anomaly"] == "True")
    assert sum(p.startswith("bad") for p in flagged) > len(flagged) / 2  # a 1 % training threshold: few false alarms
    assert sorted(f.name for f in maps.iterdir()) == flagged


def test_image_fit_errors_name_the_problem(plant, capsys):
    empty = plant / "empty"
    empty.mkdir()
    assert main(["fit", str(empty), "--detector", "patch-gauss", "-o", str(plant / "m")]) == 2
    assert "no JPEG or PNG images" in capsys.readouterr().err
    assert main(["fit", str(plant / "train"), "--detector", "cnn-classifier", "-o", str(plant / "m")]) == 2
    assert "supervised" in capsys.readouterr().err
    assert main(["fit", str(plant / "train"), "--detector", "patch-gauss", "--param", "grdi=8",
                 "-o", str(plant / "m")]) == 2  # fmt: skip
    assert "no parameter 'grdi'" in capsys.readouterr().err
    (plant / "train" / "good" / "zz.png").write_bytes(b"not an image")
    assert main(["fit", str(plant / "train"), "--detector", "patch-gauss", "-o", str(plant / "m")]) == 2
    assert "zz.png" in capsys.readouterr().err


def test_scoring_in_small_chunks_gives_the_same_rows(plant, monkeypatch):
    from vigil.vision import folders as image_cli

    model = plant / "model"
    image_cli.fit_image_folder(plant / "train", "patch-gauss", model, params={"grid": 8}, size=48)
    image_cli.score_image_folder(model, plant / "line", plant / "whole.csv", maps=plant / "maps-whole")
    monkeypatch.setattr(image_cli, "_CHUNK", 4)  # 13 files: four chunks, the corrupt one among them
    image_cli.score_image_folder(model, plant / "line", plant / "chunked.csv", maps=plant / "maps-chunked")
    assert (plant / "chunked.csv").read_text() == (plant / "whole.csv").read_text()
    assert sorted(p.name for p in (plant / "maps-chunked").iterdir()) == sorted(
        p.name for p in (plant / "maps-whole").iterdir()
    )


def test_a_decompression_bomb_in_a_scored_folder_is_an_error_cell(plant, capsys):
    from test_io import bomb_png

    model, scores = plant / "model", plant / "scores.csv"
    assert main(["fit", str(plant / "train"), "--detector", "patch-gauss", "--param", "grid=8", "--size", "48",
                 "-o", str(model)]) == 0  # fmt: skip
    (plant / "line" / "bomb.png").write_bytes(bomb_png())
    assert main(["score", str(model), str(plant / "line"), "-o", str(scores)]) == 0
    assert "2 could not be read" in capsys.readouterr().out
    with scores.open() as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    assert rows["bomb.png"]["score"] == "" and "more pixels than the limit" in rows["bomb.png"]["error"]


def test_score_takes_one_image_file_as_well_as_a_folder(plant, capsys):
    model, one = plant / "model", plant / "one.csv"
    assert main(["fit", str(plant / "train"), "--detector", "patch-gauss", "--param", "grid=8", "--size", "48",
                 "-o", str(model)]) == 0  # fmt: skip
    assert main(["score", str(model), str(plant / "line"), "-o", str(plant / "all.csv")]) == 0
    with (plant / "all.csv").open() as handle:
        folder_rows = {row["path"]: row for row in csv.DictReader(handle)}
    capsys.readouterr()
    single = plant / "line" / "bad07.png"
    assert main(["score", str(model), str(single), "-o", str(one), "--maps", str(plant / "m")]) == 0
    assert "scored 1 images" in capsys.readouterr().out
    with one.open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row == folder_rows["bad07.png"]  # the same row as when its folder was scored
    assert row["anomaly"] == "True" and [p.name for p in (plant / "m").iterdir()] == ["bad07.png"]
    # A file that is not an image, and a path that does not exist, are errors that say what to give.
    (plant / "notes.txt").write_text("x")
    assert main(["score", str(model), str(plant / "notes.txt"), "-o", str(one)]) == 2
    assert "one JPEG/PNG file" in capsys.readouterr().err
    assert main(["score", str(model), str(plant / "nowhere.png"), "-o", str(one)]) == 2
    assert "does not exist" in capsys.readouterr().err
