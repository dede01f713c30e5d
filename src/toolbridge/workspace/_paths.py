"""Workspace paths: one normal form, no way out of the workspace.

A path is absolute inside its workspace (``/reports/q3.csv``), NFC-normalized so that Unicode twins name
the same file (and the same lease), with single slashes and no trailing slash. ``.`` segments are
dropped; ``..``, NUL and other control characters, backslashes and over-long names are refused — there is
no filesystem under a path, so a symlink cannot lead anywhere either.
"""

from __future__ import annotations

import unicodedata

from toolbridge.errors import BadRequest

__all__ = ["MAX_PATH", "ROOT", "normalize_path", "parent_of", "split_name"]

ROOT = "/"
MAX_PATH = 1024
_MAX_SEGMENT = 255


def normalize_path(raw: str, *, allow_root: bool = False) -> str:
    """The canonical form of ``raw``, or :class:`BadRequest` saying what is wrong with it."""
    if not isinstance(raw, str) or not raw.strip():
        raise _bad(raw, "is empty")
    text = unicodedata.normalize("NFC", raw)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise _bad(raw, "contains a NUL or control character")
    if "\\" in text:
        raise _bad(raw, "contains a backslash")
    segments = [s for s in text.split("/") if s not in ("", ".")]
    if any(s == ".." for s in segments):
        raise _bad(raw, "contains '..'")
    if any(len(s.encode()) > _MAX_SEGMENT for s in segments):
        raise _bad(raw, f"has a name longer than {_MAX_SEGMENT} bytes")
    path = "/" + "/".join(segments)
    if len(path.encode()) > MAX_PATH:
        raise _bad(raw, f"is longer than {MAX_PATH} bytes")
    if path == ROOT and not allow_root:
        raise _bad(raw, "names the workspace root, not a file")
    return path


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or ROOT


def split_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _bad(raw: object, why: str) -> BadRequest:
    return BadRequest(
        f"path {raw!r} {why}",
        hint="use a path inside the workspace such as '/reports/q3.csv' ('/' separated, no '..')",
    )
