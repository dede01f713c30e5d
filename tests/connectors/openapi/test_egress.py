"""A hostile upstream cannot take the connector's credentials elsewhere (issue 12, item 4).

Two real servers on 127.0.0.1: the configured upstream ("home") answers with a next-page link or a
redirect that the test chooses; the "hostile" one (another origin: another port) records everything it
receives. Every kind of credential — bearer, basic, API key in a header, the query and a cookie, and a
connection's auth flow — must stay with the home origin.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
from tests.connectors.openapi.conftest import AllOf, Connection, WithConnection, configured, ingested, openapi
from toolbridge import Hub, Principal, UpstreamError
from toolbridge.connectors import Connector, Invocation
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.credentials import ApiKeyAuth, BasicAuth, BearerAuth, Secret, StaticToken

pytestmark = pytest.mark.anyio

CANARIES = {
    "bearer": "canary-bearer-7f3a91c2",
    "header_key": "canary-header-b81e04d5",
    "query_key": "canary-query-29cd7e10",
    "cookie_key": "canary-cookie-5a0f63b8",
}
BASIC = "alice:canary-basic-c4e1902a"
LIST = {
    "get": {
        "operationId": "list",
        "parameters": [
            {"name": "next", "in": "query", "schema": {"type": "string"}},
            {"name": "status", "in": "query", "schema": {"type": "integer"}},
        ],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {}}}}},
    }
}
SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "header_key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
    "query_key": {"type": "apiKey", "in": "query", "name": "api_key"},
    "cookie_key": {"type": "apiKey", "in": "cookie", "name": "sid"},
    "basic": {"type": "http", "scheme": "basic"},
}


def document(*alternatives: list[str]) -> dict[str, Any]:
    return openapi(
        {"/items": LIST},
        components={"securitySchemes": SCHEMES},
        security=[{name: [] for name in alternative} for alternative in alternatives],
    )


@dataclass
class Server:
    url: str
    seen: list[str] = field(default_factory=list)
    """Everything each request carried: the raw query and every header line."""

    def carried(self) -> str:
        return "\n".join(self.seen)


def _record(server: Server, request: Request) -> None:
    lines = [f"{request.method} {request.url.path}?{request.url.query}"]
    server.seen.append("\n".join(lines + [f"{k}: {v}" for k, v in request.headers.items()]))


def _home_app(server: Server) -> Starlette:
    async def items(request: Request) -> Response:
        _record(server, request)
        target, status = request.query_params.get("next"), int(request.query_params.get("status", "200"))
        if status in (301, 302, 303, 307, 308) and target:
            return Response(status_code=status, headers={"Location": target})
        body: dict[str, Any] = {"items": ["home"]}
        if target:
            body["next_url"] = target
        return JSONResponse(body)

    return Starlette(routes=[Route("/items", items), Route("/page2", items)])


def _hostile_app(server: Server) -> Starlette:
    async def anything(request: Request) -> Response:
        _record(server, request)
        return JSONResponse({"items": ["hostile"]})

    return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    home_sock, hostile_sock = loopback_socket(), loopback_socket()
    home = Server(f"http://127.0.0.1:{home_sock.getsockname()[1]}")
    hostile = Server(f"http://127.0.0.1:{hostile_sock.getsockname()[1]}")
    with uvicorn_thread(_home_app(home), home_sock), uvicorn_thread(_hostile_app(hostile), hostile_sock):
        yield home, hostile


@pytest.fixture
def home(servers: tuple[Server, Server]) -> Server:
    servers[0].seen.clear()
    return servers[0]


@pytest.fixture
def hostile(servers: tuple[Server, Server]) -> Server:
    servers[1].seen.clear()
    return servers[1]


def auth_of(secrets: dict[str, str]) -> httpx2.Auth:
    """Each canary where its scheme of ``SCHEMES`` puts it, by the credentials layer's auth flows."""
    flows: list[httpx2.Auth] = []
    for name, value in secrets.items():
        token = StaticToken(Secret(value))
        if name == "bearer":
            flows.append(BearerAuth(token))
        elif name == "basic":
            user, _, password = value.partition(":")
            flows.append(BasicAuth(user, Secret(password)))
        else:
            scheme = SCHEMES[name]
            flows.append(ApiKeyAuth(scheme["name"], token, location=scheme["in"]))
    return AllOf(*flows)


def with_secrets(api: OpenAPIConnector, secrets: dict[str, str]) -> Connector:
    """``api`` whose calls carry ``secrets`` as their connection."""
    auth = auth_of(secrets)
    return WithConnection(api, lambda tool: auth)


def connector(home: Server, doc: dict[str, Any], secrets: dict[str, str], **kw: Any) -> Connector:
    return with_secrets(OpenAPIConnector("api", ingested(doc), base_url=home.url, max_pages=3, **kw), secrets)


async def call(api: Connector, arguments: dict[str, Any]) -> Any:
    hub = Hub()
    hub.add_connector(api)
    async with hub:
        return (await hub.call(Principal.local(), "api.list", arguments)).value


