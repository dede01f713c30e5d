"""Short-lived signed URLs: HMAC-SHA256 over what the URL may do, for whom, until when.

A signed URL is a capability: whoever holds it may download that version of that file (or upload to
that path as that principal) until it expires — so they stay short-lived (minutes) and name exactly one
action, workspace, path and principal. The secret is the server's; replicas must share it.

A URL also names the API key it was issued under (``k``): the server looks the holder up again on every
use, so revoking the key (or the agent losing the scope or the workspace role) kills the URL at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from toolbridge.errors import AuthenticationError

__all__ = ["Grant", "UrlSigner"]


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified signature allows."""

    action: str
    workspace: str
    path: str
    principal: str
    version: int
    expires_at: int
    key: str = ""
    """The id of the API key the URL was issued under ("" for in-process callers): it dies with the key."""


class UrlSigner:
    def __init__(self, secret: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 24:
            raise ValueError("the signing secret must be at least 24 bytes")
        self._secret = secret
        self._clock = clock

    def sign(
        self,
        action: str,
        workspace: str,
        path: str,
        principal: str,
        *,
        ttl: float,
        version: int = 0,
        key: str = "",
    ) -> dict[str, str]:
        """Query parameters that authorize ``action`` until now + ``ttl``."""
        expires = int(self._clock() + ttl)
        grant = Grant(action, workspace, path, principal, version, expires, key)
        params = {"path": path, "by": principal, "v": str(version), "exp": str(expires)}
        if key:
            params["k"] = key
        return {**params, "sig": self._mac(grant)}

    def verify(self, action: str, workspace: str, params: Mapping[str, str]) -> Grant:
        try:
            grant = Grant(
                action,
                workspace,
                params["path"],
                params["by"],
                int(params["v"]),
                int(params["exp"]),
                params.get("k", ""),
            )
            given = params["sig"]
        except (KeyError, ValueError):
            raise _invalid() from None
        if not hmac.compare_digest(self._mac(grant), given):
            raise _invalid()
        if grant.expires_at < self._clock():
            raise AuthenticationError(
                "this signed URL has expired",
                hint="ask for a fresh one (workspace.read or workspace.upload_url)",
            )
        return grant

    def _mac(self, grant: Grant) -> str:
        message = "\n".join(
            [
                grant.action,
                grant.workspace,
                grant.path,
                grant.principal,
                str(grant.version),
                str(grant.expires_at),
                grant.key,
            ]
        )
        digest = hmac.new(self._secret, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _invalid() -> AuthenticationError:
    return AuthenticationError(
        "the URL's signature is not valid",
        hint="use the URL exactly as toolbridge returned it, or get a new one",
    )
