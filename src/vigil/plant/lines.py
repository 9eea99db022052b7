"""Where each key of a TOML text is written: the line numbers that :mod:`tomllib` does not give.

:func:`key_lines` maps every key path, such as ``("assets", "pump-1", "map", "temp_c")``, to the line that
defines it: a ``[table]`` or ``[[array of tables]]`` header (arrays of tables add the element's index), a
``key = value`` line, or the line of an inline table that holds the key. It reads the text line by line
and understands what plant files use (bare, quoted and dotted keys, inline tables, multi-line arrays and
strings); the text has already been parsed by :mod:`tomllib`, so it is valid TOML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["key_lines", "line_of"]

_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=\s*(.*)$")
_INLINE_KEY = re.compile(rf"(?:^|[{{,])\s*({_DOTTED})\s*=")
_STRINGS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _parts(dotted: str) -> tuple[str, ...]:
    out = []
    for match in re.finditer(_KEY, dotted):
        key = match.group(0)
        if key[0] in "\"'":
            key = key[1:-1]
        out.append(key)
    return tuple(out)


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Every key path of a TOML text and the (1-based) line that defines it.

    Examples
    --------
    >>> lines = key_lines('[assets.p1]\\ntype = "pump"\\nmap = { t = "ns=2;i=1" }\\n[[sinks.webhook]]\\nurl = "x"\\n')
    >>> lines[("assets", "p1", "type")], lines[("assets", "p1", "map", "t")], lines[("sinks", "webhook", 0, "url")]
    (2, 3, 5)
    """
    found: dict[tuple[str | int, ...], int] = {}
    arrays: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    depth = 0  # open brackets and braces carried over from previous lines (multi-line arrays)
    in_multiline: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_multiline is not None:
            end = line.find(in_multiline)
            if end < 0:
                continue
            line = line[end + 3 :]
            in_multiline = None
        bare = _STRINGS.sub('""', line)
        for quote in ('"""', "'''"):
            if bare.count(quote) % 2 == 1:
                in_multiline = quote
                bare = bare[: bare.index(quote)]
        bare = bare.split("#", 1)[0]
        if depth == 0:
            # Keys are read from the line as written (quoted keys hold spaces and dots); values from ``bare``.
            header = _HEADER.match(line)
            if header is not None:
                path: tuple[str | int, ...] = _parts(header.group(2))
                if header.group(1) == "[[":
                    index = arrays.get(path, -1) + 1
                    arrays[path] = index
                    found.setdefault(path, number)
                    path = (*path, index)
                table = path
                found.setdefault(path, number)
                continue
            assign = _ASSIGN.match(line)
            if assign is not None:
                key = (*table, *_parts(assign.group(1)))
                found.setdefault(key, number)
                bare_assign = _ASSIGN.match(bare)
                value = bare_assign.group(2) if bare_assign else ""
                if value.lstrip().startswith("{"):
                    inner = value.lstrip()[1:]
                    for match in _INLINE_KEY.finditer(inner):
                        found.setdefault((*key, *_parts(match.group(1))), number)
        depth += bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}")
        depth = max(depth, 0)
    return found


def line_of(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    """The line of ``path``, or of its nearest enclosing key that has one; None when nothing encloses it.

    Examples
    --------
    >>> line_of({("a",): 1, ("a", "b"): 2}, ("a", "b", "c"))
    2
    >>> line_of({("a", "b"): 3, ("a", "c"): 5}, ("a",))
    3
    """
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    # A table only ever named inside longer headers ([a.b] names a): its first line.
    inside = [line for key, line in lines.items() if key[: len(path)] == path]
    return min(inside) if inside and path else None
