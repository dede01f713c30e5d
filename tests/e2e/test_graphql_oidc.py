"""A GraphQL API that refuses an OAuth token as Apollo Server does — HTTP 200, an error coded
UNAUTHENTICATED — against the real OAuth server (oidc-provider) and a real GraphQL server (ariadne) that
checks each token at the provider's introspection endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._serving import loopback_socket, uvicorn_thread
from tests.connectors.graphql.conftest import SHOP
from tests.connectors.graphql.server import checking_app
from tests.e2e.oidc import CLIENT_SECRET, OidcServer, authorize, oidc_server
from toolbridge import CredentialsError, Hub, Principal
from toolbridge.credentials import ConnectFlow, KeyFile

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.anyio]
LOCAL = Principal.local()


@pytest.fixture
def oidc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcServer]:
    with oidc_server(tmp_path) as server:
        monkeypatch.setenv("TB_TEST_CLIENT_SECRET", CLIENT_SECRET)
        yield server


def write_config(folder: Path, oidc: OidcServer, endpoint: str) -> Path:
    connections = {
        "scheme": "oauth2",
        "provider": "test",
        "client_id": "toolbridge",
        "client_secret": "env:TB_TEST_CLIENT_SECRET",
        "scopes": ["openid", "offline_access", "api:read"],
        "redirect_uri": oidc.redirect_uri,
    }
    config = {
        "server": {"database": f"sqlite+aiosqlite:///{folder / 'tb.db'}"},
        "credentials": {"key_file": "master.key"},
        "providers": {"test": {"display_name": "Test OIDC", "issuer": oidc.issuer, "scope_separator": " "}},
        "connectors": {
            "shop": {"kind": "graphql", "endpoint": endpoint, "schema": str(SHOP), "connections": connections}
        },
    }
    path = folder / "toolbridge.yaml"
    path.write_text(json.dumps(config))
    return path


async def test_an_unauthenticated_graphql_error_refreshes_the_token_once_and_retries(
    oidc: OidcServer, tmp_path: Path
) -> None:
    """Only an HTTP 401 refreshed an OAuth connection: a token the API no longer took came back as an
    upstream error with HTTP 200 until the token expired by itself (outside OAuth/GraphQL probe). Refused
    again after the refresh, the call is a reconnect error, not a loop."""
    KeyFile(tmp_path / "master.key").create()
    denied: set[str] = set()
    app = checking_app(f"{oidc.issuer}/token/introspection", "toolbridge", CLIENT_SECRET, denied)
    sock = loopback_socket()
    with uvicorn_thread(app, sock):
        hub = Hub.from_file(write_config(tmp_path, oidc, f"http://127.0.0.1:{sock.getsockname()[1]}/graphql"))
        async with hub:
            assert hub.credentials is not None
            flow = ConnectFlow(hub.credentials)
            started = await flow.start("shop", "alice")
            ident = (await flow.complete(await authorize(started.url, oidc.redirect_uri))).id
            assert (await hub.call(LOCAL, "shop.whoami")).value == "alice"

            denied.add(await access_token(hub, ident))  # the API stops taking it; the provider still does
            assert (await hub.call(LOCAL, "shop.whoami")).value == "alice"
            assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200], "one refresh"

            denied.add("alice")  # every token of hers, the next one too
            with pytest.raises(CredentialsError) as info:
                await hub.call(LOCAL, "shop.whoami")
            assert info.value.code == "reconnect_required"
    assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200, 200], "once per call"


async def access_token(hub: Hub, ident: str) -> str:
    assert hub.credentials is not None
    _, material = await hub.credentials.store.load(ident)
    assert material.tokens is not None
    return material.tokens.access_token.reveal()
