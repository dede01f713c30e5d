"""MCP authorization discovery against metadata served on 127.0.0.1 (uvicorn in a thread).

The upstream's 401 challenge → RFC 9728 protected resource metadata → the authorization server's RFC 8414
metadata (read by the connect flow) → an authorization URL with PKCE S256 and the RFC 8707 resource.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
from toolbridge._urlguard import system_resolver
from toolbridge.credentials import (
    ConnectFlow,
    CredentialManager,
    Keyring,
    MasterKey,
    StaticKeys,
    Vault,
    discover_mcp_authorization,
)
from toolbridge.credentials._mcp_auth import OAUTH_GUARD, check_remote, resource_metadata_url
from toolbridge.errors import ToolbridgeError, UpstreamError
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio

LOCAL = dataclasses.replace(OAUTH_GUARD, allow_loopback=True)  # these tests' servers are on 127.0.0.1


@contextmanager
def metadata_server(documents: dict[str, Any]) -> Iterator[str]:
    """Serves ``documents`` by path; ``{base}`` in string values becomes the server's own origin."""
    sock = loopback_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def handle(request: Request) -> Response:
        doc = documents.get(request.url.path)
        if doc is None:
            return Response(status_code=404)
        if isinstance(doc, str):
            return RedirectResponse(doc.format(base=base))
        return JSONResponse({k: _fill(v, base) for k, v in doc.items()})

    with uvicorn_thread(Starlette(routes=[Route("/{path:path}", handle)]), sock):
        yield base


def _fill(value: Any, base: str) -> Any:
    if isinstance(value, str):
        return value.format(base=base)
    if isinstance(value, list):
        return [_fill(v, base) for v in value]
    return value


DOCUMENTS: dict[str, Any] = {
    "/.well-known/oauth-protected-resource/mcp": {
        "resource": "{base}/mcp",
        "authorization_servers": ["{base}/as"],
        "scopes_supported": ["tools:read", "tools:call"],
    },
    "/as/.well-known/oauth-authorization-server": {
        "issuer": "{base}/as",
        "authorization_endpoint": "{base}/as/authorize",
        "token_endpoint": "{base}/as/token",
        "code_challenge_methods_supported": ["S256"],
    },
}


def test_challenge_parsing() -> None:
    header = (
        'Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/x", scope="a b"'
    )
    assert resource_metadata_url(header) == "https://mcp.example/.well-known/x"
    assert (
        resource_metadata_url("Bearer realm=x, resource_metadata=https://m.example/r")
        == "https://m.example/r"
    )
    assert resource_metadata_url('Basic realm="x"') is None
    assert resource_metadata_url("Bearer") is None


async def test_discovery_prepares_a_pkce_connect_flow_with_the_resource(sqlite_url: str) -> None:
    with metadata_server(DOCUMENTS) as base:
        challenge = f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
        async with httpx2.AsyncClient(trust_env=False) as client:
            found = await discover_mcp_authorization(client, f"{base}/mcp", challenge, guard=LOCAL)
            assert found.resource == f"{base}/mcp" and found.authorization_server == f"{base}/as"
            assert found.scopes == ("tools:read", "tools:call")
            binding = found.binding(client_id="toolbridge", redirect_uri="http://127.0.0.1:8765/callback")
            vault = Vault(Database(sqlite_url), StaticKeys(Keyring(MasterKey.generate())))
            manager = CredentialManager(vault, {"up": binding}, client=client, url_guard=LOCAL)
            async with vault.database, manager:
                authorization = await ConnectFlow(manager).start("up")
    url = urlsplit(authorization.url)
    params = dict(parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{base}/as/authorize"
    assert params["resource"] == f"{base}/mcp" and params["code_challenge_method"] == "S256"
    assert params["scope"] == "tools:read tools:call" and params["client_id"] == "toolbridge"


async def test_without_a_challenge_the_well_known_location_is_read() -> None:
    with metadata_server(DOCUMENTS) as base:
        async with httpx2.AsyncClient(trust_env=False) as client:
            found = await discover_mcp_authorization(client, f"{base}/mcp", None, guard=LOCAL)
    assert found.authorization_server == f"{base}/as"


@pytest.mark.parametrize(
    ("challenge", "documents", "message"),
    [
        ('Bearer resource_metadata="http://169.254.169.254/latest"', DOCUMENTS, "loopback"),
        ('Bearer resource_metadata="http://localhost:1/x"', DOCUMENTS, "another origin"),
        (None, {**DOCUMENTS, "/.well-known/oauth-protected-resource/mcp": "{base}/elsewhere"}, "HTTP 307"),
        (
            None,
            {
                "/.well-known/oauth-protected-resource/mcp": {
                    "resource": "https://evil.example/mcp",
                    "authorization_servers": ["{base}/as"],
                }
            },
            "is for",
        ),
        (
            None,
            {
                "/.well-known/oauth-protected-resource/mcp": {
                    "resource": "{base}/mcp",
                    "authorization_servers": ["http://auth.example"],
                }
            },
            "authorization server must be https",
        ),
    ],
)
async def test_unsafe_or_mismatched_metadata_is_refused(
    challenge: str | None, documents: dict[str, Any], message: str
) -> None:
    with metadata_server(documents) as base:
        async with httpx2.AsyncClient(trust_env=False) as client:
            with pytest.raises(UpstreamError, match=message) as info:
                await discover_mcp_authorization(client, f"{base}/mcp", challenge, guard=LOCAL)
    assert info.value.status == 502  # the upstream's fault, not the operator's (it was HTTP 500)


async def test_a_loopback_authorization_server_needs_the_setting() -> None:
    with metadata_server(DOCUMENTS) as base:
        challenge = f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
        async with httpx2.AsyncClient(trust_env=False) as client:
            with pytest.raises(UpstreamError, match="is not on a public address") as info:
                await discover_mcp_authorization(client, f"{base}/mcp", challenge)
    assert "oauth_allow_loopback" in str(info.value.hint)


async def test_an_allowed_host_and_port_admits_that_one_local_origin_over_http() -> None:
    """``oauth_allow_hosts: ["127.0.0.1:18080"]`` refused http://127.0.0.1:18080 ("is not on a public
    address"): only ``oauth_allow_loopback`` admitted a local server, and with it every local port."""
    with metadata_server(DOCUMENTS) as base:
        guard = dataclasses.replace(OAUTH_GUARD, allow_hosts=frozenset({base.removeprefix("http://")}))
        challenge = f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
        async with httpx2.AsyncClient(trust_env=False) as client:
            found = await discover_mcp_authorization(client, f"{base}/mcp", challenge, guard=guard)
        assert found.authorization_server == f"{base}/as"
        for elsewhere in (
            "http://127.0.0.1:6379/token",
            "http://localhost:5432/register",
            "http://[::1]:22/",
        ):
            with pytest.raises(ToolbridgeError, match="is not on a public address"):
                await check_remote(elsewhere, "the token endpoint", guard, system_resolver)
