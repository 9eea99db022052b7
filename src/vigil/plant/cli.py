"""``vigil config check PLANT.toml`` and ``vigil config init [PLANT.toml]``: the plant file's commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vigil.errors import InvalidInputError
from vigil.plant.example import EXAMPLE
from vigil.plant.schema import check_plant

__all__ = ["add_commands"]


def _cmd_check(args: argparse.Namespace) -> int:
    problems = check_plant(args.file)
    for problem in problems:
        print(problem.format(args.file))
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)")
        return 2
    print(f"{args.file}: ok")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.exists() and not args.force:
        msg = f"{path} exists; pass --force to overwrite it"
        raise InvalidInputError(msg)
    path.write_text(EXAMPLE, encoding="utf-8")
    print(f"wrote {path}: edit it, then run `vigil config check {path}`")
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``config`` (``check``, ``init``) to the ``vigil`` command's sub-parsers."""
    p = subparsers.add_parser("config", help="check or write a plant file (assets, sensors, sources, models)")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = sub.add_parser("check", help="report every problem of a plant file, with its line")
    q.add_argument("file", help="the plant file (TOML)")
    q.set_defaults(func=_cmd_check)
    q = sub.add_parser("init", help="write a commented example plant file")
    q.add_argument("file", nargs="?", default="plant.toml", help="where to write it (plant.toml)")
    q.add_argument("--force", action="store_true", help="overwrite an existing file")
    q.set_defaults(func=_cmd_init)