SECRET_SETS = [
    pytest.param(document(list(CANARIES)), CANARIES, list(CANARIES.values()), id="bearer+api-keys"),
    pytest.param(
        document(["basic"]),
        {"basic": BASIC},
        [base64.b64encode(BASIC.encode()).decode(), BASIC.split(":")[1]],
        id="basic",
    ),
]


def assert_carries(server: Server, values: Sequence[str]) -> None:
    assert server.seen, "the server was not reached"
    for value in values:
        assert value in server.carried(), "the home origin must get the credentials (positive control)"


def assert_clean(server: Server, values: Sequence[str]) -> None:
    carried = server.carried()
    assert "authorization" not in carried.lower()
    for value in values:
        assert value not in carried, f"a credential ({value[:13]}…) reached another origin"


@pytest.mark.parametrize(("doc", "secrets", "values"), SECRET_SETS)
@pytest.mark.parametrize("how", ["page", 302, 307])
async def test_another_origin_gets_no_credential(
    home: Server, hostile: Server, doc: dict[str, Any], secrets: dict[str, str], values: list[str], how: Any
) -> None:
    port = hostile.url.rsplit(":", 1)[1]
    api = connector(home, doc, secrets, allow_hosts=[f"127.0.0.1:{port}"])
    status = {} if how == "page" else {"status": how}
    result = await call(api, {"next": f"{hostile.url}/steal?x=1", **status})
    assert "hostile" in result["items"]  # the hostile server answered: it was reached
    assert_carries(home, values[:1])
    assert_clean(hostile, values)


async def test_same_origin_redirects_and_pages_keep_the_credentials(home: Server) -> None:
    api = connector(home, document(list(CANARIES)), CANARIES)
    assert (await call(api, {"next": f"{home.url}/page2", "status": 307}))["items"] == ["home"]
    assert len(home.seen) == 2 and all(CANARIES["header_key"] in seen for seen in home.seen)
    home.seen.clear()
    assert (await call(api, {"next": "/page2"}))["items"] == ["home", "home"]
    assert len(home.seen) == 2 and all(CANARIES["query_key"] in seen for seen in home.seen)


@pytest.mark.parametrize("how", ["page", 302, 307])
@pytest.mark.parametrize(
    "target",
    [
        "{hostile}/steal",  # loopback, not on the operator's allowlist
        "http://localhost:{port}/steal",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:{port}/steal",
        "http://2130706433:{port}/steal",
    ],
)
async def test_internal_addresses_are_refused_before_any_request(
    home: Server, hostile: Server, how: Any, target: str
) -> None:
    port = hostile.url.rsplit(":", 1)[1]
    api = connector(home, document(list(CANARIES)), CANARIES)
    status = {} if how == "page" else {"status": how}
    with pytest.raises(UpstreamError, match="does not reach") as info:
        await call(api, {"next": target.format(hostile=hostile.url, port=port), **status})
    assert "allow_hosts" in (info.value.hint or "")
    assert hostile.seen == []


