"""A catalog cache: an ingested document saved as JSON, reused while every file it was read from is unchanged.

Parsing and converting a large document takes 0.1–2 s (a 3 MB YAML file alone takes a second to parse);
reading the cached result back takes a few milliseconds. Entries are keyed by the document's location,
the connector name, the ingest options and the cache format; each entry records a SHA-256 of every file
it was built from and is used only if they all still match. Documents read from URLs are not cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from toolbridge.catalog import Tool, ToolAnnotations
from toolbridge.connectors.openapi._ingest import Ingested, IngestOptions
from toolbridge.connectors.openapi._model import (
    Body,
    BodyField,
    FixedValue,
    IngestReport,
    Issue,
    Operation,
    Parameter,
    SecurityScheme,
    Server,
)

__all__ = ["CatalogCache"]

FORMAT = 13
"""Raised whenever ingest turns the same document into different tools (2: operation-level $refs,
required body fields, SSRF-guarded $refs; 3: the document's one-line summary; 4: GETs whose names write
are not read-only, and tools keep their tags; 5: only where the path names a method; 6: OpenAPI 3.1 file
parts and base64 bodies; 7: empty enums left out; 8: form fields keep their Encoding Object's style;
9: a JSON body declared as a media range such as ``*/*`` is sent as ``application/json``; 10: a form
or multipart body without field names goes as the next media type; 11: ``patternProperties`` and
``propertyNames`` kept; 12: 3.1's conditions and dependencies kept; 13: long tool and argument names keep
their last words), so a catalog built by an older version is not reused."""


class CatalogCache:
    """Ingest results in one folder, one JSON file per (document, connector, options)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key(self, uri: str, connector: str, options: IngestOptions, *more: object) -> str:
        """The entry's name; ``more``: anything else the result depends on (the hosts a $ref may reach)."""
        text = json.dumps([FORMAT, uri, connector, repr(options), *map(repr, more)])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def load(self, key: str) -> Ingested | None:
        """The cached result, or None when missing, stale or unreadable."""
        try:
            entry = json.loads((self.folder / f"{key}.json").read_bytes())
            if entry.get("format") != FORMAT or not _unchanged(entry["digests"]):
                return None
            return _ingested(entry["ingested"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, key: str, digests: Mapping[str, str], ingested: Ingested) -> None:
        """Write atomically; a cache that cannot be written is simply not used."""
        if not digests or any(urlsplit(uri).scheme != "file" for uri in digests):
            return
        entry = {"format": FORMAT, "digests": dict(digests), "ingested": _plain(ingested)}
        target = self.folder / f"{key}.json"
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(entry, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
            os.replace(partial, target)
        except OSError:
            partial.unlink(missing_ok=True)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _unchanged(digests: Mapping[str, str]) -> bool:
    for uri, expected in digests.items():
        path = Path(url2pathname(urlsplit(uri).path))
        if digest(path.read_bytes()) != expected:
            return False
    return True


def _plain(ingested: Ingested) -> dict[str, Any]:
    return {
        "tools": [_tool(t) for t in ingested.tools],
        "operations": {name: dataclasses.asdict(op) for name, op in ingested.operations.items()},
        "schemes": {name: dataclasses.asdict(s) for name, s in ingested.schemes.items()},
        "servers": [dataclasses.asdict(s) for s in ingested.servers],
        "report": dataclasses.asdict(ingested.report),
    }


def _tool(tool: Tool) -> dict[str, Any]:
    return {
        "name": tool.name,
        "connector": tool.connector,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "annotations": dataclasses.asdict(tool.annotations),
        "title": tool.title,
        "cost": tool.cost,
        "tags": list(tool.tags),
    }


def _ingested(data: dict[str, Any]) -> Ingested:
    tools = tuple(
        Tool(**{**t, "annotations": ToolAnnotations(**t["annotations"]), "tags": tuple(t["tags"])})
        for t in data["tools"]
    )
    report = data["report"]
    return Ingested(
        tools=tools,
        operations={name: _operation(op) for name, op in data["operations"].items()},
        schemes={name: SecurityScheme(**s) for name, s in data["schemes"].items()},
        servers=tuple(Server(**s) for s in data["servers"]),
        report=IngestReport(**{**report, "issues": tuple(Issue(**i) for i in report["issues"])}),
    )


def _operation(op: dict[str, Any]) -> Operation:
    body = op["body"]
    return Operation(
        **{
            **op,
            "parameters": tuple(Parameter(**p) for p in op["parameters"]),
            "fixed": tuple(FixedValue(**f) for f in op["fixed"]),
            "body": Body(**{**body, "fields": tuple(BodyField(**f) for f in body["fields"])})
            if body
            else None,
            "security": tuple(tuple(alt) for alt in op["security"]),
            "servers": tuple(Server(**s) for s in op["servers"]),
            "tags": tuple(op["tags"]),
        }
    )
