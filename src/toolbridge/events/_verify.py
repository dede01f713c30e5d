"""Verifiers of inbound webhook deliveries: Standard Webhooks, GitHub, Stripe, Slack and generic HMAC.

Every verifier works on the raw request bytes (never a re-serialised body), compares signatures in constant
time (:func:`hmac.compare_digest`), accepts any of its keys (two during a rotation) and, where the scheme
signs a timestamp, refuses one more than ``tolerance`` seconds off in either direction. A verified delivery
comes back as a :class:`Delivery`: the provider's delivery id (for deduplication), the event type, subject
and JSON payload. Refusals raise :class:`~toolbridge.errors.AuthenticationError` (401: unsigned, badly
signed or stale) or :class:`~toolbridge.errors.BadRequest` (400: malformed).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import math
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from toolbridge import _jsonin as jsonin
from toolbridge.errors import AuthenticationError, BadRequest, ConfigurationError

__all__ = [
    "Delivery",
    "Fields",
    "GitHubVerifier",
    "HmacScheme",
    "HmacVerifier",
    "SlackVerifier",
    "StandardVerifier",
    "StripeVerifier",
    "Verifier",
    "dig",
]

Headers = Mapping[str, str]
"""Request headers with lower-case names."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified inbound delivery."""

    delivery_id: str
    type: str
    subject: str | None
    payload: Any
    challenge: str | None = None
    """Slack's ``url_verification``: answer with this and store nothing."""

    def __post_init__(self) -> None:
        if len(self.delivery_id) > MAX_DELIVERY_ID:  # cut, two ids became one: the second event was lost
            raise BadRequest(
                f"the delivery's id is {len(self.delivery_id):,} characters long; at most "
                f"{MAX_DELIVERY_ID} are accepted",
                hint="send a shorter delivery id (it identifies the delivery for deduplication)",
            )


MAX_DELIVERY_ID = 255


class Verifier(Protocol):
    def verify(self, body: bytes, headers: Headers, now: float) -> Delivery:
        """The delivery, or AuthenticationError / BadRequest."""
        ...


def dig(value: Any, path: str | None) -> Any:
    """The value at dotted ``path`` in nested mappings (None when any step is missing)."""
    if path is None:
        return None
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _unsigned(what: str) -> AuthenticationError:
    return AuthenticationError(
        f"the delivery carries no {what}",
        hint="check that the sender signs its webhooks and is configured with this source's URL",
    )


def _bad_signature() -> AuthenticationError:
    return AuthenticationError(
        "the delivery's signature does not match any secret of this source",
        hint="check that the sender and toolbridge use the same signing secret, and that nothing "
        "between them rewrites the body",
    )


def _check_time(stamp: str, now: float, tolerance: float) -> None:
    try:
        signed = float(stamp)
    except ValueError:
        signed = math.nan
    if not math.isfinite(signed):  # 'nan' compares false with everything: it skipped the window below
        raise BadRequest(f"the signed timestamp {stamp[:40]!r} is not a Unix time")
    if abs(now - signed) > tolerance:
        raise AuthenticationError(
            f"the delivery's signed timestamp is {signed - now:+.0f} s from now, beyond ±{tolerance:g} s",
            hint="a replayed or delayed delivery is refused; check the sender's and this server's clocks",
        )


def _json(body: bytes) -> Any:
    try:
        return jsonin.loads(body)
    except ValueError as exc:
        raise BadRequest(
            f"the delivery's body is not valid JSON: {exc}", hint="send the event as application/json"
        ) from None


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _equal_any(expected: Sequence[bytes], presented: Sequence[bytes]) -> bool:
    matched = False
    for want in expected:
        for got in presented:
            matched |= hmac.compare_digest(want, got)
    return matched


@dataclass(frozen=True, slots=True)
class Fields:
    """Where the type and subject are read, when the operator overrides the verifier's defaults."""

    type_field: str | None = None
    subject_field: str | None = None

    def type(self, payload: Any, default: str) -> str:
        found = dig(payload, self.type_field)
        return str(found) if found is not None else default

    def subject(self, payload: Any, default: Any) -> str | None:
        found = dig(payload, self.subject_field) if self.subject_field else default
        return None if found is None else str(found)[:255]


