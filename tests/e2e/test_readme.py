"""The README runs as printed: every ``$`` command of its ```console blocks, in order, in one shell.

The blocks run top to bottom in a fresh temporary folder, in one bash process (so ``cd``, ``export`` and
background jobs carry over from one command to the next), against the real services: the MQTT broker on
127.0.0.1:1883, the Vigil service the tour starts, the benchmark data under ``VIGIL_DATA_DIR``.

A command passes when it exits with 0 and its output (stdout and stderr together) matches the lines the
README shows under it. The rule for matching:

- a shown line ``...`` stands for any number of lines, so the README shows only the lines that matter;
- every other shown line must be there, in that order and with nothing in between, after both sides are
  normalised: durations after "in" (``done in 1.5 s``), rates (``(981/s)``), model version hashes
  (``pca-85dc2d6215``) and the ``fit / score seconds`` figures are masked, numbers printed with six or
  more decimals are compared to 5 significant digits (their last digits differ from one CPU's arithmetic
  to another's); trailing blanks are ignored;
- progress lines (``training: 3/50 epochs, 10 s``: written only when a step outlasts 10 s, so their number
  depends on the machine) are dropped from the output before comparing.

What the test changes, and why: ``make demo`` runs as the Makefile's own ``vigil demo`` recipe (the install
itself is what ``make test`` already did) and ``. .venv/bin/activate`` is skipped (this interpreter's
``bin`` is first on the path); the HTTP port 8080 and the MQTT topic root ``plant/`` are replaced by a free
port, a topic and an MQTT client id of this run, so that concurrent runs on one broker do not see each
other's messages. A
block that names ``--dataset`` is skipped without ``VIGIL_DATA_DIR``. To update the README after a
change of output, set ``VIGIL_README_TRANSCRIPT=FILE``: the test writes every command with what it printed
there.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 300.0

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)
    block: int = 0


def console_commands(markdown: str) -> list[Command]:
    """The ``$`` commands of every ```console block, with the output lines shown under each."""
    commands: list[Command] = []
    for block, body in enumerate(re.findall(r"^```console\n(.*?)^```", markdown, flags=re.S | re.M)):
        current: Command | None = None
        continued = False
        for line in body.splitlines():
            if continued and current is not None:
                current.text += "\n" + line
            elif line.startswith("$ "):
                current = Command(line[2:], block=block)
                commands.append(current)
            elif current is not None:
                current.expected.append(line)
            continued = line.endswith("\\") and current is not None and not current.expected
    return commands


_MASKS = (
    (re.compile(r"\bin \d+(?:\.\d+)? s\b"), "in <duration>"),
    (re.compile(r"\(\d+(?:\.\d+)?/s\)"), "(<rate>/s)"),
    (re.compile(r"\b([a-z][a-z0-9+]*(?:-[a-z0-9+]+)*)-[0-9a-f]{10}\b"), r"\1-<version>"),
    (re.compile(r"(fit / score seconds\s+)\S+ / \S+"), r"\1<seconds>"),
)
_PROGRESS = re.compile(r"^[^:\n]+: \d+(?:/\d+)? \w+(?: \(.*\))?, (?:done in )?\d+ s$")


_LONG_NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d{6,}(?:e[-+]?\d+)?")


def normalise(line: str) -> str:
    for pattern, replacement in _MASKS:
        line = pattern.sub(replacement, line)
    line = _LONG_NUMBER.sub(lambda m: f"{float(m.group()):.5g}", line)
    return line.rstrip()


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` fits ``expected``, where a line ``...`` stands for any run of lines (see above)."""
    want = [normalise(line) for line in expected]
    have = [normalise(line) for line in actual if not _PROGRESS.match(line)]
    # reachable[j]: the expected lines so far can match exactly the first j actual lines
    reachable = [True] + [False] * len(have)
    for line in want:
        if line == "...":
            for j in range(1, len(have) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [reachable[j - 1] and have[j - 1] == line for j in range(1, len(have) + 1)]
    return reachable[len(have)]


def test_the_matching_rule() -> None:
    shown = ["fitted pca on 10 rows; model pca-85dc2d6215 saved", "...", "done in 1.5 s"]
    assert matches(shown, ["fitted pca on 10 rows; model pca-0123456789 saved", "x", "y", "done in 20 s"])
    assert matches(shown, ["fitted pca on 10 rows; model pca-0123456789 saved", "done in 0.1 s"])
    assert not matches(shown, ["fitted pca on 11 rows; model pca-0123456789 saved", "done in 1.5 s"])
    assert not matches(["a", "b"], ["a", "x", "b"])  # only "..." skips lines
    assert matches(["a", "b"], ["a", "training: 3/50 epochs (validation loss 0.1), 10 s", "b"])
    assert matches(["published 24 messages in 2.4 s (981/s)"], ["published 24 messages in 0.1 s (240/s)"])
    assert not matches(["published 24 messages in 2.4 s (981/s)"], ["published 25 messages in 2.4 s (981/s)"])
    assert not matches(["a"], [])
    assert matches(['"score": 26.180084235625046,'], ['"score": 26.180082424908317,'])
    assert not matches(['"score": 26.180084235625046,'], ['"score": 26.190084235625046,'])
    assert not matches(["threshold 2.331"], ["threshold 2.332"])  # short figures are compared as printed
    commands = console_commands("```console\n$ one \\\n    --two\nout\n$ three\n```\n```bash\n$ no\n```\n")
    assert [(c.text, c.expected) for c in commands] == [("one \\\n    --two", ["out"]), ("three", [])]


class Shell:
    """One bash process: commands run one after the other and share directory, variables and jobs."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def run(self, command: str, timeout: float) -> tuple[int | None, list[str]]:
        """Run ``command`` (its standard input is /dev/null); return its exit code (None on a timeout) and output."""
        marker = f"__readme_{uuid.uuid4().hex}__"
        assert self.process.stdin is not None
        self.process.stdin.write(f'{{ {command}\n}} </dev/null\necho "{marker}$?"\n')
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                return None, output
            if line is None:
                return None, output
            if marker in line:
                before, _, code = line.partition(marker)
                if before:
                    output.append(before)  # the command's last line had no newline
                return int(code), output
            output.append(line)

    def close(self) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("kill $(jobs -p) 2>/dev/null; wait; exit\n")
            self.process.stdin.flush()
            self.process.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _broker_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=2).close()
    except OSError:
        return False
    return True


