"""An OAuth-protected MCP upstream for the end-to-end tests, and oidc-provider set up to protect it.

The upstream is the official SDK's ``MCPServer`` (streamable HTTP) as an OAuth resource server: it
serves RFC 9728 protected resource metadata naming oidc-provider, answers 401 with
``WWW-Authenticate: Bearer … resource_metadata="…"``, and accepts only JWT access tokens signed by the
provider (its JWKS), issued for this upstream (``aud``), with the ``mcp:tools`` scope. It records the
headers of every request it receives, and can be told to refuse tokens it would otherwise accept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from tests.e2e.oidc import OidcServer, oidc_server, require_node_tools

SCOPE = "mcp:tools"


@dataclass
class JwksVerifier:
    """Checks a JWT access token against the provider's keys: signature, issuer, audience, expiry."""

    issuer: str
    resource: str
    refused: set[str] = field(default_factory=set)
    accepted: list[str] = field(default_factory=list)
    _keys: KeySet | None = None

    async def verify_token(self, token: str) -> AccessToken | None:
        if token in self.refused:
            return None
        try:
            decoded = jwt.decode(token, await self._key_set(), algorithms=["RS256", "ES256", "PS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.resource},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        claims = decoded.claims
        self.accepted.append(token)
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            resource=self.resource,
            subject=str(claims.get("sub")),
        )

    async def _key_set(self) -> KeySet:
        if self._keys is None:
            async with httpx2.AsyncClient(trust_env=False, timeout=patience(10)) as client:
                self._keys = KeySet.import_key_set((await client.get(f"{self.issuer}/jwks")).json())
        return self._keys


@dataclass
class Upstream:
    url: str
    verifier: JwksVerifier
    seen: list[dict[str, str]] = field(default_factory=list)

    def bearer_tokens(self) -> list[str]:
        return [h["authorization"].removeprefix("Bearer ") for h in self.seen if "authorization" in h]


def upstream_app(upstream: Upstream) -> Any:
    server = MCPServer(
        "guarded",
        token_verifier=upstream.verifier,
        auth=AuthSettings(
            issuer_url=upstream.verifier.issuer,  # type: ignore[arg-type]
            resource_server_url=upstream.url,  # type: ignore[arg-type]
            required_scopes=[SCOPE],
            validate_token_resource=True,
        ),
    )

    @server.tool(description="Who the access token was issued to.")
    def whoami() -> str:
        token = get_access_token()
        return f"subject={token.subject if token else None}"

    app = server.streamable_http_app(json_response=True)

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            upstream.seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await app(scope, receive, send)

    return recording


@contextmanager
def protected_upstream(folder: Path, *, registration: bool = True) -> Iterator[tuple[OidcServer, Upstream]]:
    """oidc-provider (dynamic registration, JWT tokens for the upstream) and the upstream it protects."""
    require_node_tools()
    with closing(loopback_socket()) as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        env = {"OIDC_RESOURCES": url, "OIDC_REGISTRATION": "1" if registration else "0"}
        with oidc_server(folder, env=env) as server:
            upstream = Upstream(url, JwksVerifier(server.issuer, url))
            with uvicorn_thread(upstream_app(upstream), sock, lifespan="on"):
                yield server, upstream
