"""Tools served by examples/quickstart.yaml: enough to try every surface without any external account.

Notes are kept in ``./.toolbridge/notes.json`` (relative to the working directory), so every surface and
every process sees the same notes.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import operator
import os
import threading
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

NOTES_FILE = Path(".toolbridge") / "notes.json"
_lock = threading.Lock()


class Note(TypedDict):
    id: str
    text: str
    tags: list[str]
    created_at: str


def now(timezone: str = "UTC") -> dict[str, str]:
    """The current date and time.

    Args:
        timezone: IANA time zone name, for example 'Europe/Paris' or 'America/New_York'.
    """
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}; use an IANA name such as 'Europe/Paris'") from None
    moment = dt.datetime.now(zone)
    return {
        "iso": moment.isoformat(timespec="seconds"),
        "weekday": moment.strftime("%A"),
        "timezone": timezone,
    }


_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression exactly as written (+ - * / // % ** and parentheses).

    Args:
        expression: for example '(17 + 4) * 3 / 7'.
    """
    if len(expression) > 200:
        raise ValueError("the expression is longer than 200 characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ValueError(f"{expression!r} is not an arithmetic expression") from None
    return float(_eval(tree.body))


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponents above 100 are not allowed")
        return float(_OPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return float(_OPS[type(node.op)](_eval(node.operand)))
    raise ValueError("only numbers, + - * / // % ** and parentheses are allowed")


def text_stats(text: str) -> dict[str, int]:
    """Count the characters, words and lines of a text.

    Args:
        text: the text to measure.
    """
    return {"characters": len(text), "words": len(text.split()), "lines": text.count("\n") + 1 if text else 0}


def _load() -> list[Note]:
    if not NOTES_FILE.exists():
        return []
    return list(json.loads(NOTES_FILE.read_text(encoding="utf-8")))


def _save(notes: list[Note]) -> None:
    NOTES_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = NOTES_FILE.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(notes, indent=1), encoding="utf-8")
    tmp.replace(NOTES_FILE)


def add_note(text: str, tags: list[str] | None = None) -> Note:
    """Save a note.

    Args:
        text: the note's text (up to 10,000 characters).
        tags: optional labels for finding it again.
    """
    if not text.strip() or len(text) > 10_000:
        raise ValueError("a note needs 1 to 10,000 characters of text")
    note: Note = {
        "id": uuid.uuid4().hex[:12],
        "text": text,
        "tags": tags or [],
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    with _lock:
        _save([*_load(), note])
    return note


def list_notes(tag: str | None = None, contains: str | None = None, limit: int = 20) -> list[Note]:
    """List saved notes, newest first.

    Args:
        tag: only notes with this tag.
        contains: only notes whose text contains this (case-insensitive).
        limit: at most this many notes.
    """
    with _lock:
        notes = _load()
    found = [
        n
        for n in reversed(notes)
        if (tag is None or tag in n["tags"]) and (contains is None or contains.lower() in n["text"].lower())
    ]
    return found[: max(0, limit)]


def delete_note(note_id: str) -> dict[str, str]:
    """Delete a note for good.

    Args:
        note_id: the id returned by add_note or list_notes.
    """
    with _lock:
        notes = _load()
        kept = [n for n in notes if n["id"] != note_id]
        if len(kept) == len(notes):
            raise KeyError(f"no note with id {note_id!r}; list_notes shows the ids")
        _save(kept)
    return {"deleted": note_id}
