"""Progress of long steps: a tqdm bar on a terminal, plain lines when the output is a log or a pipe.

A bar redraws itself with carriage returns, which is what a person at a terminal wants and clutter in a
log file. :func:`progress` gives a tqdm bar when ``stderr`` is a terminal, and otherwise an object with the
same small interface (iteration, ``update``, ``set_postfix_str``, ``close``) that writes one plain line at
most every ``interval`` seconds, and a closing line only when it wrote any: a step that ends quickly
prints nothing.

Library code that has no ``progress`` argument of its own (the network trainer) asks :func:`reporting`,
which the command line turns on (``--quiet`` turns it off); the library itself stays silent by default.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> bar = progress(range(3), desc="scoring", unit="part", file=out, interval=0.0)
>>> [i for i in bar]
[0, 1, 2]
>>> print(out.getvalue().splitlines()[-1])
scoring: 3/3 parts, done in 0 s
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

__all__ = ["progress", "reporting", "set_reporting"]

_REPORTING = False


def set_reporting(on: bool) -> None:
    """Let library steps without a ``progress`` argument report their progress (the CLI does)."""
    global _REPORTING
    _REPORTING = bool(on)


def reporting() -> bool:
    """Whether library steps without a ``progress`` argument should report progress."""
    return _REPORTING


class _PlainProgress:
    """tqdm's interface as plain, rate-limited lines."""

    def __init__(
        self, iterable: Iterable[Any] | None, *, desc: str, unit: str, total: int | None, file: TextIO, interval: float
    ) -> None:
        self._iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)  # type: ignore[arg-type]
        self.n = 0
        self._desc, self._unit, self._file, self._interval = desc, unit, file, interval
        self._postfix = ""
        self._started = self._last = time.monotonic()
        self._wrote = False

    def _line(self, suffix: str) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        unit = self._unit if self.n == 1 and self.total in (None, 1) else f"{self._unit}s"
        postfix = f" ({self._postfix})" if self._postfix and not suffix.startswith(", done") else ""
        print(f"{self._desc}: {self.n}{of} {unit}{postfix}{suffix}", file=self._file, flush=True)
        self._wrote = True

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._line(f", {now - self._started:.0f} s")

    def set_postfix_str(self, text: str) -> None:
        self._postfix = text

    def close(self) -> None:
        if self._wrote or self._interval <= 0:
            self._line(f", done in {time.monotonic() - self._started:.0f} s")
            self._wrote = False
            self._interval = float("inf")

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self._iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(_PlainProgress):
    def _line(self, suffix: str) -> None:
        return None


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str,
    unit: str = "it",
    total: int | None = None,
    enabled: bool = True,
    file: TextIO | None = None,
    interval: float = 10.0,
) -> Any:
    """A progress reporter over ``iterable`` (or updated by hand up to ``total``); see the module docstring."""
    stream = sys.stderr if file is None else file
    if not enabled:
        return _Silent(iterable, desc=desc, unit=unit, total=total, file=stream, interval=interval)
    if getattr(stream, "isatty", lambda: False)():
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, unit=unit, total=total, file=stream, leave=False)
    return _PlainProgress(iterable, desc=desc, unit=unit, total=total, file=stream, interval=interval)
