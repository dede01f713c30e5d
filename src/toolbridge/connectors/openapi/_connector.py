"""The OpenAPI connector: a document's operations as tools, calls as HTTP requests on one pooled client."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx2

from toolbridge._urlguard import Resolver, system_resolver
from toolbridge.catalog import Tool
from toolbridge.connectors._base import Invocation
from toolbridge.connectors.openapi._cache import CatalogCache
from toolbridge.connectors.openapi._egress import CrossOrigin, Egress, Route, Signer, open_wire, origin
from toolbridge.connectors.openapi._ingest import Ingested, IngestOptions, ingest
from toolbridge.connectors.openapi._keys import DEFAULT_KEY_HEADER, add_key, documents_keys, key_header
from toolbridge.connectors.openapi._loader import MAX_SPEC_BYTES, load_spec, to_uri
from toolbridge.connectors.openapi._model import IngestReport, Operation, SecurityScheme, Server
from toolbridge.connectors.openapi._needs import Need, check_fit, need_of
from toolbridge.connectors.openapi._paginate import Fetch, Pager, Pagination
from toolbridge.connectors.openapi._request import Draft, build_request
from toolbridge.connectors.openapi._response import Page, decode, status_error
from toolbridge.connectors.openapi._security import Connection, missing_credentials, unfit_connection
from toolbridge.connectors.openapi._wire import Wire
from toolbridge.errors import ConfigurationError

__all__ = ["OpenAPIConnector"]

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_UNSIGNED = Signer()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building a catalog allocates ~10⁵ small objects at once: cyclic GC passes over the whole heap then
    cost 5-10× the work itself (0.05 s → 0.004 s for a cached catalog). Nothing built here is cyclic."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class OpenAPIConnector:
    """Tools from an OpenAPI document. Build it with :meth:`from_spec`; use it as an async context manager.

    It owns the ``httpx2.AsyncClient`` it creates on entry (closed on exit); an injected ``client`` is
    used as is and never closed.
    """

    def __init__(
        self,
        name: str,
        ingested: Ingested,
        *,
        base_url: str | None = None,
        client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_pages: int = 1,
        pagination: Pagination | None = None,
        spec_uri: str | None = None,
        idempotency_header: str | None = DEFAULT_KEY_HEADER,
        allow_hosts: Iterable[str] = (),
        cross_origin: CrossOrigin = "strip",
        resolver: Resolver = system_resolver,
    ) -> None:
        self._name = name
        self._key_header = idempotency_header
        self._ingested = ingested
        self._connection: Connection | None = None
        """The ``connections:`` scheme, once :meth:`check_connection` accepted it."""
        self._injected = client
        self._wire: Wire | None = None
        self._plans: dict[str, tuple[str, Route]] = {}
        self._transport = transport
        self._timeout = timeout
        self._max_bytes = max_response_bytes
        self._pager = Pager(max_pages, pagination)
        self._base_url = base_url
        self._spec_uri = spec_uri or ingested.report.source
        hosts = frozenset(h.rstrip(".").lower() for h in allow_hosts)
        self._egress = Egress(name, allow_hosts=hosts, cross_origin=cross_origin, resolver=resolver)

    @classmethod
    def from_spec(
        cls,
        name: str,
        spec: str | Path,
        *,
        options: IngestOptions | None = None,
        spec_transport: httpx2.BaseTransport | None = None,
        max_spec_bytes: int = MAX_SPEC_BYTES,
        cache_dir: Path | None = None,
        spec_root: str | Path | None = None,
        **kwargs: Any,
    ) -> OpenAPIConnector:
        """Load ``spec`` (file or URL), ingest it, build the connector (other keywords as ``__init__``).

        With ``cache_dir``, the ingested catalog of a local document is kept there and reused while the
        document's files are unchanged (see :mod:`._cache`). ``spec_root``: the folder whose files a local
        document's ``$ref``s may read (default: the document's folder).
        """
        with _gc_paused():
            return cls._build(
                name,
                spec,
                options or IngestOptions(),
                spec_transport,
                max_spec_bytes,
                cache_dir,
                spec_root,
                kwargs,
            )

    @classmethod
    def _build(
        cls,
        name: str,
        spec: str | Path,
        options: IngestOptions,
        spec_transport: httpx2.BaseTransport | None,
        max_spec_bytes: int,
        cache_dir: Path | None,
        spec_root: str | Path | None,
        kwargs: dict[str, Any],
    ) -> OpenAPIConnector:
        uri = to_uri(spec)
        allowed = tuple(sorted(kwargs.get("allow_hosts", ())))  # the operator's SSRF exceptions
        root = str(Path(spec_root).resolve()) if spec_root is not None else None  # what $refs may read
        cache = CatalogCache(Path(cache_dir)) if cache_dir is not None else None
        key = cache.key(uri, name, options, allowed, root) if cache is not None else ""
        cached = cache.load(key) if cache is not None else None
        if cached is not None:
            return cls(name, cached, spec_uri=uri, **kwargs)
        source = load_spec(
            spec, max_bytes=max_spec_bytes, transport=spec_transport, allow_hosts=allowed, spec_root=root
        )
        ingested = ingest(source, name, options)
        digests, uri = source.digests, source.uri
        del source  # the parsed document is freed before the cache is written: a lower peak
        if cache is not None:
            cache.save(key, digests, ingested)
        return cls(name, ingested, spec_uri=uri, **kwargs)

    @classmethod
    def failed(cls, name: str, spec: str, error: str) -> OpenAPIConnector:
        """A connector whose document could not be used: no tools, and the error in its report."""
        report = IngestReport(str(spec), "unknown", 0, 0, error=error)
        return cls(name, Ingested((), {}, {}, (), report))

    # -- the Connector protocol --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    def tools(self) -> Sequence[Tool]:
        return self._ingested.tools

    @property
    def description(self) -> str:
        """One line on what the API is for (from the document's ``info``), for agents choosing a service."""
        return self._ingested.report.about

    @property
    def report(self) -> IngestReport:
        return self._ingested.report

    @property
    def status(self) -> str | None:
        """``failed: …`` when the document could not be used (shown by health), else None."""
        error = self._ingested.report.error
        return f"failed: {error}" if error else None

    def operation(self, tool: str) -> Operation:
        return self._ingested.operations[tool]

    @property
    def security_schemes(self) -> Mapping[str, SecurityScheme]:
        """Every security scheme the document declares, by name."""
        return self._ingested.schemes

    def security_needs(self) -> tuple[SecurityScheme, ...]:
        """The security schemes some operation requires: what a connection must supply."""
        used = {n for op in self._ingested.operations.values() for alt in op.security for n in alt}
        return tuple(s for n, s in sorted(self._ingested.schemes.items()) if n in used)

    def credential_needs(self) -> tuple[Need, ...]:
        """:meth:`security_needs` in the terms of the credentials layer (see :mod:`._needs`)."""
        return tuple(need_of(s) for s in self.security_needs())

    def check_connection(
        self, kind: str, *, name: str = "", location: str = "header", where: str | None = None
    ) -> None:
        """Raise a ConfigurationError naming the document's schemes if a ``kind`` connection can't fit;
        else remember it, so that an operation it does not fit is refused before sending."""
        check_fit(where or f"connector {self._name!r}", self.credential_needs(), kind, name, location)
        self._connection = (kind, name, location)

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        operation = self._ingested.operations[tool.name]
        base, route = self._plan(operation)
        draft = build_request(operation, arguments, base)
        add_key(draft, key_header(operation, self._key_header), invocation.idempotency_key)
        fetch = self._fetcher(tool.name, route, self._signer_for(operation, invocation))
        page = await fetch(draft)
        result = decode(page)
        if self._pager.enabled:
            wanted = arguments.get(operation.pages_arg) if operation.pages_arg else None
            result = await self._pager.follow(page, result, draft, operation, fetch, wanted)
        return result

    @property
    def declares_keys(self) -> bool:
        """Whether the document declares an idempotency header on any operation."""
        return documents_keys(self._ingested.operations.values())

    def idempotency_key_carrier(self, tool: Tool) -> str | None:
        """Where a call's idempotency key goes upstream (see :mod:`._keys`); None when it is not sent."""
        operation = self._ingested.operations.get(tool.name)
        header = key_header(operation, self._key_header) if operation is not None else None
        return f"header {header}" if header else None

    def _signer_for(self, operation: Operation, invocation: Invocation) -> Signer:
        """The call's connection (from the credentials layer), applied only to requests for the configured
        origin (see :mod:`._egress`). An operation the document marks public (schemes declared, none
        required) gets no credentials; one that requires them, called without a connection, is refused."""
        credentials = invocation.credentials
        if credentials is None:
            if operation.security and all(operation.security):
                raise missing_credentials(self._name, operation, self._ingested.schemes)
            return _UNSIGNED
        if self._ingested.schemes and not operation.security:
            return _UNSIGNED
        if self._connection is not None:
            unfit = unfit_connection(self._name, operation, self._ingested.schemes, self._connection)
            if unfit is not None:
                raise unfit
        return Signer.of(credentials)

    def _plan(self, operation: Operation) -> tuple[str, Route]:
        """The operation's base URL and route, worked out on its first call (both depend only on the
        document and the connector's settings)."""
        plan = self._plans.get(operation.tool)
        if plan is None:
            base = self.base_url_for(operation)
            plan = self._plans[operation.tool] = (base, self._route(base, operation.tool))
        return plan

    def _route(self, base: str, tool: str) -> Route:
        """The configured origin; a server URL taken from a document fetched over the network is guarded
        (one httpx2 cannot parse, such as ``http://0177.0.0.1/``, is refused as the guard refuses)."""
        remote = not self._base_url and self._spec_uri.startswith(("http://", "https://"))
        try:
            return Route(origin(base), guard_trusted=remote)
        except (httpx2.InvalidURL, ValueError):
            raise self._egress.refused(tool, "an invalid URL") from None

    async def __aenter__(self) -> OpenAPIConnector:
        if self._wire is not None:
            return self
        self._wire = open_wire(self._injected, self._transport, self._timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.aclose()

    # -- requests ----------------------------------------------------------------------------------

    def base_url_for(self, operation: Operation) -> str:
        if self._base_url:
            return self._base_url
        servers: tuple[Server, ...] = operation.servers or self._ingested.servers
        url = servers[0].resolved() if servers else ""
        if url.startswith(("http://", "https://")):
            return url
        if self._spec_uri.startswith(("http://", "https://")):
            return urljoin(self._spec_uri, url or "/")
        raise ConfigurationError(
            f"connector {self._name!r}: the document gives no absolute server URL ({url or 'none'!r})",
            hint=f"set base_url for connector {self._name!r} in toolbridge.yaml",
            tool=operation.tool,
        )

    def _require_wire(self) -> Wire:
        if self._wire is None:
            raise RuntimeError(f"connector {self._name!r} is not open; use 'async with' (the hub does)")
        return self._wire

    async def _send(self, draft: Draft, route: Route, signer: Signer, tool: str) -> Page:
        page = await self._egress.send(self._require_wire(), draft, route, signer, tool, self._max_bytes)
        if page.status_code >= 400:
            raise status_error(page, tool)
        return page

    def _fetcher(self, tool: str, route: Route, signer: Signer) -> Fetch:
        async def fetch(draft: Draft) -> Page:
            return await self._send(draft, route, signer, tool)

        return fetch
