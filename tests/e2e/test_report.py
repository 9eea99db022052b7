"""vigil report: a self-contained page that renders in headless Chromium without console errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(4)
    n = 1500
    base = rng.normal(size=(n, 1))
    frame = pd.DataFrame(np.hstack([base, base, -base]) + 0.1 * rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame["label"] = 0
    frame.loc[1200:1260, "b"] += 2.0
    frame.loc[1200:1260, "label"] = 1
    frame.to_csv(folder / "plant.csv", index=False)
    common = ["--train", str(folder / "plant.csv"), "--label", "label", "--quiet"]
    assert (
        main(
            [
                "evaluate",
                *common,
                "--train-rows",
                "900",
                "--detector",
                "pca",
                "--json",
                str(folder / "pca.json"),
                "--scores",
                str(folder / "pca.npz"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                *common,
                "--train-rows",
                "900",
                "--detector",
                "mahalanobis",
                "--json",
                str(folder / "maha.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "tune",
                *common,
                "--test",
                str(folder / "plant.csv"),
                "--detector",
                "pca",
                "--trials",
                "3",
                "--json",
                str(folder / "tune.json"),
            ]
        )
        == 0
    )
    out = folder / "report.html"
    assert (
        main(["report", str(folder / "pca.json"), str(folder / "maha.json"), str(folder / "tune.json"), "-o", str(out)])
        == 0
    )
    return out


def test_report_has_the_expected_sections(results):
    page = results.read_text()
    for text in (
        "Comparison",
        "plant.csv · pca",
        "plant.csv · mahalanobis",
        "Tuning · pca",
        "point-adjusted",
        "oracle",
        "Versions",
        "vigil evaluate --train",
    ):
        assert text in page, text
    assert page.count("data:image/png;base64,") == 2  # ROC/PR curves and timelines, for the run with scores
    assert "http://" not in page and "https://" not in page


def test_report_renders_in_chromium_without_console_errors(results):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is needed to drive Chromium")
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(results.as_uri())
            assert page.title() == "Vigil evaluation report"
            assert page.locator("h2").count() >= 4
            images = page.locator("img")
            assert images.count() == 2
            assert all(images.nth(i).evaluate("img => img.naturalWidth > 100") for i in range(images.count()))
        finally:
            browser.close()
    assert errors == []


def test_report_rejects_files_that_are_not_results(tmp_path, capsys):
    bogus = tmp_path / "x.json"
    bogus.write_text(json.dumps({"hello": 1}))
    assert main(["report", str(bogus), "-o", str(tmp_path / "r.html")]) == 2
    assert "not a result" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json"), "-o", str(tmp_path / "r.html")]) == 2


def test_timelines_draw_their_alarm_ticks_and_say_how_many_parts_they_show() -> None:
    import matplotlib.pyplot as plt

    from vigil.evaluation.result_report import _timelines
    from vigil.evaluation.scores_file import PartScores

    rng = np.random.default_rng(0)
    parts = []
    for k in range(8):
        scores = rng.uniform(0.1, 0.9, 200)
        scores[100:110] = 5.0  # ten alarms per part
        parts.append(PartScores(f"part{k}", scores, np.arange(200) >= 100, 1.0))
    fig = _timelines(parts, "demo")
    try:
        assert "the first 6 of 8 parts" in fig._suptitle.get_text()
        for ax in fig.axes:
            ticks = [line for line in ax.get_lines() if line.get_marker() == "|"]
            assert len(ticks) == 1 and len(ticks[0].get_xdata()) == 10
            fig.canvas.draw()
            (_, y0), (_, y1) = ax.bbox.get_points()
            drawn = ticks[0].get_transform().transform(np.column_stack(ticks[0].get_data()))
            assert ((drawn[:, 1] >= y0) & (drawn[:, 1] <= y1)).all()  # inside the plot, not off the log axis
    finally:
        plt.close(fig)
