"""Getting a new access token for a connection, by its scheme: refresh, client credentials, JWT bearer,
RFC 8693 token exchange.

The authorization server of a *discovered* binding (an MCP upstream named it) is a remote party's choice,
and its metadata may change after the connect: whenever a process reads that metadata, the server and
its token endpoint pass the hub's SSRF guard (:func:`check_remote`) before anything is sent there, and
every request to them connects to the address the guard checked (:func:`pin_remote`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2

from toolbridge._urlguard import RequestPin, Resolver, URLGuard, system_resolver
from toolbridge.credentials._config import ACCESS_TOKEN_TYPE, AuthConfig
from toolbridge.credentials._jwt import JwtAssertion, ServiceAccount
from toolbridge.credentials._mcp_auth import OAUTH_GUARD, check_remote, pin_remote
from toolbridge.credentials._providers import ServerMetadata, discover
from toolbridge.credentials._secret import Secret
from toolbridge.credentials._store import Material
from toolbridge.credentials._tokens import ClientAuth, GrantDead, TokenEndpoint, TokenSet
from toolbridge.errors import ConfigurationError

__all__ = ["Grants"]


class Grants:
    def __init__(
        self,
        client: httpx2.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        guard: URLGuard = OAUTH_GUARD,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._client = client
        self._clock = clock
        self._guard = guard
        self._resolver = resolver
        self._metadata: dict[str, ServerMetadata] = {}

    async def metadata(self, binding: AuthConfig) -> ServerMetadata:
        """Static endpoints from the definition, else the issuer's metadata (read once per process)."""
        provider = binding.provider
        assert provider is not None
        if provider.authorize_url and provider.token_url:
            return ServerMetadata.from_provider(provider)
        if provider.issuer is None:
            raise ConfigurationError(f"provider {provider.name!r} has neither endpoints nor an issuer")
        found = self._metadata.get(provider.issuer)
        if found is None:
            discovered = binding.discover is not None
            if discovered:
                await check_remote(provider.issuer, "the authorization server", self._guard, self._resolver)
            found = await discover(
                self._client, provider.issuer, pin=self._pin(binding, "the authorization server")
            )
            if discovered:
                await check_remote(found.token_endpoint, "the token endpoint", self._guard, self._resolver)
            self._metadata[provider.issuer] = found
        return found

    def token_host(self, binding: AuthConfig) -> str:
        """The host of the binding's token endpoint, for errors (the issuer's until its metadata is read)."""
        provider = binding.provider
        assert provider is not None
        found = self._metadata.get(provider.issuer or "")
        url = provider.token_url or (found.token_endpoint if found else provider.issuer) or ""
        return httpx2.URL(url).host or provider.name

    async def endpoint(self, binding: AuthConfig, material: Material | None = None) -> TokenEndpoint:
        assert binding.provider is not None
        metadata = await self.metadata(binding)
        secret = material.secret if material is not None and binding.scheme == "client_credentials" else None
        auth = ClientAuth(
            binding.client_id or "", secret or binding.client_secret, binding.provider.token_auth_method
        )
        return TokenEndpoint(
            self._client,
            metadata.token_endpoint,
            auth,
            resource=binding.resource,
            error_in_body=binding.provider.error_in_body,
            clock=self._clock,
            pin=self._pin(binding, "the token endpoint"),
        )

    def _pin(self, binding: AuthConfig, what: str) -> RequestPin | None:
        """For a discovered binding (a remote party chose the server), what pins each of its requests;
        a configured provider's server is the operator's and is reached by its name."""
        return pin_remote(what, self._guard, self._resolver) if binding.discover is not None else None

    async def fetch(
        self, binding: AuthConfig, material: Material, *, subject: Secret | None = None, owner: str = ""
    ) -> TokenSet:
        """A new token set; ``subject`` is the caller's identity token (token_exchange only), ``owner`` the
        principal a per-user assertion is for (jwt_bearer)."""
        endpoint = await self.endpoint(binding, material)
        scope = binding.scope_string()
        if binding.scheme == "token_exchange":
            if subject is None:
                raise GrantDead("no identity token to exchange", hint="connect the identity connector first")
            return await endpoint.token_exchange(
                subject, subject_token_type=ACCESS_TOKEN_TYPE, audience=binding.audience, scope=scope
            )
        if binding.scheme == "oauth2":
            if material.tokens is None:
                raise GrantDead("the connection holds no token", hint="a person must reconnect the account")
            return await endpoint.refresh(material.tokens)
        if binding.scheme == "client_credentials":
            return await endpoint.client_credentials(scope=scope)
        account = ServiceAccount.from_json(material.secret) if material.secret else binding.service_account
        if account is None:
            raise ConfigurationError(
                "a jwt_bearer connection needs a service-account key",
                hint="set service_account_file, or add the connection with its key file",
            )
        subject_claim = binding.subject_for(owner)
        assertion = JwtAssertion.for_service_account(account, scope=scope, subject=subject_claim)
        return await endpoint.jwt_bearer(assertion.sign(), scope=None)
