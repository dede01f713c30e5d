"""A small in-memory OAuth server and resource API for unit tests (httpx2.MockTransport handlers).

Rotating refresh tokens with reuse detection, like the real servers: a refresh token works once; using it
again revokes the whole family. The end-to-end tests use the real oidc-provider instead.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx2

from toolbridge import Hub, Principal
from toolbridge.audit import AuditLog
from toolbridge.connectors import Invocation
from toolbridge.credentials import (
    AuthConfig,
    Connection,
    CredentialManager,
    Keyring,
    MasterKey,
    ProviderDef,
    StaticKeys,
    Vault,
)
from toolbridge.errors import UpstreamStatusError
from toolbridge.resilience import Resilience
from toolbridge.storage import Database

TOKEN_URL = "https://auth.test/token"
API_URL = "https://api.test/me"


@dataclass
class FakeAuthServer:
    expires_in: int = 3600
    token_requests: list[dict[str, str]] = field(default_factory=list)
    access: set[str] = field(default_factory=set)
    live_refresh: set[str] = field(default_factory=set)
    used_refresh: set[str] = field(default_factory=set)
    revoked_family: bool = False
    fail_with: int | None = None
    api_calls: list[str | None] = field(default_factory=list)
    rotate: bool = True

    def issue(self) -> dict[str, object]:
        access, refresh = "at-" + secrets.token_hex(8), "rt-" + secrets.token_hex(8)
        self.access.add(access)
        self.live_refresh.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token":
            return self._token(dict(parse_qsl(request.content.decode())))
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        self.api_calls.append(token)
        if token in self.access and not self.revoked_family:
            return httpx2.Response(200, json={"user": "alice"})
        return httpx2.Response(401, json={"error": "invalid_token"})

    def _token(self, form: dict[str, str]) -> httpx2.Response:
        self.token_requests.append(form)
        if self.fail_with is not None:
            return httpx2.Response(self.fail_with, text="busy")
        if form.get("grant_type") == "authorization_code":
            if not form.get("code_verifier") or form.get("code") != "good-code":
                return httpx2.Response(400, json={"error": "invalid_grant"})
            return httpx2.Response(200, json=self.issue())
        if form.get("grant_type") in ("client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"):
            doc = self.issue()
            doc.pop("refresh_token")
            return httpx2.Response(200, json=doc)
        token = form.get("refresh_token", "")
        if token in self.used_refresh or self.revoked_family:
            self.revoked_family = True
            self.access.clear()
            return httpx2.Response(400, json={"error": "invalid_grant", "error_description": "grant revoked"})
        if token not in self.live_refresh:
            return httpx2.Response(400, json={"error": "invalid_grant"})
        if self.rotate:
            self.live_refresh.discard(token)
            self.used_refresh.add(token)
        return httpx2.Response(200, json=self.issue())

    def revoke_access(self) -> None:
        self.access.clear()

    @property
    def refreshes(self) -> int:
        return sum(1 for f in self.token_requests if f.get("grant_type") == "refresh_token")


class HeldTokenEndpoint:
    """The server's handler, except that each token request waits for ``release`` (``entered`` is set once
    one has arrived): a token endpoint that hangs."""

    def __init__(self, server: FakeAuthServer) -> None:
        self.server = server
        self.entered = anyio.Event()
        self.release = anyio.Event()

    async def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token":
            self.entered.set()
            await self.release.wait()
        return self.server.handler(request)


def provider() -> ProviderDef:
    return ProviderDef(
        name="fake",
        display_name="Fake",
        scope_separator=" ",
        authorize_url="https://auth.test/authorize",
        token_url=TOKEN_URL,
        refresh_rotates=True,
    )


def oauth_config(**kw: object) -> AuthConfig:
    return AuthConfig(scheme="oauth2", provider=provider(), client_id="cid", **kw)  # type: ignore[arg-type]


def api_tool(client: httpx2.AsyncClient, url: str = API_URL) -> Callable[[Invocation], Awaitable[Any]]:
    """A read-only tool that GETs ``url`` with the call's credentials (what a connector does)."""

    async def me(invocation: Invocation) -> Any:
        assert invocation.credentials is not None
        response = await client.get(url, auth=invocation.credentials.auth)
        if response.status_code >= 400:
            raise UpstreamStatusError(
                f"GET {httpx2.URL(url).path} returned {response.status_code}",
                upstream_status=response.status_code,
                tool="me",
            )
        return response.json()

    return me


def make_hub(
    db: Database,
    server: FakeAuthServer,
    bindings: dict[str, AuthConfig],
    *,
    clock: Callable[[], float],
    keys: Keyring | None = None,
    cache_ttl: float = 5.0,
    handler: Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]] | None = None,
    on_reauth: Callable[[Connection, str], None] | None = None,
) -> tuple[Hub, CredentialManager, httpx2.AsyncClient]:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler or server.handler))
    vault = Vault(db, StaticKeys(keys or Keyring(MasterKey.generate())))
    manager = CredentialManager(
        vault,
        bindings,
        client=client,
        clock=clock,
        cache_ttl=cache_ttl,
        audit=AuditLog(db),
        on_reauth=on_reauth,
    )

    async def no_wait(_seconds: float) -> None:
        return None

    hub = Hub(database=db, credentials=manager, resilience=Resilience(sleep=no_wait))
    for connector in bindings:
        hub.tool(api_tool(client), connector=connector, name="me", read_only=True)
    return hub, manager, client


LOCAL = Principal.local()


def dumps(value: object) -> str:
    return json.dumps(value, default=str)
