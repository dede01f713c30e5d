"""Signing deliveries the way each provider does: for `toolbridge hooks test` and tests of receivers."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from standardwebhooks.webhooks import Webhook

__all__ = ["sign"]


def sign(
    kind: str,
    secret: str,
    body: bytes,
    *,
    now: float,
    event_type: str = "ping",
    delivery_id: str | None = None,
    header: str | None = None,
    algorithm: str = "sha256",
    encoding: str = "hex",
    prefix: str = "",
    signed: Sequence[str] = ("body",),
    separator: str = ".",
    timestamp_header: str | None = None,
) -> dict[str, str]:
    """The headers a ``kind`` sender (standard, github, stripe, slack, hmac) puts on ``body``."""
    stamp = str(int(now))
    delivery_id = delivery_id or "test_" + secrets.token_hex(8)
    json_type = {"content-type": "application/json"}
    if kind == "standard":
        when = dt.datetime.fromtimestamp(int(now), dt.UTC)
        signature = Webhook(secret).sign(delivery_id, when, body.decode())
        return {
            **json_type,
            "webhook-id": delivery_id,
            "webhook-timestamp": stamp,
            "webhook-signature": signature,
        }
    if kind == "github":
        digest = _mac(secret, body, "sha256").hex()
        return {
            **json_type,
            "x-hub-signature-256": f"sha256={digest}",
            "x-github-event": event_type,
            "x-github-delivery": delivery_id,
        }
    if kind == "stripe":
        return {
            **json_type,
            "stripe-signature": f"t={stamp},v1={_mac(secret, stamp.encode() + b'.' + body).hex()}",
        }
    if kind == "slack":
        digest = _mac(secret, b"v0:" + stamp.encode() + b":" + body).hex()
        return {**json_type, "x-slack-request-timestamp": stamp, "x-slack-signature": f"v0={digest}"}
    headers = {**json_type}
    if timestamp_header:
        headers[timestamp_header.lower()] = stamp
    assert header is not None, "an hmac source names its signature header"
    parts = [body if p == "body" else _part(p, headers).encode() for p in signed]
    mac = _mac(secret, separator.encode().join(parts), algorithm)
    headers[header.lower()] = prefix + (mac.hex() if encoding == "hex" else base64.b64encode(mac).decode())
    return headers


def _part(part: str, headers: dict[str, str]) -> str:
    kind, _, arg = part.partition(":")
    return headers.get(arg.lower(), "") if kind == "header" else arg


def _mac(secret: str, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), message, getattr(hashlib, algorithm)).digest()
