"""The GraphQL connector: a schema's root fields as tools, calls as POSTs to one endpoint.

A call is one ``POST`` of ``{"query", "variables", "operationName"}`` (``application/json``) to the
endpoint; the call's arguments are the variables, never written into the query text. The request goes
the way an OpenAPI connector's does (:mod:`toolbridge.connectors.openapi._egress`): the connection's
credentials only to the endpoint's origin, redirects followed hop by hop and checked, a response read up
to ``max_response_bytes``. Status errors, ``Retry-After`` and transport failures are told as for a REST
API; GraphQL ``errors`` as :mod:`._response` says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
from graphql import GraphQLSchema

from toolbridge._urlguard import Resolver, SyncResolver, system_addresses, system_resolver
from toolbridge.catalog import Tool
from toolbridge.connectors._base import Invocation
from toolbridge.connectors.graphql._response import result_of
from toolbridge.connectors.graphql._schema import MAX_SCHEMA_BYTES, introspect, load_schema
from toolbridge.connectors.graphql._selection import check_document
from toolbridge.connectors.graphql._tools import Built, Operation, build_tools
from toolbridge.connectors.openapi._egress import CrossOrigin, Egress, Route, Signer, open_wire, origin
from toolbridge.connectors.openapi._request import Draft
from toolbridge.connectors.openapi._wire import Wire
from toolbridge.errors import ConfigurationError, InvalidArguments

__all__ = ["GraphQLConnector"]

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/graphql-response+json, application/json",
}
_UNSIGNED = Signer()


class GraphQLConnector:
    """Tools from a GraphQL schema. Build it with :meth:`from_schema`; use it as an async context manager.

    It owns the client it creates on entry (closed on exit); an injected ``client`` is used as is and
    never closed.
    """

    def __init__(
        self,
        name: str,
        endpoint: str,
        schema: GraphQLSchema,
        *,
        description: str | None = None,
        selection_depth: int = 2,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        idempotency_header: str | None = None,
        allow_hosts: Iterable[str] = (),
        cross_origin: CrossOrigin = "strip",
        resolver: Resolver = system_resolver,
    ) -> None:
        try:
            trusted = origin(endpoint)
        except (httpx2.InvalidURL, ValueError):
            trusted = ("", "", 0)
        if not endpoint.startswith(("http://", "https://")) or not trusted[1]:
            raise ConfigurationError(
                f"connector {name!r}: endpoint {endpoint!r} is not an http(s) URL",
                hint="write the API's GraphQL URL, e.g. https://api.example.com/graphql",
            )
        self._name = name
        self._error: str | None = None
        self._endpoint = endpoint
        self._schema = schema
        self._description = description or f"The GraphQL API at {endpoint}."
        self._built: Built = build_tools(
            name, schema, depth=selection_depth, include=include, exclude=exclude
        )
        self._checked: dict[str, str] = {}
        self._route = Route(trusted)
        self._key_header = idempotency_header
        self._injected = client
        self._transport = transport
        self._timeout = timeout
        self._max_bytes = max_response_bytes
        self._wire: Wire | None = None
        hosts = frozenset(h.rstrip(".").lower() for h in allow_hosts)
        self._egress = Egress(name, allow_hosts=hosts, cross_origin=cross_origin, resolver=resolver)

    @classmethod
    def from_schema(
        cls,
        name: str,
        endpoint: str,
        schema: str | Path | None = None,
        *,
        schema_transport: httpx2.BaseTransport | None = None,
        schema_resolver: SyncResolver = system_addresses,
        max_schema_bytes: int = MAX_SCHEMA_BYTES,
        **kwargs: Any,
    ) -> GraphQLConnector:
        """The connector for ``endpoint``, its schema read from the file ``schema`` (SDL or an
        introspection result) or, without one, fetched from the endpoint by introspection (through the SSRF
        guard; ``allow_hosts`` as for calls). Other keywords as ``__init__``."""
        if schema is not None:
            loaded = load_schema(Path(schema), max_bytes=max_schema_bytes)
        else:
            loaded = introspect(
                endpoint,
                transport=schema_transport,
                timeout=kwargs.get("timeout", 30.0),
                max_bytes=max_schema_bytes,
                allow_hosts=kwargs.get("allow_hosts", ()),
                resolver=schema_resolver,
            )
        return cls(name, endpoint, loaded, **kwargs)

    @classmethod
    def failed(cls, name: str, endpoint: str, error: str) -> GraphQLConnector:
        """A connector whose schema could not be read: no tools, and the error in its :attr:`status`."""
        connector = cls(name, endpoint, GraphQLSchema())
        connector._error = error
        return connector

    @property
    def status(self) -> str | None:
        """``failed: …`` when the schema could not be read (shown by health), else None."""
        return f"failed: {self._error}" if self._error else None

    # -- the Connector protocol --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    @property
    def schema(self) -> GraphQLSchema:
        return self._schema

    def tools(self) -> Sequence[Tool]:
        return self._built.tools

    def operation(self, tool: str) -> Operation:
        return self._built.operations[tool]

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        operation = self._built.operations[tool.name]
        select = arguments.get(operation.select_arg)
        body = {
            "query": self.document(operation, select),
            "variables": {k: v for k, v in arguments.items() if k != operation.select_arg},
            "operationName": operation.name,
        }
        headers = dict(_HEADERS)
        if self._key_header and operation.kind == "mutation" and invocation.idempotency_key:
            headers[self._key_header] = invocation.idempotency_key
        draft = Draft("POST", self._endpoint, headers=headers, content=json.dumps(body).encode())
        signer = Signer.of(invocation.credentials) if invocation.credentials is not None else _UNSIGNED
        page = await self._egress.send(
            self._require_wire(), draft, self._route, signer, tool.name, self._max_bytes
        )
        return result_of(page, tool.name, operation.field)

    def document(self, operation: Operation, select: str | None = None) -> str:
        """The operation's text for a call (validated against the schema; the default one once)."""
        if select is None:
            text = self._checked.get(operation.tool)
            if text is None:
                text = operation.document(operation.selection)
                check_document(self._schema, text, select=None, tool=operation.tool)
                self._checked[operation.tool] = text
            return text
        if operation.selection is None:
            raise InvalidArguments(
                f"{operation.tool!r}: '{operation.select_arg}' does not apply: the field returns a scalar",
                errors=[{"field": operation.select_arg, "error": "the field has no fields to select"}],
                tool=operation.tool,
                hint=f"leave '{operation.select_arg}' out",
            )
        text = operation.document(select)
        check_document(self._schema, text, select=select, tool=operation.tool)
        return text

    def idempotency_key_carrier(self, tool: Tool) -> str | None:
        """Where a mutation's idempotency key goes upstream (``idempotency_header``); None when it is not
        sent (then a keyed write is not retried once its request may have reached the API)."""
        operation = self._built.operations.get(tool.name)
        if self._key_header and operation is not None and operation.kind == "mutation":
            return f"header {self._key_header}"
        return None

    async def __aenter__(self) -> GraphQLConnector:
        if self._wire is not None:
            return self
        self._wire = open_wire(self._injected, self._transport, self._timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.aclose()

    def _require_wire(self) -> Wire:
        if self._wire is None:
            raise RuntimeError(f"connector {self._name!r} is not open; use 'async with' (the hub does)")
        return self._wire
