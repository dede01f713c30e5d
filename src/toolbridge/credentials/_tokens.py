"""Token sets and the token endpoint: code exchange, refresh, client credentials, JWT bearer (RFC 7523).

Failures are sorted once, here: ``invalid_grant`` means the grant is dead (a person must reconnect);
a 5xx or a transport failure may pass and never marks a connection dead; anything else is reported as
the provider said it, without echoing the request (which carries secrets): a description that quotes
what it was sent is redacted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

from toolbridge._redact import forms, redact_text
from toolbridge._urlguard import RequestPin
from toolbridge.credentials._secret import Secret
from toolbridge.errors import (
    ConfigurationError,
    CredentialsError,
    TokenRefreshFailed,
    ToolbridgeError,
    UpstreamError,
)
from toolbridge.resilience._headers import parse_retry_after

__all__ = ["ClientAuth", "GrantDead", "TokenEndpoint", "TokenSet", "refresh_failure"]

_SECRET_FIELDS = ("code", "code_verifier", "refresh_token", "client_secret", "assertion", "subject_token")


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: Secret
    refresh_token: Secret | None = None
    expires_at: float | None = None
    """Wall-clock (``time.time()``) expiry of the access token, or None if the server gave none."""
    token_type: str = "Bearer"
    scope: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    issued_at: float | None = None
    """When the token endpoint answered (None: stored before this was kept)."""

    def refresh_at(self, skew: float) -> float | None:
        """When to get a new token: ``skew`` seconds before expiry, but never earlier than half the token's
        lifetime (a provider's 30-second token under the 60-second default made every call refresh)."""
        if self.expires_at is None:
            return None
        if self.issued_at is not None:
            skew = min(skew, max(0.0, self.expires_at - self.issued_at) / 2)
        return self.expires_at - skew

    def to_secret(self) -> Secret:
        doc = {
            "access_token": self.access_token.reveal(),
            "refresh_token": self.refresh_token.reveal() if self.refresh_token else None,
            "expires_at": self.expires_at,
            "token_type": self.token_type,
            "scope": self.scope,
            "extra": dict(self.extra),
            "issued_at": self.issued_at,
        }
        return Secret(json.dumps(doc))

    @classmethod
    def from_secret(cls, secret: Secret) -> TokenSet:
        doc = json.loads(secret.reveal())
        refresh = doc.get("refresh_token")
        return cls(
            Secret(doc["access_token"]),
            Secret(refresh) if refresh else None,
            doc.get("expires_at"),
            doc.get("token_type") or "Bearer",
            doc.get("scope"),
            doc.get("extra") or {},
            doc.get("issued_at"),
        )

    @classmethod
    def from_response(
        cls, doc: Mapping[str, Any], *, now: float, previous: TokenSet | None = None
    ) -> TokenSet:
        expires_in = doc.get("expires_in")
        refresh = doc.get("refresh_token")
        kept = previous.refresh_token if previous is not None else None  # non-rotating providers
        return cls(
            access_token=Secret(str(doc["access_token"])),
            refresh_token=Secret(str(refresh)) if refresh else kept,
            expires_at=now + float(expires_in) if isinstance(expires_in, int | float) else None,
            token_type=str(doc.get("token_type") or "Bearer"),
            scope=str(doc["scope"]) if doc.get("scope") else None,
            extra={k: str(doc[k]) for k in ("instance_url", "id_token_hint") if k in doc},
            issued_at=now,
        )


class GrantDead(CredentialsError):
    """The token endpoint answered ``invalid_grant``: the refresh token is revoked, expired or reused."""

    code = "reconnect_required"


@dataclass(frozen=True, slots=True)
class ClientAuth:
    client_id: str
    client_secret: Secret | None = None
    method: str = "client_secret_post"


class TokenEndpoint:
    """POSTs to one token endpoint with one client's authentication."""

    def __init__(
        self,
        client: httpx2.AsyncClient,
        url: str,
        auth: ClientAuth,
        *,
        resource: str | None = None,
        error_in_body: bool = False,
        clock: Any = time.time,
        pin: RequestPin | None = None,
    ) -> None:
        """``pin``: for an endpoint a remote party chose, sends each request to the address it checks."""
        self._client = client
        self._pin = pin
        self.url = url
        self._auth = auth
        self._resource = resource
        self._error_in_body = error_in_body
        self._clock = clock

    async def exchange_code(self, code: str, *, verifier: str, redirect_uri: str) -> TokenSet:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        form["code_verifier"] = verifier
        return await self._request(form)

    async def refresh(self, tokens: TokenSet, *, scope: str | None = None) -> TokenSet:
        if tokens.refresh_token is None:
            raise GrantDead("the connection has no refresh token", hint="a person must reconnect the account")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token.reveal()}
        if scope:
            form["scope"] = scope
        return await self._request(form, previous=tokens)

    async def client_credentials(self, *, scope: str | None = None) -> TokenSet:
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        return await self._request(form)

    async def jwt_bearer(self, assertion: Secret, *, scope: str | None = None) -> TokenSet:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion.reveal()}
        if scope:
            form["scope"] = scope
        return await self._request(form)

    async def token_exchange(
        self,
        subject_token: Secret,
        *,
        subject_token_type: str,
        audience: str | None = None,
        scope: str | None = None,
    ) -> TokenSet:
        """RFC 8693: the caller's token (``subject_token``) for one issued to this client for ``audience``."""
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": subject_token.reveal(),
            "subject_token_type": subject_token_type,
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        }
        if audience:
            form["audience"] = audience
        if scope:
            form["scope"] = scope
        return await self._request(form)

    async def _request(self, form: dict[str, str], *, previous: TokenSet | None = None) -> TokenSet:
        if self._resource:
            form["resource"] = self._resource
        headers = {"Accept": "application/json"}
        auth: httpx2.BasicAuth | None = None
        if self._auth.method == "client_secret_basic" and self._auth.client_secret is not None:
            auth = httpx2.BasicAuth(self._auth.client_id, self._auth.client_secret.reveal())
        else:
            form["client_id"] = self._auth.client_id
            if self._auth.client_secret is not None and self._auth.method != "none":
                form["client_secret"] = self._auth.client_secret.reveal()
        carried = [v for k, v in form.items() if k in _SECRET_FIELDS]
        if auth is not None and self._auth.client_secret is not None:
            carried.append(self._auth.client_secret.reveal())
        request = self._client.build_request("POST", self.url, data=form, headers=headers)
        if self._pin is not None:
            await self._pin(request)
        started = self._clock()
        try:
            response = await self._client.send(
                request,
                auth=httpx2.USE_CLIENT_DEFAULT if auth is None else auth,
                follow_redirects=self._client.follow_redirects and self._pin is None,
            )
        except httpx2.HTTPError as exc:
            sent = not isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout)
            raise TokenRefreshFailed(
                f"the token endpoint {_host(self.url)} failed: {type(exc).__name__}"
                + (" after the request was sent" if sent else ""),
                hint="the connection is kept; try again shortly",
            ) from None
        secrets = forms(carried, basic_user=self._auth.client_id if auth else None)
        return self._parse(response, started, previous, secrets)

    def _parse(
        self,
        response: httpx2.Response,
        started: float,
        previous: TokenSet | None,
        secrets: tuple[str, ...],
    ) -> TokenSet:
        if response.status_code >= 500 or response.status_code == 429:
            busy = TokenRefreshFailed(
                f"the token endpoint {_host(self.url)} answered {response.status_code}",
                hint="the connection is kept; try again shortly",
            )
            busy.retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise busy
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise TokenRefreshFailed(
                f"the token endpoint {_host(self.url)} answered {response.status_code} without JSON",
                hint="the connection is kept; try again shortly",
            )
        failed = response.is_error or "error" in doc or (self._error_in_body and doc.get("ok") is False)
        if failed or "access_token" not in doc:
            raise _oauth_error(doc, response.status_code, self.url, secrets)
        return TokenSet.from_response(doc, now=started, previous=previous)


