"""Every place the hub fetches a URL someone else chose, driven with each hostile URL (tests/_hostile.py).

A :class:`Net` is where the requests go: in process, a mock transport that answers for the trap and
counts every other request; in a network namespace (tests/_ssrf_netns.py), the real network, with
counting listeners on the hostile addresses. The **trap** is an upstream the site is allowed to reach (by
``allow_hosts``, or at a public-looking address where a site has no allow list) that answers with each
hostile URL: a redirect, a ``$ref``, a next page, a ``servers`` entry, an authorization server, a token
endpoint. Each driver returns the URLs that were *not* refused with the site's own error.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from graphql import build_schema

from tests._hostile import HOSTILE, HOSTS, PUBLIC
from tests.connectors.openapi.test_egress import LIST
from toolbridge import Hub, Principal, credentials
from toolbridge.connectors.graphql import GraphQLConnector
from toolbridge.connectors.graphql._schema import introspect
from toolbridge.connectors.mcp._config import HttpServer
from toolbridge.connectors.mcp._sse import SseChannel
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.connectors.openapi._ingest import ingest
from toolbridge.connectors.openapi._loader import SpecSource, load_spec
from toolbridge.credentials._mcp_auth import OAUTH_GUARD, discover_mcp_authorization
from toolbridge.errors import ToolbridgeError
from toolbridge.events import EventFilter, EventLog, EventService, NewEvent, Subscription, WebhookTarget
from toolbridge.events._deliveries import Deliveries
from toolbridge.events._worker import DeliveryWorker
from toolbridge.storage import Database
from toolbridge.workspace._import import HttpImportSource

CONTROL = "https://trap.test/ok"
"""A public URL: no site may refuse it (the control that shows each driver can see a URL get through)."""
TARGETS = [*HOSTILE, CONTROL]
"""What the trap's paths index: ``/r/<i>`` redirects to ``TARGETS[i]``."""


