"""JWT bearer assertions (RFC 7523), including Google-style service-account key files."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from toolbridge.credentials._secret import Secret
from toolbridge.errors import ConfigurationError

__all__ = ["JwtAssertion", "ServiceAccount"]


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The fields of a service-account key file that the grant needs."""

    client_email: str
    private_key: Secret
    token_uri: str
    private_key_id: str | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> ServiceAccount:
        return cls.from_json(Secret(Path(path).read_text(encoding="utf-8")), where=str(path))

    @classmethod
    def from_json(cls, text: Secret, *, where: str = "service account key") -> ServiceAccount:
        try:
            doc = json.loads(text.reveal())
            return cls(
                doc["client_email"], Secret(doc["private_key"]), doc["token_uri"], doc.get("private_key_id")
            )
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError(
                f"{where} is not a service-account key file",
                hint="it needs client_email, private_key and token_uri",
            ) from None


@dataclass(frozen=True, slots=True)
class JwtAssertion:
    """Builds signed assertions: ``iss``/``sub`` the client, ``aud`` the token endpoint, short-lived."""

    issuer: str
    audience: str
    private_key: Secret = field(repr=False)
    algorithm: str = "RS256"
    key_id: str | None = None
    subject: str | None = None
    scope: str | None = None
    lifetime: int = 300
    clock: Callable[[], float] = time.time

    @classmethod
    def for_service_account(
        cls, account: ServiceAccount, *, scope: str | None, subject: str | None = None
    ) -> JwtAssertion:
        return cls(
            issuer=account.client_email,
            audience=account.token_uri,
            private_key=account.private_key,
            key_id=account.private_key_id,
            subject=subject,
            scope=scope,
        )

    def sign(self) -> Secret:
        now = int(self.clock())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": self.subject or self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        if self.scope:
            claims["scope"] = self.scope
        header: dict[str, object] = {"alg": self.algorithm, "typ": "JWT"}
        if self.key_id:
            header["kid"] = self.key_id
        from joserfc import jwt  # imported on first use: most hubs never sign an assertion
        from joserfc.errors import JoseError
        from joserfc.jwk import ECKey, RSAKey

        try:
            key = (ECKey if self.algorithm.startswith("ES") else RSAKey).import_key(self.private_key.reveal())
            return Secret(jwt.encode(header, claims, key, algorithms=[self.algorithm]))
        except (JoseError, ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"cannot sign a JWT bearer assertion with {self.algorithm}: {type(exc).__name__}",
                hint="check that the private key is a PEM key of the right type",
            ) from None