async def test_a_name_resolving_to_loopback_is_refused(home: Server, hostile: Server) -> None:
    looked_up: list[str] = []

    async def resolver(host: str, port: int) -> Sequence[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    api = connector(home, document(list(CANARIES)), CANARIES, resolver=resolver)
    with pytest.raises(UpstreamError, match="does not reach"):
        await call(api, {"next": "http://rebound.example/steal"})
    assert looked_up == ["rebound.example"]


async def test_a_name_that_does_not_resolve_is_refused_in_words_that_fit_it(home: Server) -> None:
    """The refusal names both reasons in one sentence (which of the two fired is not told: an agent could
    otherwise learn which internal names exist), so an operator's mistyped host is not called internal
    only."""

    async def resolver(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    api = connector(home, document(list(CANARIES)), CANARIES, resolver=resolver)
    with pytest.raises(UpstreamError, match="does not reach") as info:
        await call(api, {"next": "http://no-such-name.example/next"})
    assert "or a name that does not resolve" in str(info.value)


async def test_cross_origin_can_be_refused_by_setting(home: Server, hostile: Server) -> None:
    port = hostile.url.rsplit(":", 1)[1]
    api = connector(home, document(list(CANARIES)), CANARIES, allow_hosts=[f"127.0.0.1:{port}"])
    refusing = connector(
        home, document(list(CANARIES)), CANARIES, allow_hosts=[f"127.0.0.1:{port}"], cross_origin="refuse"
    )
    assert await call(api, {"next": f"{hostile.url}/x", "status": 302})
    hostile.seen.clear()
    with pytest.raises(UpstreamError, match="cross_origin"):
        await call(refusing, {"next": f"{hostile.url}/x", "status": 302})
    assert hostile.seen == []


@pytest.mark.parametrize("location", ["header", "query", "cookie", "bearer"])
async def test_a_connections_auth_flow_stays_home(
    home: Server, hostile: Server, location: Literal["header", "query", "cookie", "bearer"]
) -> None:
    port = hostile.url.rsplit(":", 1)[1]
    token = StaticToken(Secret("canary-connection-0b7d55e1"))
    auth = BearerAuth(token) if location == "bearer" else ApiKeyAuth("key", token, location=location)
    api = OpenAPIConnector(
        "api",
        ingested(document(["bearer"])),
        base_url=home.url,
        max_pages=3,
        allow_hosts=[f"127.0.0.1:{port}"],
    )
    (tool,) = api.tools()
    invocation = Invocation(Principal.local(), "r1", credentials=Connection(auth))
    async with api:
        await api.invoke(tool, {"next": f"{hostile.url}/steal", "status": 307}, invocation)
        await api.invoke(tool, {"next": f"{hostile.url}/steal"}, invocation)
    assert_carries(home, ["canary-connection-0b7d55e1"])
    assert len(hostile.seen) == 2
    assert_clean(hostile, ["canary-connection-0b7d55e1"])


@pytest.mark.parametrize("how", ["page", 301, 307])
@pytest.mark.parametrize("form", ["{key}", "{quoted}"])
async def test_a_url_to_another_origin_holding_the_key_is_not_followed(
    home: Server, hostile: Server, how: Any, form: str
) -> None:
    """A move to another host that keeps the query string (``?api_key=…``), or a token written into a
    ``Location`` or a next link, would have the hub carry the connection's key there in the URL itself,
    though no credential is *applied* to another origin (found by an outside secrets probe)."""
    key = "canary/query+key-6d1e93f0"
    port = hostile.url.rsplit(":", 1)[1]
    api = OpenAPIConnector(
        "api",
        ingested(document(["query_key"])),
        base_url=home.url,
        max_pages=3,
        allow_hosts=[f"127.0.0.1:{port}"],
    )
    target = f"{hostile.url}/moved?page=2&api_key=" + form.format(key=key, quoted=quote(key, safe=""))
    hub = Hub(
        credentials=configured("api", scheme="api_key", name="api_key", location="query", secret=Secret(key))
    )
    hub.add_connector(api)
    status = {} if how == "page" else {"status": how}
    async with hub:
        with pytest.raises(UpstreamError, match="credential in the URL") as info:
            await hub.call(Principal.local(), "api.list", {"next": target, **status})
        assert key not in str(info.value) and "base_url" in (info.value.hint or "")
        other = await hub.call(Principal.local(), "api.list", {"next": f"{hostile.url}/x?page=2", **status})
    assert_carries(home, [quote(key, safe="")])
    assert len(hostile.seen) == 1 and "hostile" in other.value["items"]  # another origin is still reached
    assert_clean(hostile, [key, quote(key, safe="")])


async def test_servers_of_a_remote_document_pass_the_guard(home: Server) -> None:
    doc = {**document(list(CANARIES)), "servers": [{"url": home.url}]}
    port = home.url.rsplit(":", 1)[1]

    def remote(**kw: Any) -> Connector:
        spec = "http://docs.example/openapi.json"
        return with_secrets(OpenAPIConnector("api", ingested(doc), spec_uri=spec, **kw), CANARIES)

    with pytest.raises(UpstreamError, match="does not reach"):
        await call(remote(), {})
    assert home.seen == []
    assert (await call(remote(allow_hosts=[f"127.0.0.1:{port}"]), {}))["items"] == ["home"]
    local = with_secrets(OpenAPIConnector("api", ingested(doc)), CANARIES)
    assert (await call(local, {}))["items"] == ["home"]  # a local document is the operator's choice


async def test_an_upgrade_to_https_on_the_same_host_keeps_the_credentials() -> None:
    seen: list[httpx2.Request] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.scheme == "http":
            return httpx2.Response(301, headers={"Location": str(request.url.copy_with(scheme="https"))})
        if request.url.host == "api.test":
            return httpx2.Response(307, headers={"Location": "https://elsewhere.test/x"})
        return httpx2.Response(200, json={"items": ["elsewhere"]})

    async def public(host: str, port: int) -> Sequence[str]:
        return ["93.184.215.14"]

    api = OpenAPIConnector(
        "api",
        ingested(document(["header_key"])),
        base_url="http://api.test",
        transport=httpx2.MockTransport(upstream),
        resolver=public,
    )
    assert (await call(with_secrets(api, {"header_key": CANARIES["header_key"]}), {}))["items"] == [
        "elsewhere"
    ]
    assert [r.headers.get("x-api-key") for r in seen] == [
        CANARIES["header_key"],
        CANARIES["header_key"],
        None,
    ]
    assert seen[2].url.host == "93.184.215.14" and seen[2].headers["host"] == "elsewhere.test"


async def test_a_cookie_one_answer_sets_does_not_ride_on_later_calls() -> None:
    seen: list[str | None] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers.get("cookie"))
        return httpx2.Response(
            200, json={"items": []}, headers={"Set-Cookie": "session=alice-s3ss10n; Path=/"}
        )

    api = OpenAPIConnector(
        "api",
        ingested(openapi({"/items": LIST})),
        base_url="https://api.test",
        transport=httpx2.MockTransport(upstream),
    )
    hub = Hub()
    hub.add_connector(api)
    async with hub:
        for _ in range(2):  # the connector's one client serves every principal's calls
            await hub.call(Principal.local(), "api.list", {})
    assert seen == [None, None]