def spec(**extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/items": LIST}, **extra}


def trap_answer(trap: str, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """What the trap at ``trap`` (its origin) answers for ``path``: always a way to a hostile URL."""
    parts = path.strip("/").split("/")
    last = parts[-1].removesuffix(".json")
    hostile = TARGETS[int(last)] if last.isdigit() else ""
    if parts[0] == "r":  # /r/<i>: a redirect
        return 302, {"location": hostile}, b""
    if parts[0] == "ref":  # /ref/<i>.json: a document whose $ref is hostile
        doc = spec(components={"schemas": {"x": {"$ref": hostile}}})
        return 200, {"content-type": "application/json"}, json.dumps(doc).encode()
    if parts[0] == "servers":  # /servers/<i>.json: a document whose server is hostile
        return (
            200,
            {"content-type": "application/json"},
            json.dumps(spec(servers=[{"url": hostile}])).encode(),
        )
    if parts[0] == "items":  # the OpenAPI operation: a next page, or a redirect, to what the call names
        target, status = query.get("next", ""), int(query.get("status", "200"))
        if status != 200:
            return status, {"location": target}, b""
        return (
            200,
            {"content-type": "application/json"},
            json.dumps({"items": [], "next_url": target}).encode(),
        )
    if parts[:2] == [".well-known", "oauth-protected-resource"]:  # RFC 9728 for /mcp[/<endpoint>]/<i>
        resource = f"{trap}/{'/'.join(parts[2:])}"
        server = hostile if len(parts) == 4 else f"https://as.test/{parts[3]}/{last}"
        doc = {"resource": resource, "authorization_servers": [server]}
        return 200, {"content-type": "application/json"}, json.dumps(doc).encode()
    if parts[:2] == [".well-known", "oauth-authorization-server"]:  # RFC 8414 naming a hostile endpoint
        doc = {
            "issuer": f"https://as.test/{parts[2]}/{last}",
            "authorization_endpoint": "https://as.test/authorize",
            "token_endpoint": hostile if parts[2] == "token" else "https://as.test/token",
            "registration_endpoint": hostile if parts[2] == "register" else "https://as.test/register",
            "code_challenge_methods_supported": ["S256"],
        }
        return 200, {"content-type": "application/json"}, json.dumps(doc).encode()
    if parts[0] == "sse":  # /sse/<i>: a legacy-SSE MCP server whose endpoint event names the target
        endpoint = "/messages" if hostile == CONTROL else hostile  # the control: its own origin
        return 200, {"content-type": "text/event-stream"}, f"event: endpoint\ndata: {endpoint}\n\n".encode()
    if parts[0] == "mcp":  # an MCP upstream that wants OAuth
        return 401, {"www-authenticate": 'Bearer error="invalid_token"'}, b""
    return 404, {}, b""


@dataclass
class Net:
    trap: str
    """The origin of the trap the sites may reach by ``allow_hosts`` (``http://127.0.0.1:PORT``)."""
    transport: httpx2.AsyncBaseTransport | None
    sync_transport: httpx2.BaseTransport | None
    resolver: Callable[[str, int], Awaitable[Sequence[str]]]
    sync_resolver: Callable[[str, int], Sequence[str]]
    workdir: Path

    @property
    def allow(self) -> str:
        return self.trap.removeprefix("http://")


class _Leaks:
    """The requests a mock network saw that were not for the trap: each one a connection made."""

    def __init__(self, trap: str) -> None:
        self.trap = httpx2.URL(trap)
        self.seen: list[str] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        to_trap = (url.host, url.port) == (self.trap.host, self.trap.port)
        # the public trap, by its address or (a client that does not pin) by a name that resolves to it
        to_public = url.host == PUBLIC or HOSTS.get(url.host) == (PUBLIC,)
        if not (to_trap or to_public):
            self.seen.append(str(url))
            raise httpx2.ConnectError("a hostile URL reached the network", request=request)
        origin = self.trap if to_trap else httpx2.URL(f"http://{request.headers['host']}")
        status, headers, body = trap_answer(str(origin).rstrip("/"), url.path, dict(url.params))
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]  # as a server sends UTF-8
        return httpx2.Response(status, headers=raw, content=body)


def mock_net(workdir: Path) -> tuple[Net, list[str]]:
    """A :class:`Net` whose every connection is a mock, and the list of requests that got out."""
    leaks = _Leaks("http://127.0.0.1:9")
    transport = httpx2.MockTransport(leaks.handler)
    return Net(
        "http://127.0.0.1:9", transport, transport, hosts_resolver, hosts_addresses, workdir
    ), leaks.seen


def hosts_addresses(host: str, port: int) -> Sequence[str]:
    """What :data:`HOSTS` answers; any other name does not exist (as in the namespace, without DNS)."""
    try:
        return HOSTS[host.lower()]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


async def hosts_resolver(host: str, port: int) -> Sequence[str]:
    return hosts_addresses(host, port)


Driver = Callable[[Net, Sequence[int]], Awaitable[list[str]]]


async def _not_refused(
    which: Sequence[int], attempt: Callable[[int], Awaitable[object]], words: str
) -> list[str]:
    """The targets whose ``attempt`` did not raise the site's refusal (an error matching ``words``)."""
    failed = []
    for i in which:
        try:
            await attempt(i)
        except ToolbridgeError as exc:
            if re.search(words, str(exc)) is not None:
                continue
        failed.append(TARGETS[i])
    return failed


async def spec_url(net: Net, which: Sequence[int]) -> list[str]:
    """``spec:`` an OpenAPI document's URL (the operator's, but the CLI takes it from anyone)."""

    async def load(i: int) -> object:
        return load_spec(TARGETS[i], **_loader(net))

    return await _not_refused(which, load, "refused|no such file")


async def spec_redirect(net: Net, which: Sequence[int]) -> list[str]:
    async def load(i: int) -> object:
        return load_spec(f"{net.trap}/r/{i}", **_loader(net))

    return await _not_refused(which, load, "refused")


async def spec_ref(net: Net, which: Sequence[int]) -> list[str]:
    """A remote document's ``$ref`` (loading goes on: the file is recorded as missing, with the refusal)."""
    failed = []
    for i in which:
        source = load_spec(f"{net.trap}/ref/{i}.json", **_loader(net))
        if len(source.documents) != 1 or "refused" not in " ".join(source.missing.values()):
            failed.append(TARGETS[i])
    return failed


def _loader(net: Net) -> dict[str, Any]:
    return {"transport": net.sync_transport, "allow_hosts": [net.allow], "resolver": net.sync_resolver}


async def _calls(apis: dict[int, Any], arguments: Callable[[int], dict[str, Any]]) -> list[str]:
    """Call ``api<i>.list`` of each connector in one hub; the URLs whose call was not refused."""
    hub = Hub()
    for api in apis.values():
        hub.add_connector(api)
    async with hub:
        return await _not_refused(
            list(apis), lambda i: hub.call(Principal.local(), f"api{i}.list", arguments(i)), "does not reach"
        )


def _api(net: Net, i: int, **kw: Any) -> Any:
    source = SpecSource("file:///api.json", {"file:///api.json": spec()}, {}, {})
    name = f"api{i}"
    return OpenAPIConnector(
        name, ingest(source, name), base_url=net.trap, transport=net.transport, resolver=net.resolver, **kw
    )


async def next_page(net: Net, which: Sequence[int]) -> list[str]:
    """A next-page URL the upstream's answer names."""
    apis = {i: _api(net, i, max_pages=3) for i in which}
    return await _calls(apis, lambda i: {"next": TARGETS[i]})


async def upstream_redirect(net: Net, which: Sequence[int]) -> list[str]:
    """A redirect the upstream's answer names (307: the method and body would follow)."""
    return await _calls({i: _api(net, i) for i in which}, lambda i: {"next": TARGETS[i], "status": 307})


async def remote_servers(net: Net, which: Sequence[int]) -> list[str]:
    """The ``servers`` of a document fetched over the network: the configured origin is the trap's choice."""
    failed, apis = [], {}
    for i in which:
        try:
            apis[i] = OpenAPIConnector.from_spec(
                f"api{i}",
                f"{net.trap}/servers/{i}.json",
                spec_transport=net.sync_transport,
                transport=net.transport,
                resolver=net.resolver,
                allow_hosts=[net.allow],
            )
        except ToolbridgeError as exc:  # a server the document cannot name at all (a file: URL ...)
            if "server" in str(exc):
                continue
            failed.append(TARGETS[i])
    return failed + await _calls(apis, lambda i: {})


def _importer(net: Net) -> Any:
    return HttpImportSource(transport=net.transport, resolver=net.resolver)


async def import_url(net: Net, which: Sequence[int]) -> list[str]:
    """The workspace's ``import_url`` (tool and REST route) with the agent's URL."""
    source = _importer(net)
    return await _imports(source, net, which, lambda i: TARGETS[i])


async def import_redirect(net: Net, which: Sequence[int]) -> list[str]:
    """``import_url`` of a public URL (``trap.test``) that redirects to the hostile one."""
    source = _importer(net)
    return await _imports(source, net, which, lambda i: f"http://trap.test/r/{i}")


async def _imports(source: Any, net: Net, which: Sequence[int], ref: Callable[[int], str]) -> list[str]:
    return await _not_refused(
        which, lambda i: source.fetch(ref(i), net.workdir / f"import-{i}"), "cannot be imported"
    )


async def webhook(net: Net, which: Sequence[int]) -> list[str]:
    """An outbound webhook's URL (a subscription's; redirects are never followed)."""
    os.environ.setdefault("TB_TEST_SSRF_SECRET", "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    hub = Hub(database=f"sqlite+aiosqlite:///{net.workdir / 'events.db'}")
    subs = {
        f"s{i}": Subscription(
            f"s{i}", EventFilter(), webhook=WebhookTarget(TARGETS[i], "env:TB_TEST_SSRF_SECRET")
        )
        for i in which
    }
    deliveries = Deliveries(hub.database)
    service = EventService(EventLog(hub.database), subscriptions=subs, deliveries=deliveries)
    worker = DeliveryWorker(
        hub, service, deliveries, transport=net.transport, resolver=net.resolver, batch=len(subs)
    )
    async with hub:
        await service.log.append(NewEvent("github", "push"))
        attempted = await worker.run_once()
        items = await deliveries.items(limit=len(subs))
    if attempted != len(subs):
        return [f"{len(subs) - attempted} deliveries not attempted"]
    refused = {item.subscription for item in items if "SSRF guard" in str(item.last_error)}
    return [TARGETS[i] for i in which if f"s{i}" not in refused]


async def _discover(net: Net, which: Sequence[int], *, guard: Any) -> list[str]:
    async with httpx2.AsyncClient(transport=net.transport, trust_env=False) as client:
        return await _not_refused(
            which,
            lambda i: discover_mcp_authorization(
                client, f"{net.trap}/mcp/{i}", None, guard=guard, resolver=net.resolver
            ),
            "not on a public address|must be https|not valid RFC 9728",
        )


async def mcp_authorization_server(net: Net, which: Sequence[int]) -> list[str]:
    """The authorization server an MCP upstream's protected resource metadata names (RFC 9728)."""
    return await _discover(net, which, guard=OAUTH_GUARD)


async def _connect(net: Net, which: Sequence[int], endpoint: str) -> list[str]:
    bindings = {
        f"c{i}": credentials.AuthConfig(
            scheme="oauth2", discover=f"{net.trap}/mcp/{endpoint}/{i}", redirect_uri="http://127.0.0.1:9/cb"
        )
        for i in which
    }
    database = Database(f"sqlite+aiosqlite:///{net.workdir / f'{endpoint}.db'}")
    vault = credentials.Vault(
        database, credentials.StaticKeys(credentials.Keyring(credentials.MasterKey.generate()))
    )
    async with httpx2.AsyncClient(transport=net.transport, trust_env=False) as client:
        manager = credentials.CredentialManager(vault, bindings, client=client, resolver=net.resolver)
        async with database, manager:
            flow = credentials.ConnectFlow(manager)
            return await _not_refused(
                which, lambda i: flow.start(f"c{i}"), "not on a public address|must be https"
            )


async def mcp_token_endpoint(net: Net, which: Sequence[int]) -> list[str]:
    """The token endpoint an MCP upstream's authorization server names in its metadata (RFC 8414)."""
    return await _connect(net, which, "token")


async def mcp_registration_endpoint(net: Net, which: Sequence[int]) -> list[str]:
    """The dynamic client registration endpoint the authorization server names (RFC 7591)."""
    return await _connect(net, which, "register")


async def mcp_sse_endpoint(net: Net, which: Sequence[int]) -> list[str]:
    """Where a legacy-SSE MCP server's ``endpoint`` event says to POST (its own origin only)."""

    async def on_message(message: object) -> None:
        pass

    async def start(i: int) -> None:
        refused: ToolbridgeError | None = None
        async with anyio.create_task_group() as tg:  # raised outside it, not in an exception group
            channel = SseChannel(HttpServer(url=f"{net.trap}/sse/{i}"), tg, on_message, client=client)
            try:
                await channel.start()
            except ToolbridgeError as exc:
                refused = exc
            finally:
                await channel.aclose()
        if refused is not None:
            raise refused

    async with httpx2.AsyncClient(transport=net.transport, trust_env=False) as client:
        return await _not_refused(which, start, "endpoint on another origin")


async def graphql_introspection(net: Net, which: Sequence[int]) -> list[str]:
    """A GraphQL endpoint's schema by introspection (``toolbridge add graphql`` takes it from anyone)."""

    async def fetch(i: int) -> object:
        return introspect(TARGETS[i], transport=net.sync_transport, resolver=net.sync_resolver)

    return await _not_refused(which, fetch, "refused by the SSRF guard")


async def graphql_redirect(net: Net, which: Sequence[int]) -> list[str]:
    """A GraphQL call's endpoint (the trap) redirecting it to the hostile URL."""
    hub = Hub()
    schema = build_schema("type Query { items: [String] }")
    for i in which:
        hub.add_connector(
            GraphQLConnector(
                f"g{i}", f"{net.trap}/r/{i}", schema, transport=net.transport, resolver=net.resolver
            )
        )
    async with hub:
        return await _not_refused(
            list(which), lambda i: hub.call(Principal.local(), f"g{i}.items", {}), "does not reach"
        )


MOCK_ONLY = frozenset({"mcp_token_endpoint", "mcp_registration_endpoint"})
"""Sites whose trap must be an https server (an authorization server): driven in process only."""

SITES: dict[str, Driver] = {
    "spec_url": spec_url,
    "spec_redirect": spec_redirect,
    "spec_ref": spec_ref,
    "next_page": next_page,
    "upstream_redirect": upstream_redirect,
    "remote_servers": remote_servers,
    "import_url": import_url,
    "import_redirect": import_redirect,
    "webhook": webhook,
    "mcp_authorization_server": mcp_authorization_server,
    "mcp_token_endpoint": mcp_token_endpoint,
    "mcp_registration_endpoint": mcp_registration_endpoint,
    "mcp_sse_endpoint": mcp_sse_endpoint,
    "graphql_introspection": graphql_introspection,
    "graphql_redirect": graphql_redirect,
}


def control(site: str) -> list[int]:
    """The index of :data:`CONTROL` in :data:`TARGETS`, for a driver's positive control."""
    return [len(HOSTILE)]


def applicable(site: str) -> list[int]:
    """The hostile URLs a site is driven with: a spec location is a path when it is not http(s), and a
    next page is followed only when it is an http(s) URL or a path."""
    if site == "spec_url":
        return [i for i, url in enumerate(HOSTILE) if url.startswith(("http://", "https://"))]
    if site == "next_page":  # the pager follows only http(s) and path links: others end the pages
        return [i for i, url in enumerate(HOSTILE) if url.startswith(("http://", "https://", "/"))]
    return list(range(len(HOSTILE)))
