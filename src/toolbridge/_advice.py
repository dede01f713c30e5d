"""What an agent reads when a call fails: what went wrong, what the upstream said, when to retry, the fix.

Surfaces that answer in text (MCP tool errors, the CLI) use :func:`error_text`; the REST surface sends
the same facts as members of its problem document (``upstream_body``, ``retry_after``, ``hint``).
"""

from __future__ import annotations

import json
import math
import re

from toolbridge.errors import ToolbridgeError, UpstreamStatusError

__all__ = ["error_text"]

_SPACE = re.compile(r"\s+")
_BODY_CHARS = 600


def error_text(exc: ToolbridgeError) -> str:
    """The error as lines of text: ``title: message``, the upstream's error body (trimmed; secrets were
    masked by the hub), the wait before retrying in seconds, and the hint."""
    lines = [f"{exc.title}: {exc.message}"]
    if isinstance(exc, UpstreamStatusError) and exc.body:
        lines.append(f"upstream said: {_compact(exc.body)}")
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        lines.append(f"retry after: {max(0.0, math.ceil(retry_after * 10) / 10):g} s")
    if exc.hint:
        lines.append(f"hint: {exc.hint}")
    return "\n".join(lines)


def _compact(body: str) -> str:
    """A body on one line: JSON re-serialised without spaces, other text with its whitespace collapsed."""
    try:
        text = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        text = _SPACE.sub(" ", body).strip()
    return text if len(text) <= _BODY_CHARS else text[: _BODY_CHARS - 1] + "…"
