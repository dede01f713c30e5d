"""Helpers: documents as Python dicts, turned into connectors without touching the file system."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx2

from toolbridge.catalog import Tool
from toolbridge.connectors import Connector, Invocation
from toolbridge.connectors.openapi import Ingested, IngestOptions, SpecSource, ingest
from toolbridge.credentials import AuthConfig, CredentialManager, Vault
from toolbridge.storage import MEMORY_URL, Database

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


def configured(connector: str, **binding: Any) -> CredentialManager:
    """Credentials for a hand-built hub: ``connector``'s shared connection configured with its secret
    (``AuthConfig(scheme=..., secret=Secret(...))``), served without a vault key."""
    return CredentialManager(Vault(Database(MEMORY_URL)), {connector: AuthConfig(**binding)})


@dataclass(frozen=True)
class Connection:
    """A connection's credentials as the credentials layer hands them to a connector."""

    auth: httpx2.Auth
    refresh: None = None

    def describe(self) -> str:
        return "test connection"


class AllOf(httpx2.Auth):
    """Several credential flows on one request (operations that need several schemes together)."""

    def __init__(self, *flows: httpx2.Auth) -> None:
        self._flows = flows

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        for flow in self._flows:
            request = next(flow.auth_flow(request))
        yield request


class WithConnection:
    """``inner`` whose every call carries ``auth_for(tool)`` as its connection (a test's own auth flows,
    which no ``connections:`` scheme expresses, e.g. an API key in the query and another in a header)."""

    def __init__(self, inner: Connector, auth_for: Callable[[Tool], httpx2.Auth | None]) -> None:
        self._inner = inner
        self._auth_for = auth_for

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        return self._inner.name

    def tools(self) -> Sequence[Tool]:
        return self._inner.tools()

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        auth = self._auth_for(tool)
        credentials = Connection(auth) if auth is not None else None
        return await self._inner.invoke(tool, arguments, replace(invocation, credentials=credentials))

    async def __aenter__(self) -> WithConnection:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._inner.__aexit__(*exc_info)
