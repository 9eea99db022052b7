"""Progress reporting: plain lines without carriage returns off a terminal, nothing for quick steps."""

from __future__ import annotations

import io

from vigil.progress import progress, reporting, set_reporting


def test_off_a_terminal_progress_is_plain_lines() -> None:
    out = io.StringIO()
    for _ in progress(range(4), desc="evaluating", unit="part", file=out, interval=0.0):
        pass
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "evaluating: 1/4 parts, 0 s",
        "evaluating: 2/4 parts, 0 s",
        "evaluating: 3/4 parts, 0 s",
        "evaluating: 4/4 parts, 0 s",
        "evaluating: 4/4 parts, done in 0 s",
    ]


def test_a_quick_step_prints_nothing_and_a_disabled_one_never() -> None:
    out = io.StringIO()
    bar = progress(total=3, desc="tuning", unit="trial", file=out)  # the default: a line every 10 s at most
    for _ in range(3):
        bar.update(1)
    bar.close()
    for _ in progress(range(3), desc="quiet", file=out, enabled=False, interval=0.0):
        pass
    assert out.getvalue() == ""


def test_the_postfix_names_what_is_being_done() -> None:
    out = io.StringIO()
    bar = progress(total=2, desc="training", unit="epoch", file=out, interval=0.0)
    bar.set_postfix_str("validation loss 0.5")
    bar.update(1)
    assert out.getvalue() == "training: 1/2 epochs (validation loss 0.5), 0 s\n"


def test_the_command_line_turns_reporting_on_only_while_a_command_runs(tmp_path) -> None:
    from vigil.cli import main

    assert not reporting()
    assert main(["detectors"]) == 0
    assert not reporting()
    set_reporting(True)
    set_reporting(False)
    assert not reporting()
