"""How the command line prints: tables for a person at a terminal, and the same rows uncut in a pipe or a
file, or as JSON (``--json``: one object per line) for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["JsonOption", "console", "show"]

JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line (for scripts)")]

_UNCUT = 1_000_000
"""Console width when the output is not a terminal: rows are never cut at 80 columns."""


def console(*, stderr: bool = False) -> Console:
    """A console that wraps nothing and, when not writing to a terminal, cuts nothing."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else _UNCUT
    return Console(stderr=stderr, soft_wrap=True, width=width, emoji=False)  # ":fire:" is what was typed


def show(
    out: Console, rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str], *, as_json: bool
) -> None:
    """``rows`` as JSON lines (every field), or as a table of ``columns`` (header → field)."""
    if as_json:
        for row in rows:
            print(json.dumps(dict(row), default=str, ensure_ascii=False))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(escape(_text(row.get(field))) for field in columns.values()))
    out.print(table)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)