class StandardVerifier:
    """Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64> …``)."""

    def __init__(self, secrets: Sequence[str], *, tolerance: float = 300.0, fields: Fields | None = None):
        try:
            self._hooks = [Webhook(s) for s in secrets]
        except (ValueError, EmptyWebhookSecretError, RuntimeError) as exc:
            raise ConfigurationError(
                "a Standard Webhooks secret is not valid base64 ('whsec_' then base64)",
                hint="copy the secret again from the sender's settings",
            ) from exc
        self._tolerance = tolerance
        self._fields = fields or Fields()

    def verify(self, body: bytes, headers: Headers, now: float) -> Delivery:
        msg_id, stamp, signature = (headers.get(f"webhook-{h}") for h in ("id", "timestamp", "signature"))
        if not (msg_id and stamp and signature):
            raise _unsigned("webhook-id, webhook-timestamp and webhook-signature headers")
        _check_time(stamp, now, self._tolerance)
        try:
            text = body.decode()
            when = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the delivery is not UTF-8 or its timestamp not an integer") from None
        expected = [base64.b64decode(h.sign(msg_id, when, text).split(",", 1)[1]) for h in self._hooks]
        if not _equal_any(expected, _versioned(signature, "v1")):
            raise _bad_signature()
        payload = _json(body)
        kind = self._fields.type(payload, str(dig(payload, "type") or "webhook"))
        return Delivery(msg_id, kind, self._fields.subject(payload, dig(payload, "subject")), payload)


def _versioned(header: str, version: str) -> list[bytes]:
    out = []
    for item in header.split():
        name, _, value = item.partition(",")
        if name == version:
            try:
                out.append(base64.b64decode(value, validate=True))
            except binascii.Error:
                continue
    return out


def _hmac(keys: Sequence[bytes], message: bytes, algorithm: str = "sha256") -> list[bytes]:
    return [hmac.new(k, message, algorithm).digest() for k in keys]


def _hex(values: Sequence[str]) -> list[bytes]:
    out = []
    for v in values:
        try:
            out.append(bytes.fromhex(v))
        except ValueError:
            continue
    return out


class GitHubVerifier:
    """GitHub: ``X-Hub-Signature-256: sha256=<hex>`` over the body; ``X-GitHub-Delivery`` is the id."""

    def __init__(self, secrets: Sequence[str], *, fields: Fields | None = None) -> None:
        self._keys = [s.encode() for s in secrets]
        self._fields = fields or Fields()

    def verify(self, body: bytes, headers: Headers, now: float) -> Delivery:
        signature = headers.get("x-hub-signature-256")
        if not signature:
            raise _unsigned("X-Hub-Signature-256 header")
        scheme, _, value = signature.partition("=")
        if scheme != "sha256" or not _equal_any(_hmac(self._keys, body), _hex([value])):
            raise _bad_signature()
        payload = _github_payload(body, headers)
        event = headers.get("x-github-event", "webhook")
        action = dig(payload, "action")
        kind = self._fields.type(payload, f"{event}.{action}" if isinstance(action, str) else event)
        subject = self._fields.subject(payload, dig(payload, "repository.full_name"))
        return Delivery(headers.get("x-github-delivery") or _digest(body), kind, subject, payload)


def _github_payload(body: bytes, headers: Headers) -> Any:
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        return _json(form.get("payload", [""])[0].encode())
    return _json(body)


class StripeVerifier:
    """Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`` over ``<t>.<body>``; the event id dedupes."""

    def __init__(self, secrets: Sequence[str], *, tolerance: float = 300.0, fields: Fields | None = None):
        self._keys = [s.encode() for s in secrets]
        self._tolerance = tolerance
        self._fields = fields or Fields()

    def verify(self, body: bytes, headers: Headers, now: float) -> Delivery:
        header = headers.get("stripe-signature")
        if not header:
            raise _unsigned("Stripe-Signature header")
        pairs = [item.partition("=") for item in header.split(",")]
        stamps = [v for k, _, v in pairs if k.strip() == "t"]
        if len(stamps) != 1:
            raise BadRequest("the Stripe-Signature header has no single t= timestamp")
        _check_time(stamps[0], now, self._tolerance)
        signed = stamps[0].encode() + b"." + body
        if not _equal_any(_hmac(self._keys, signed), _hex([v for k, _, v in pairs if k.strip() == "v1"])):
            raise _bad_signature()
        payload = _json(body)
        event_id = dig(payload, "id")
        kind = self._fields.type(payload, str(dig(payload, "type") or "webhook"))
        subject = self._fields.subject(payload, dig(payload, "data.object.id"))
        return Delivery(str(event_id) if event_id else _digest(body), kind, subject, payload)