def _demo_recipe() -> str:
    """The command ``make demo`` runs after installing (the Makefile's ``$(BIN)/vigil demo ...`` line)."""
    recipe = re.search(r"^demo:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert recipe, "the Makefile has no demo recipe"
    return recipe.group(1).replace("$(BIN)/", "")


def test_the_readme_runs_as_printed(tmp_path: Path) -> None:
    if not _broker_up():
        pytest.skip("the tour's service part needs the MQTT broker at 127.0.0.1:1883")
    commands = console_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) > 20, "the README's console blocks were not found"
    have_data = bool(os.environ.get("VIGIL_DATA_DIR"))
    skipped_blocks = {c.block for c in commands if "--dataset" in c.text and not have_data}
    port, topic_root = str(_free_port()), f"vigil-readme-{uuid.uuid4().hex[:8]}/plant/"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "dumb", "NO_COLOR": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    shell = Shell(tmp_path, env)
    failures, ran, transcript = [], 0, []
    try:
        for command in commands:
            text = command.text
            if command.block in skipped_blocks or text.startswith(". .venv/bin/activate"):
                continue
            if text == "make demo":
                text = _demo_recipe()
            text = text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("plant/", topic_root)
            if text.startswith("vigil serve ") and "--http" not in text:
                isolated = f"--http 127.0.0.1:{port} --client-id vigil-readme-{uuid.uuid4().hex[:8]}"
                text = text.replace("vigil serve ", f"vigil serve {isolated} ", 1)
            code, output = shell.run(text, COMMAND_TIMEOUT)
            ran += 1
            transcript += [f"$ {command.text}", *output, f"(exit code {code})", ""]
            if code != 0 or not matches(command.expected, output):
                failures.append(
                    f"$ {command.text}\n(exit code {code})\n--- shown in the README:\n"
                    + "\n".join(command.expected)
                    + "\n--- printed:\n"
                    + "\n".join(output)
                )
    finally:
        shell.close()
        if os.environ.get("VIGIL_README_TRANSCRIPT"):
            Path(os.environ["VIGIL_README_TRANSCRIPT"]).write_text("\n".join(transcript), encoding="utf-8")
    assert ran > 20
    assert not failures, f"{len(failures)} README command(s) do not run as printed:\n\n" + "\n\n".join(failures)
