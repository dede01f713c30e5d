"""OAuth 2 provider definitions (data only, validated by a JSON Schema) and authorization-server metadata.

Built-in definitions live in ``providers/builtin.yaml``; ``toolbridge.yaml`` may add or override them under
``providers:``. A definition with an ``issuer`` and no endpoints is completed from the server's RFC 8414 /
OpenID metadata, which must advertise S256 PKCE or the connect flow is refused.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import httpx2
import jsonschema
import yaml

from toolbridge._suggest import close_matches
from toolbridge._urlguard import RequestPin
from toolbridge.errors import ConfigurationError, UpstreamUnavailable, did_you_mean

__all__ = [
    "ProviderDef",
    "ServerMetadata",
    "builtin_providers",
    "discover",
    "load_providers",
    "metadata_urls",
]


@dataclass(frozen=True, slots=True)
class ProviderDef:
    name: str
    display_name: str
    scope_separator: str
    authorize_url: str | None = None
    token_url: str | None = None
    issuer: str | None = None
    revocation_url: str | None = None
    default_scopes: tuple[str, ...] = ()
    pkce: bool = True
    token_auth_method: str = "client_secret_post"
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    refresh_supported: bool = True
    refresh_rotates: bool = False
    requires_scope: str | None = None
    error_in_body: bool = False
    probe_url: str | None = None
    probe_method: str = "GET"

    def with_params(self, values: Mapping[str, str]) -> ProviderDef:
        """URLs with their ``{placeholders}`` filled from ``values`` or the defaults."""
        merged = {**self.params, **values}

        def fill(url: str | None) -> str | None:
            if url is None:
                return None
            try:
                return url.format_map(merged)
            except KeyError as exc:
                raise ConfigurationError(
                    f"provider {self.name!r} needs the parameter {exc}",
                    hint=f"set params: {{{exc.args[0]}: ...}}",
                ) from None

        return replace(
            self,
            authorize_url=fill(self.authorize_url),
            token_url=fill(self.token_url),
            revocation_url=fill(self.revocation_url),
            probe_url=fill(self.probe_url),
        )


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("toolbridge.credentials").joinpath("providers/provider.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _parse(name: str, doc: Mapping[str, Any], *, where: str) -> ProviderDef:
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(dict(doc)), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        path = ".".join(str(p) for p in first.path) or "(top)"
        raise ConfigurationError(
            f"{where}: provider {name!r}: {path}: {first.message}",
            hint="see the provider schema in docs/credentials.md",
        )
    refresh = doc.get("refresh", {})
    probe = doc.get("probe", {})
    return ProviderDef(
        name=name,
        display_name=doc["display_name"],
        scope_separator=doc["scope_separator"],
        authorize_url=doc.get("authorize_url"),
        token_url=doc.get("token_url"),
        issuer=doc.get("issuer"),
        revocation_url=doc.get("revocation_url"),
        default_scopes=tuple(doc.get("default_scopes", ())),
        pkce=doc.get("pkce", True),
        token_auth_method=doc.get("token_auth_method", "client_secret_post"),
        authorize_params=dict(doc.get("authorize_params", {})),
        params=dict(doc.get("params", {})),
        refresh_supported=refresh.get("supported", True),
        refresh_rotates=refresh.get("rotates", False),
        requires_scope=refresh.get("requires_scope"),
        error_in_body=refresh.get("error_in_body", False),
        probe_url=probe.get("url"),
        probe_method=probe.get("method", "GET"),
    )


@functools.cache
def builtin_providers() -> Mapping[str, ProviderDef]:
    text = resources.files("toolbridge.credentials").joinpath("providers/builtin.yaml").read_text()
    docs: dict[str, Any] = yaml.safe_load(text)
    return {name: _parse(name, doc, where="builtin.yaml") for name, doc in docs.items()}


def load_providers(extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, ProviderDef]:
    """The built-in definitions plus the configuration's own (which win on a name clash)."""
    found = dict(builtin_providers())
    for name, doc in (extra or {}).items():
        found[name] = _parse(name, doc, where="toolbridge.yaml providers")
    return found


