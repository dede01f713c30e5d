"""Tools behind examples/patterns.yaml: a stand-in media service whose effects are kept in
``./.toolbridge/media.json`` (relative to the working directory), so every process sees the same state.

Each ``create_*`` adds an object and returns it; each ``delete_*`` removes one (the pipeline's
compensations). ``create_notification`` refuses a text that contains "fail" — a way to watch a run undo
its earlier steps.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

STATE = Path(".toolbridge") / "media.json"
_lock = threading.Lock()


class Created(TypedDict):
    id: int
    kind: str
    bytes: int


def _change(kind: str, add: dict[str, Any] | None = None, remove: int | None = None) -> Created:
    with _lock:
        state = json.loads(STATE.read_text()) if STATE.exists() else {"next": 0, "live": {}}
        if add is not None:
            state["next"] += 1
            item = {"id": state["next"], "kind": kind, "bytes": 1000 + state["next"], **add}
            state["live"][str(item["id"])] = item
        else:
            item = state["live"].pop(str(remove), {"id": remove, "kind": kind, "bytes": 0})
        STATE.parent.mkdir(parents=True, exist_ok=True)
        STATE.write_text(json.dumps(state, indent=1))
    return {"id": int(item["id"]), "kind": kind, "bytes": int(item["bytes"])}


def live() -> dict[str, int]:
    """How many objects of each kind exist now."""
    state = json.loads(STATE.read_text()) if STATE.exists() else {"live": {}}
    counts: dict[str, int] = {}
    for item in state["live"].values():
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    return counts


def create_download(url: str) -> Created:
    """Download a video from a URL."""
    return _change("download", {"url": url})


def delete_download(id: int) -> Created:
    """Remove a downloaded video."""
    return _change("download", remove=id)


def create_transcode(source: int, format: str = "mp4") -> Created:
    """Transcode a downloaded video."""
    return _change("transcode", {"source": source, "format": format})


def delete_transcode(id: int) -> Created:
    """Remove a transcoded video."""
    return _change("transcode", remove=id)


def create_record(title: str, path: str) -> Created:
    """Record a published video in the catalog."""
    return _change("record", {"title": title, "path": path})


def delete_record(id: int) -> Created:
    """Remove a catalog record."""
    return _change("record", remove=id)


def create_notification(text: str) -> Created:
    """Tell the team."""
    if "fail" in text:
        raise RuntimeError("the chat service refused the message")
    return _change("notification", {"text": text})
