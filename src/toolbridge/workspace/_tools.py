"""The workspace tools as agents see them: compact input schemas and honest annotations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolbridge._jsonin import MAX_STORED_INT
from toolbridge.catalog import Tool, ToolAnnotations

__all__ = ["workspace_tools"]

_S: dict[str, Any] = {"type": "string"}
_PATH = {"type": "string", "description": "file or folder path, e.g. /reports/q3.csv"}
_WS = {"type": "string", "description": "workspace id (default: the connector's workspace)"}
_LEASE = {"type": "string", "description": "lease token from workspace.lock, if you hold the lease"}
_INT0 = {"type": "integer", "minimum": 0, "maximum": MAX_STORED_INT}
_VERSION = {"type": "integer", "minimum": 1, "maximum": MAX_STORED_INT}

READ = ToolAnnotations(read_only=True, idempotent=True, open_world=False)
WRITE = ToolAnnotations(open_world=False)
IDEMPOTENT = ToolAnnotations(idempotent=True, open_world=False)
DESTRUCTIVE = ToolAnnotations(destructive=True, open_world=False)
FETCH = ToolAnnotations(open_world=True)

_SPECS: dict[str, tuple[str, Mapping[str, Any], tuple[str, ...], ToolAnnotations]] = {
    "list": (
        "List a folder of the shared workspace (files and sub-folders). trashed=true lists the trash.",
        {"path": _PATH, "trashed": {"type": "boolean"}},
        (),
        READ,
    ),
    "read": (
        "Read a file. Text up to ~1 MiB comes inline; small binaries as base64; anything larger as a "
        "short-lived download URL. version reads an older version; offset/length read a byte range.",
        {"path": _PATH, "version": _VERSION, "offset": _INT0, "length": _INT0},
        ("path",),
        READ,
    ),
    "write": (
        "Create or overwrite a file (every overwrite keeps the old version). Pass expected_version (0 = "
        "must not exist) or if_match (an ETag) to refuse overwriting someone else's change (412). For files "
        "over 1 MiB use workspace.upload_url.",
        {
            "path": _PATH,
            "content": {"type": "string", "description": "the file's text, or base64 with encoding=base64"},
            "encoding": {"enum": ["text", "base64"]},
            "content_type": _S,
            "metadata": {"type": "object", "additionalProperties": _S},
            "expected_version": _INT0,
            "if_match": _S,
            "lease": _LEASE,
        },
        ("path", "content"),
        WRITE,
    ),
    "stat": ("Size, version, ETag, metadata and type of a file or folder.", {"path": _PATH}, ("path",), READ),
    "move": (
        "Move or rename a file or folder (with its contents). The target must not exist.",
        {"source": _PATH, "target": _PATH, "lease": _LEASE},
        ("source", "target"),
        WRITE,
    ),
    "copy": (
        "Copy a file or folder to a new path (no bytes are duplicated).",
        {"source": _PATH, "target": _PATH},
        ("source", "target"),
        WRITE,
    ),
    "delete": (
        "Move a file or folder to the trash (workspace.restore brings it back).",
        {"path": _PATH, "lease": _LEASE, "expected_version": _INT0},
        ("path",),
        DESTRUCTIVE,
    ),
    "restore": (
        "Restore a deleted file or folder from the trash, or (with version) make an old version current.",
        {"path": _PATH, "version": _VERSION, "trash_id": _S, "lease": _LEASE},
        ("path",),
        WRITE,
    ),
    "versions": ("List a file's versions, newest first.", {"path": _PATH}, ("path",), READ),
    "lock": (
        "Take the exclusive lease on a path (ttl seconds, default 120, max 3600), or extend yours by passing "
        "its lease token. Writes by others get 423 until you unlock or the lease expires.",
        {"path": _PATH, "ttl": {"type": "number", "minimum": 1, "maximum": 3600}, "lease": _LEASE},
        ("path",),
        WRITE,
    ),
    "unlock": (
        "Release your lease (needs its token).",
        {"path": _PATH, "lease": _LEASE},
        ("path", "lease"),
        IDEMPOTENT,
    ),
    "upload_url": (
        "Get a short-lived URL to upload a large file: a tus 1.0 endpoint (resumable) and a plain PUT URL.",
        {"path": _PATH, "lease": _LEASE, "ttl": {"type": "number", "minimum": 10, "maximum": 3600}},
        ("path",),
        WRITE,
    ),
    "import_url": (
        "Fetch an http(s) URL into a file (public internet addresses only; size and time capped).",
        {"url": {"type": "string", "format": "uri"}, "path": _PATH, "lease": _LEASE},
        ("url", "path"),
        FETCH,
    ),
    "search": (
        "Find files by name (substring, any case) and/or metadata (all pairs must match).",
        {
            "name": _S,
            "metadata": {"type": "object", "additionalProperties": _S},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500},
        },
        (),
        READ,
    ),
    "changes": (
        "What changed in the workspace after cursor (0 = from the start), oldest first. wait (≤ 30 s) "
        "long-polls for the next change. Pass the returned cursor next time.",
        {
            "cursor": _INT0,
            "limit": {"type": "integer", "minimum": 1, "maximum": 500},
            "wait": {"type": "number", "minimum": 0, "maximum": 30},
        },
        (),
        READ,
    ),
}


def workspace_tools(connector: str) -> list[Tool]:
    tools = []
    for op, (description, properties, required, hints) in _SPECS.items():
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {**properties, "workspace": _WS},
            "additionalProperties": False,
        }
        if required:
            schema["required"] = list(required)
        tools.append(
            Tool(
                name=f"{connector}.{op}",
                connector=connector,
                description=description,
                input_schema=schema,
                annotations=hints,
                title=f"workspace {op.replace('_', ' ')}",
            )
        )
    return tools
