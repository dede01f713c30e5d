"""The "archive" provider of examples/router.yaml: a stand-in for a remote archive service.

It keeps each text in ``./.toolbridge/archive/<folder>/`` and, while ``ARCHIVE_DOWN=1`` is set, answers
as a service that is down does (HTTP 503), so the router's fallback can be seen without any account.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from toolbridge.errors import UpstreamStatusError

ARCHIVE = Path(".toolbridge") / "archive"


def archive_save(body: str, folder: str = "inbox") -> dict[str, str]:
    """Archive a text in a folder.

    Args:
        body: the text to keep.
        folder: the archive folder, for example 'inbox' or 'ideas'.
    """
    if os.environ.get("ARCHIVE_DOWN") == "1":
        raise UpstreamStatusError("the archive is down for maintenance", upstream_status=503)
    if not folder.replace("-", "").replace("_", "").isalnum():
        raise ValueError("a folder name has letters, digits, '-' and '_' only")
    target = ARCHIVE / folder
    target.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex[:12]
    (target / f"{name}.txt").write_text(body, encoding="utf-8")
    return {"id": name, "folder": folder}
