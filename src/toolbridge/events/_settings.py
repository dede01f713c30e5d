"""The ``hooks:``, ``events:`` and ``subscriptions:`` sections of ``toolbridge.yaml`` (pydantic, wire edge).

Kept out of ``settings.py`` so the event system's configuration grows here; ``Settings`` only names the
three sections.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EventSettings",
    "HookSettings",
    "SubscriptionSettings",
    "ToolTargetSettings",
    "TriggerSettings",
    "WebhookTargetSettings",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _reference(value: str | None) -> str | None:
    if value is not None and value.partition(":")[0] not in ("env", "file", "vault"):
        raise ValueError("write a reference such as 'env:HOOK_SECRET' or 'vault:name', not the secret")
    return value


class HookSettings(_Model):
    """One inbound webhook source, received at ``POST /hooks/<name>``."""

    verifier: Literal["standard", "github", "stripe", "slack", "hmac"]
    """How deliveries are authenticated: Standard Webhooks, GitHub, Stripe, Slack, or generic HMAC."""
    secret: str
    """Reference to the signing secret (``env:NAME``, ``file:PATH``, ``vault:NAME``)."""
    previous_secret: str | None = None
    """During a rotation: the old secret, also accepted until you remove it."""
    tolerance: Annotated[float, Field(gt=0, le=3600)] = 300.0
    """Seconds a signed timestamp may be off, in either direction."""
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    # generic HMAC
    header: str | None = None
    """hmac: the header carrying the signature."""
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    """hmac: text before the signature in its header, such as ``sha256=``."""
    signed: list[str] = ["body"]
    """hmac: what is signed, joined by ``separator``: ``body``, ``header:<Name>`` or ``text:<literal>``."""
    separator: str = "."
    timestamp_header: str | None = None
    """hmac: a header with the Unix time of signing, checked against ``tolerance``."""
    id_header: str | None = None
    """hmac: the header with the provider's delivery id (deduplication); default: a digest of the body."""
    type_header: str | None = None
    type_field: str | None = None
    """Dotted path of the event type in the JSON body (overrides the verifier's default)."""
    subject_field: str | None = None
    """Dotted path of the subject in the JSON body (overrides the verifier's default)."""

    _refs = pydantic.field_validator("secret", "previous_secret")(lambda v: _reference(v))

    @pydantic.model_validator(mode="after")
    def _hmac_header(self) -> HookSettings:
        if self.verifier == "hmac" and not self.header:
            raise ValueError("verifier 'hmac' needs 'header' (the header carrying the signature)")
        for part in self.signed:
            if part != "body" and part.partition(":")[0] not in ("header", "text"):
                raise ValueError(f"signed: {part!r} is not 'body', 'header:<Name>' or 'text:<literal>'")
        return self


class EventSettings(_Model):
    retention_days: Annotated[float, Field(gt=0)] = 7.0
    """Events older than this are deleted."""
    dedupe_days: Annotated[float, Field(ge=3)] = 3.0
    """Provider delivery ids are remembered this long (≥ 3 days: the providers' retry horizon)."""


class WebhookTargetSettings(_Model):
    url: str
    secret: str
    """Reference to a Standard Webhooks secret (``whsec_…``, ≥ 24 bytes) the receiver verifies with."""
    allow_hosts: list[str] = []
    """Hosts (``host`` or ``host:port``) reached although not public — never on a shared server."""
    timeout: Annotated[float, Field(gt=0, le=30)] = 15.0

    _refs = pydantic.field_validator("secret")(lambda v: _reference(v))


class ToolTargetSettings(_Model):
    name: str
    """The tool to call."""
    arguments: dict[str, Any] = {}
    """Arguments; strings may hold ``{event.type}``, ``{event.subject}``, ``{payload.a.b}`` placeholders."""
    principal: str
    """The agent the call is made as (its scopes apply)."""


class SubscriptionSettings(_Model):
    """Events matching the filter go to the targets. Every field of the filter must match."""

    source: str | None = None
    type: str | None = None
    """Glob such as ``push`` or ``toolbridge.breaker.*``."""
    subject: str | None = None
    where: dict[str, Any] = {}
    """Payload fields (dotted paths) that must equal these values."""
    principals: list[str] = []
    """Agents that may read this subscription's events (``events.poll``/``events.wait``)."""
    webhook: WebhookTargetSettings | None = None
    tool: ToolTargetSettings | None = None


class TriggerSettings(_Model):
    """A poll trigger: call a read-only tool on a schedule, emit an event per new or changed item."""

    tool: str
    principal: str
    """The agent the tool is called as (its scopes apply)."""
    arguments: dict[str, Any] = {}
    every: Annotated[float, Field(ge=1)] | None = None
    """Seconds between polls (or ``cron``)."""
    cron: str | None = None
    """A cron expression (UTC), such as ``*/5 * * * *``."""
    items: str | None = None
    """Dotted path of the list of items in the tool's result (default: the result is the list)."""
    key: str = "id"
    """Dotted path of an item's identity."""
    fields: list[str] = []
    """Compare only these fields of an item for changes (default: the whole item)."""
    type: str | None = None
    """Event type prefix (default: the trigger's name): ``<type>.new`` and ``<type>.changed``."""
    initial: Literal["baseline", "emit"] = "baseline"
    """The first poll records what exists without events (``baseline``) or emits every item (``emit``)."""

    @pydantic.model_validator(mode="after")
    def _one_schedule(self) -> TriggerSettings:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' (seconds) or 'cron' (an expression)")
        if self.cron is not None:
            from croniter import croniter

            if not croniter.is_valid(self.cron):
                raise ValueError(f"{self.cron!r} is not a cron expression, such as '*/5 * * * *'")
        return self