class SlackVerifier:
    """Slack v0: ``X-Slack-Signature: v0=<hex>`` over ``v0:<X-Slack-Request-Timestamp>:<body>``; answers
    the ``url_verification`` challenge."""

    def __init__(self, secrets: Sequence[str], *, tolerance: float = 300.0, fields: Fields | None = None):
        self._keys = [s.encode() for s in secrets]
        self._tolerance = tolerance
        self._fields = fields or Fields()

    def verify(self, body: bytes, headers: Headers, now: float) -> Delivery:
        stamp, signature = headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature")
        if not (stamp and signature):
            raise _unsigned("X-Slack-Request-Timestamp and X-Slack-Signature headers")
        _check_time(stamp, now, self._tolerance)
        version, _, value = signature.partition("=")
        signed = b"v0:" + stamp.encode() + b":" + body
        if version != "v0" or not _equal_any(_hmac(self._keys, signed), _hex([value])):
            raise _bad_signature()
        payload = _slack_payload(body, headers)
        if dig(payload, "type") == "url_verification":
            return Delivery("", "url_verification", None, payload, challenge=str(dig(payload, "challenge")))
        default_type = (
            dig(payload, "event.type") or dig(payload, "type") or dig(payload, "command") or "slack"
        )
        kind = self._fields.type(payload, str(default_type))
        subject = self._fields.subject(payload, dig(payload, "event.channel") or dig(payload, "channel_id"))
        event_id = dig(payload, "event_id")
        return Delivery(str(event_id) if event_id else _digest(body), kind, subject, payload)


def _slack_payload(body: bytes, headers: Headers) -> Any:
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        return _json(form["payload"].encode()) if "payload" in form else form
    return _json(body)


@dataclass(frozen=True, slots=True)
class HmacScheme:
    """A generic HMAC scheme: what is signed, with which algorithm, where the signature is."""

    header: str
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    signed: tuple[str, ...] = ("body",)
    separator: str = "."
    timestamp_header: str | None = None
    id_header: str | None = None
    type_header: str | None = None


class HmacVerifier:
    """Generic HMAC: ``signed`` parts (``body``, ``header:<Name>``, ``text:<literal>``) joined by
    ``separator``, signed with ``algorithm``, ``encoding``-encoded after ``prefix`` in ``header``."""

    def __init__(
        self,
        secrets: Sequence[str],
        scheme: HmacScheme,
        *,
        tolerance: float = 300.0,
        fields: Fields | None = None,
    ) -> None:
        self._keys = [s.encode() for s in secrets]
        self._scheme = scheme
        self._tolerance = tolerance
        self._fields = fields or Fields()
        self._decode: Callable[[str], list[bytes]] = _hex_one if scheme.encoding == "hex" else _b64_one

    def verify(self, body: bytes, headers: Headers, now: float) -> Delivery:
        s = self._scheme
        signature = headers.get(s.header.lower())
        if not signature:
            raise _unsigned(f"{s.header} header")
        if s.timestamp_header is not None:
            stamp = headers.get(s.timestamp_header.lower())
            if not stamp:
                raise _unsigned(f"{s.timestamp_header} header")
            _check_time(stamp, now, self._tolerance)
        presented = self._decode(signature.removeprefix(s.prefix)) if signature.startswith(s.prefix) else []
        if not _equal_any(_hmac(self._keys, self._message(body, headers), s.algorithm), presented):
            raise _bad_signature()
        payload = _json(body)
        delivery_id = headers.get(s.id_header.lower()) if s.id_header else None
        default_type = headers.get(s.type_header.lower()) if s.type_header else None
        kind = self._fields.type(payload, default_type or "webhook")
        return Delivery(delivery_id or _digest(body), kind, self._fields.subject(payload, None), payload)

    def _message(self, body: bytes, headers: Headers) -> bytes:
        parts = []
        for part in self._scheme.signed:
            kind, _, arg = part.partition(":")
            parts.append(
                body if kind == "body" else (headers.get(arg.lower(), "") if kind == "header" else arg)
            )
        return self._scheme.separator.encode().join(p if isinstance(p, bytes) else p.encode() for p in parts)


def _hex_one(value: str) -> list[bytes]:
    return _hex([value])


def _b64_one(value: str) -> list[bytes]:
    try:
        return [base64.b64decode(value, validate=True)]
    except binascii.Error:
        return []
