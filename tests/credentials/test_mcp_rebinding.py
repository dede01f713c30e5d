"""DNS rebinding in the OAuth client of a discovered MCP upstream.

The authorization server of a discovered upstream, its metadata, its registration and its token endpoint
are a remote party's choice: the guard resolves their host and checks every address. Here the name
answers a public address on its first lookup and 127.0.0.1 on every later one, and the "network" resolves
a request's name again as a socket would, with a real listener on 127.0.0.1 that counts connections: a
request that resolved the name again instead of connecting to the checked address is counted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import httpx2
import pytest

from tests.credentials.test_mcp_connect import (
    PUBLIC,
    REDIRECT,
    World,
    as_metadata,
    connect,
    manager_for,
)
from toolbridge import Principal
from toolbridge.credentials import ConnectFlow, CredentialManager, Keyring, MasterKey
from toolbridge.errors import UpstreamError

pytestmark = pytest.mark.anyio
AS_PATH = "/.well-known/oauth-authorization-server"


class Network(httpx2.AsyncBaseTransport):
    """A request by name resolves it again (the world's resolver: the second answer); a loopback answer
    is a real connection to the counting listener, a public one is the in-memory world."""

    def __init__(self, world: World, port: int) -> None:
        self.world, self.port = world, port

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        try:
            address = str(ipaddress.ip_address(url.host))
        except ValueError:
            [address] = await self.world.resolve(url.host, url.port or 443)
        if address != "127.0.0.1":
            return self.world.handler(request)
        local = url.copy_with(scheme="http", host=address, port=self.port)
        async with httpx2.AsyncHTTPTransport() as real:
            forwarded = httpx2.Request(
                request.method, local, headers=request.headers, content=request.content
            )
            return await real.handle_async_request(forwarded)


@asynccontextmanager
async def counting_listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A listener on 127.0.0.1 (a port the OS picks) that counts connections and closes them unanswered."""
    accepted: list[str] = []

    async def count(stream: anyio.abc.SocketStream) -> None:
        accepted.append("connection")
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, count)
        yield port, accepted
        tg.cancel_scope.cancel()


async def _metadata(manager: CredentialManager, world: World) -> None:
    world.rebind.add("auth.test")
    await ConnectFlow(manager).start("remote")


async def _registration(manager: CredentialManager, world: World) -> None:
    world.documents[AS_PATH] = as_metadata(registration_endpoint="https://reg.test/register")
    world.rebind.add("reg.test")
    await ConnectFlow(manager).start("remote")


async def _code_exchange(manager: CredentialManager, world: World) -> None:
    """The token endpoint was checked when the connect started; it rebinds before the code comes back."""
    world.documents[AS_PATH] = as_metadata(token_endpoint="https://tok.test/token")
    flow = ConnectFlow(manager)
    started = await flow.start("remote")
    world.rebind.add("tok.test")
    state = parse_qs(urlsplit(started.url).query)["state"][0]
    await flow.complete(f"{REDIRECT}?code=good&state={state}")


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(_metadata, id="authorization-server-metadata"),
        pytest.param(_registration, id="client-registration"),
        pytest.param(_code_exchange, id="code-exchange"),
    ],
)
async def test_a_second_dns_answer_never_gets_a_connection(
    sqlite_url: str, case: Callable[[CredentialManager, World], Awaitable[None]]
) -> None:
    world = World()
    async with counting_listener() as (port, accepted):
        net = Network(world, port)
        async with manager_for(world, sqlite_url, Keyring(MasterKey.generate()), transport=net) as manager:
            with pytest.raises(UpstreamError, match="is not on a public address"):
                await case(manager, world)
    assert accepted == [], "a request resolved the name again and reached 127.0.0.1"
    assert set(world.connected) <= {"mcp.test", PUBLIC}, "the OAuth requests go to the checked address"
    assert world.token_forms == []


@pytest.mark.parametrize("host", ["auth.test", "tok.test"], ids=["metadata", "token-endpoint"])
async def test_a_refresh_in_another_process_never_reaches_a_server_that_rebinds(
    sqlite_url: str, host: str
) -> None:
    """Another process reads the server's metadata again and checks the server and its token endpoint;
    the DNS answer changes between a check and the request: nothing is sent, no refresh token leaves."""
    world, keys = World(), Keyring(MasterKey.generate())
    world.documents[AS_PATH] = as_metadata(token_endpoint="https://tok.test/token")
    async with manager_for(world, sqlite_url, keys) as manager:
        await connect(manager)
    world.rebind.add(host)
    world.lookups.clear()
    forms = len(world.token_forms)
    async with counting_listener() as (port, accepted):
        net = Network(world, port)
        async with manager_for(world, sqlite_url, keys, transport=net) as other:
            resolved = await other.resolve("remote", Principal.local(), None)
            assert resolved.refresh is not None
            with pytest.raises(UpstreamError, match="is not on a public address"):
                await resolved.refresh()
    assert accepted == [] and len(world.token_forms) == forms


async def test_discovered_servers_are_reached_at_the_checked_address_by_their_name(sqlite_url: str) -> None:
    """Without rebinding the flow works, and every OAuth request names the address the guard checked in its
    URL, the server's name in its Host header and TLS server name."""
    world = World()
    seen: list[tuple[str, str, object]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.url.host, request.headers["host"], request.extensions.get("sni_hostname")))
        return world.handler(request)

    transport = httpx2.MockTransport(handler)
    async with manager_for(world, sqlite_url, Keyring(MasterKey.generate()), transport=transport) as manager:
        await connect(manager)
        resolved = await manager.resolve("remote", Principal.local(), None)
        assert resolved.refresh is not None
        await resolved.refresh()
    oauth = [s for s in seen if s[1] == "auth.test"]
    assert len(oauth) >= 4, "metadata, registration, code exchange and refresh"
    assert set(oauth) == {(PUBLIC, "auth.test", "auth.test")}
    assert {s[0] for s in seen if s[1] == "mcp.test"} == {"mcp.test"}, "the configured upstream: by name"