def _oauth_error(doc: Mapping[str, Any], status: int, url: str, secrets: tuple[str, ...]) -> ToolbridgeError:
    """``secrets``: the forms of what the request carried, masked in what the server says (before it is cut
    short, which could leave the start of a secret).

    ``invalid_grant`` (and its kin) is a dead grant: a person reconnects. ``temporarily_unavailable`` and
    ``server_error`` pass by themselves: a transient failure. Anything else (``invalid_client``,
    ``unauthorized_client``, ``invalid_scope``…) is the operator's to fix in the connector's settings; it
    was a ``reconnect_required`` whose hint said to check the client, and that left the connection
    usable, so every call sent another token request (found by an outside OAuth probe)."""
    error = redact_text(str(doc.get("error") or "no access_token"), secrets)[:64]
    description = redact_text(str(doc.get("error_description") or ""), secrets)[:200]
    text = f"the token endpoint {_host(url)} refused the grant: {error}" + (
        f" ({description})" if description else ""
    )
    if error in ("invalid_grant", "invalid_token", "token_revoked", "token_expired"):
        return GrantDead(text, hint="a person must reconnect the account (toolbridge connect CONNECTOR)")
    if error in ("temporarily_unavailable", "server_error"):
        return TokenRefreshFailed(
            text + f" [HTTP {status}]", hint="the connection is kept; try again shortly"
        )
    return ConfigurationError(
        text + f" [HTTP {status}]",
        hint="an operator checks the connector's client_id, client_secret and scopes against the provider",
    )


def _host(url: str) -> str:
    return httpx2.URL(url).host


def refresh_failure(exc: ToolbridgeError | TimeoutError, timeout: float, host: str) -> ToolbridgeError:
    """What a failed refresh raises: the authorization server unreachable or answering 5xx while its
    metadata is read (a process that had not read it yet) is a transient token_refresh_failed like the token
    endpoint's own, remembered for a moment (it was an upstream_unavailable, or a configuration_error for a
    5xx, asked again by every call: an outside probe counted 198 metadata requests in 4 s)."""
    if isinstance(exc, TimeoutError):
        return TokenRefreshFailed(
            f"the token endpoint {host} did not answer within {timeout:g} s",
            hint="the connection is kept; try again shortly, and if this persists, check that the "
            "authorization server is up",
        )
    if isinstance(exc, UpstreamError) and not isinstance(exc, TokenRefreshFailed):
        return TokenRefreshFailed(
            f"cannot refresh the token: {exc.message}", hint="the connection is kept; try again shortly"
        )
    return exc