def lookup(providers: Mapping[str, ProviderDef], name: str) -> ProviderDef:
    try:
        return providers[name]
    except KeyError:
        raise ConfigurationError(
            f"no OAuth provider named {name!r}",
            hint=did_you_mean(close_matches(name, providers))
            or "define it under 'providers:' in toolbridge.yaml; built in: " + ", ".join(sorted(providers)),
        ) from None


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """What the connect flow needs from an authorization server."""

    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    code_challenge_methods: tuple[str, ...] | None
    """None: the server did not say (static definitions); () or no S256: PKCE cannot be proven."""
    iss_parameter_supported: bool = False
    registration_endpoint: str | None = None
    """RFC 7591 dynamic client registration, when the server offers it."""
    token_auth_methods: tuple[str, ...] | None = None
    """``token_endpoint_auth_methods_supported`` (None: the server did not say)."""

    @classmethod
    def from_provider(cls, provider: ProviderDef) -> ServerMetadata:
        if provider.authorize_url is None or provider.token_url is None:
            raise ConfigurationError(
                f"provider {provider.name!r} has no endpoints; discover them from its issuer"
            )
        return cls(provider.issuer, provider.authorize_url, provider.token_url, None)


async def discover(
    client: httpx2.AsyncClient, issuer: str, *, pin: RequestPin | None = None
) -> ServerMetadata:
    """RFC 8414 metadata, falling back to OpenID Connect discovery; the issuer must match exactly.

    With ``pin`` (an issuer a remote party chose) each request goes to the address it checks, and no
    redirect is followed."""
    for url in metadata_urls(issuer):
        request = client.build_request("GET", url, headers={"Accept": "application/json"})
        if pin is not None:
            await pin(request)
        try:
            response = await client.send(request, follow_redirects=client.follow_redirects and pin is None)
        except httpx2.HTTPError as exc:
            raise UpstreamUnavailable(
                f"cannot read the authorization server metadata at {url}: {type(exc).__name__}", sent=True
            ) from exc
        if response.status_code == 200:
            try:
                doc = response.json()
            except ValueError:
                doc = None
            return _metadata(doc, issuer, url)
        if response.status_code >= 500 or response.status_code == 429:  # a server in trouble, not one
            raise UpstreamUnavailable(  # without metadata: asking the next location would not help
                f"the authorization server metadata at {url} answered {response.status_code}",
                sent=True,
                hint="the server may be down for a moment; try again shortly",
            )
    raise ConfigurationError(
        f"{issuer} publishes no authorization server metadata",
        hint="give authorize_url and token_url instead",
    )


def metadata_urls(issuer: str) -> tuple[str, ...]:
    """Where metadata may be, in the order the MCP authorization spec gives (RFC 8414 §3.1 inserts the
    well-known part before the issuer's path; OpenID Connect appends it), then the older appended form."""
    parts = urlsplit(issuer)
    origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    if not path:
        return (
            f"{origin}/.well-known/oauth-authorization-server",
            f"{origin}/.well-known/openid-configuration",
        )
    return (
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
        f"{origin}{path}/.well-known/oauth-authorization-server",
    )


def _metadata(doc: Any, issuer: str, url: str) -> ServerMetadata:
    if not isinstance(doc, dict) or doc.get("issuer") != issuer:
        raise ConfigurationError(
            f"the metadata at {url} names issuer {doc.get('issuer') if isinstance(doc, dict) else None!r}, "
            f"not {issuer!r}",
            hint="configure the issuer exactly as the server names itself (RFC 8414 §3.3)",
        )
    methods = doc.get("code_challenge_methods_supported")
    registration = doc.get("registration_endpoint")
    for key in ("authorization_endpoint", "token_endpoint"):
        if not isinstance(doc.get(key), str):
            raise ConfigurationError(f"the metadata at {url} has no {key}", hint="RFC 8414 §2 requires it")
    return ServerMetadata(
        issuer=issuer,
        authorization_endpoint=str(doc["authorization_endpoint"]),
        token_endpoint=str(doc["token_endpoint"]),
        code_challenge_methods=tuple(methods) if isinstance(methods, list) else (),
        iss_parameter_supported=bool(doc.get("authorization_response_iss_parameter_supported", False)),
        registration_endpoint=str(registration) if isinstance(registration, str) else None,
        token_auth_methods=_strings(doc.get("token_endpoint_auth_methods_supported")),
    )


def _strings(value: Any) -> tuple[str, ...] | None:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else None
