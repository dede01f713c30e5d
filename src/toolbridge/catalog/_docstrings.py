"""Read a tool's description and parameter descriptions from its docstring.

Google style (``Args:``), NumPy style (``Parameters`` + dashes) and Sphinx style (``:param x:``) are
understood; anything else becomes the description as written.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ParsedDocstring", "parse_docstring"]

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns|Return|Raises|Yields|Examples?|Notes?)\s*:?\s*$"
)
_GOOGLE_ARG = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_ARG = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_UNDERLINE = re.compile(r"^-{3,}\s*$")


@dataclass(frozen=True, slots=True)
class ParsedDocstring:
    description: str
    params: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> ParsedDocstring:
    if not doc:
        return ParsedDocstring("")
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for i, raw in enumerate(lines):
        line = raw.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        header = _SECTION.match(line)
        if header and (raw.rstrip().endswith(":") or _UNDERLINE.match(nxt)):
            section, current = header.group(1).lower(), None
            continue
        if _UNDERLINE.match(line):
            continue
        sphinx = _SPHINX_ARG.match(line)
        if sphinx:
            current, section = sphinx.group(1), "params"
            params[current] = sphinx.group(2).strip()
        elif line.startswith(":"):
            section, current = "other", None
        elif section is None:
            summary.append(raw.rstrip())
        elif section in ("args", "arguments", "parameters", "params"):
            current = _add_param_line(raw, line, params, current)
    return ParsedDocstring("\n".join(summary).strip(), params)


def _add_param_line(raw: str, line: str, params: dict[str, str], current: str | None) -> str | None:
    if not line:
        return current
    indented = raw.startswith((" ", "\t"))
    if " : " in line and not indented:  # NumPy: "name : type", description indented below
        name = line.split(" : ", 1)[0].strip()
        params[name] = ""
        return name
    match = _GOOGLE_ARG.match(line)
    if match and not (indented and current is not None and raw.startswith("        ")):
        name = match.group(1).lstrip("*")
        params[name] = match.group(2).strip()
        return name
    if current is not None:
        params[current] = (params[current] + " " + line).strip()
    return current
