"""Authentication schemes as ``httpx2.Auth`` flows: each puts one credential onto an outgoing request.

The flows never log and never put a secret anywhere but the header, query parameter or cookie the
scheme defines. OAuth 2 flows (authorization code, client credentials, JWT bearer) all end in a bearer
token read from a :class:`TokenSource` at send time, so a refreshed token is used by the next attempt.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx2

from toolbridge.credentials._secret import Secret
from toolbridge.errors import ConfigurationError

__all__ = [
    "ApiKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "HeaderTemplateAuth",
    "SigV4Auth",
    "StaticToken",
    "TokenSource",
]

Flow = Generator[httpx2.Request, httpx2.Response, None]


class TokenSource(Protocol):
    def token(self) -> Secret: ...


@dataclass(frozen=True, slots=True)
class StaticToken:
    secret: Secret

    def token(self) -> Secret:
        return self.secret


class BearerAuth(httpx2.Auth):
    """``Authorization: Bearer <token>`` with the token current at send time."""

    def __init__(self, source: TokenSource, *, prefix: str = "Bearer") -> None:
        self._source = source
        self._prefix = prefix

    def auth_flow(self, request: httpx2.Request) -> Flow:
        request.headers["Authorization"] = f"{self._prefix} {self._source.token().reveal()}"
        yield request


class ApiKeyAuth(httpx2.Auth):
    """An API key in a header, a query parameter or a cookie, as the service defines."""

    def __init__(
        self, name: str, source: TokenSource, *, location: Literal["header", "query", "cookie"]
    ) -> None:
        if location not in ("header", "query", "cookie"):
            raise ConfigurationError(f"API key location {location!r} is not one of header, query, cookie")
        self._name = name
        self._source = source
        self._location = location

    def auth_flow(self, request: httpx2.Request) -> Flow:
        value = self._source.token().reveal()
        if self._location == "header":
            request.headers[self._name] = value
        elif self._location == "query":
            request.url = request.url.copy_merge_params({self._name: value})
        else:
            cookie = f"{self._name}={value}"
            existing = request.headers.get("Cookie")
            request.headers["Cookie"] = f"{existing}; {cookie}" if existing else cookie
        yield request


class BasicAuth(httpx2.Auth):
    """HTTP basic authentication (RFC 7617)."""

    def __init__(self, username: str, password: Secret) -> None:
        raw = f"{username}:{password.reveal()}".encode()
        self._header = Secret("Basic " + base64.b64encode(raw).decode())

    def auth_flow(self, request: httpx2.Request) -> Flow:
        request.headers["Authorization"] = self._header.reveal()
        yield request


class HeaderTemplateAuth(httpx2.Auth):
    """Headers built from templates such as ``{"Authorization": "Token token={token}"}``."""

    def __init__(self, templates: Mapping[str, str], values: Mapping[str, Secret]) -> None:
        self._templates = dict(templates)
        self._values = dict(values)
        for header, template in self._templates.items():
            try:
                template.format_map({k: "" for k in self._values})
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigurationError(
                    f"header template for {header!r} uses an unknown field {exc}",
                    hint="fields available: " + ", ".join(sorted(self._values)),
                ) from None

    def auth_flow(self, request: httpx2.Request) -> Flow:
        revealed = {k: v.reveal() for k, v in self._values.items()}
        for header, template in self._templates.items():
            request.headers[header] = template.format_map(revealed)
        yield request


class _NoCanonicalRequest(logging.Filter):
    """Drops botocore's DEBUG record of the canonical request it signs: it quotes every signed header, the
    session token (``X-Amz-Security-Token``) among them. (The string to sign and the signature it logs
    too carry no secret.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("CanonicalRequest")


_CANONICAL_REQUEST_FILTER = _NoCanonicalRequest()


class SigV4Auth(httpx2.Auth):
    """AWS Signature Version 4, signed by botocore (install the ``aws`` extra)."""

    requires_request_body = True

    def __init__(
        self,
        *,
        access_key_id: str,
        secret_access_key: Secret,
        region: str,
        service: str,
        session_token: Secret | None = None,
    ) -> None:
        try:
            from botocore.auth import SigV4Auth as Signer  # type: ignore[import-untyped]
            from botocore.credentials import Credentials  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ConfigurationError(
                "AWS SigV4 signing needs botocore", hint="install the extra: pip install 'toolbridge[aws]'"
            ) from exc
        creds = Credentials(
            access_key_id, secret_access_key.reveal(), session_token.reveal() if session_token else None
        )
        self._signer = Signer(creds, service, region)
        logging.getLogger("botocore.auth").addFilter(_CANONICAL_REQUEST_FILTER)  # once: a filter is a set

    def auth_flow(self, request: httpx2.Request) -> Flow:
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

        skip = {"connection", "user-agent", "accept-encoding", "expect"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        aws = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        self._signer.add_auth(aws)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws.headers:
                request.headers[name] = aws.headers[name]
        yield request
