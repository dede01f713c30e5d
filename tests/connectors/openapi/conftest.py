"""Helpers: documents as Python dicts, turned into connectors without touching the file system."""

from __future__ import annotations

from typing import Any

from toolbridge.connectors.openapi import Ingested, IngestOptions, SpecSource, ingest

URI = "file:///api/openapi.json"


def source(document: dict[str, Any], **others: Any) -> SpecSource:
    return SpecSource(URI, {URI: document, **others})


def openapi(paths: dict[str, Any], version: str = "3.0.3", **extra: Any) -> dict[str, Any]:
    return {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


def ingested(document: dict[str, Any], options: IngestOptions | None = None, name: str = "api") -> Ingested:
    return ingest(source(document), name, options)


def only_tool_schema(document: dict[str, Any]) -> dict[str, Any]:
    (tool,) = ingested(document).tools
    return dict(tool.input_schema)
