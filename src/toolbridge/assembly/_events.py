"""Settings → the event service of a hub: sources, subscriptions, the log, the ``events.*`` tools."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from toolbridge.events._deliveries import Deliveries
from toolbridge.events._internal import watch_hub
from toolbridge.events._log import EventLog
from toolbridge.events._model import EventFilter
from toolbridge.events._service import EventService, Source, Subscription, ToolTarget, WebhookTarget
from toolbridge.events._settings import HookSettings, SubscriptionSettings, TriggerSettings
from toolbridge.events._tools import add_event_tools
from toolbridge.events._triggers import Trigger, TriggerRunner
from toolbridge.events._verify import (
    Fields,
    GitHubVerifier,
    HmacScheme,
    HmacVerifier,
    SlackVerifier,
    StandardVerifier,
    StripeVerifier,
    Verifier,
)

if TYPE_CHECKING:
    from toolbridge.credentials import CredentialManager, Secret
    from toolbridge.hub import Hub
    from toolbridge.settings import Settings
    from toolbridge.storage import Database

__all__ = ["build_events", "event_log", "event_service", "make_verifier", "trigger"]


def event_log(settings: Settings, database: Database) -> EventLog | None:
    """The event log when ``hooks:``, ``subscriptions:`` or ``triggers:`` declare anything, or the file has
    an ``events:`` section (for toolbridge's own notices alone), else None."""
    declared = "events" in settings.model_fields_set
    if not settings.hooks and not settings.subscriptions and not settings.triggers and not declared:
        return None
    return EventLog(
        database,
        retention=settings.events.retention_days * 86400.0,
        dedupe=settings.events.dedupe_days * 86400.0,
    )


def event_service(
    settings: Settings, log: EventLog, credentials: Callable[[], CredentialManager | None]
) -> EventService:
    """The event service over ``log``, built before the hub so that the hub's parts can report to it;
    ``credentials()`` is the hub's credential manager (read when a ``vault:`` secret is resolved)."""
    return EventService(
        log,
        sources={name: source(name, hook) for name, hook in settings.hooks.items()},
        subscriptions={name: subscription(name, sub) for name, sub in settings.subscriptions.items()},
        resolve=partial(_resolve, settings, credentials),
        deliveries=Deliveries(log.database),
    )


def build_events(settings: Settings, hub: Hub, service: EventService) -> None:
    """The hub's side of the event service: its triggers, the ``events.*`` tools, internal events."""
    service.triggers = TriggerRunner(hub, service, {n: trigger(n, t) for n, t in settings.triggers.items()})
    add_event_tools(hub, service)
    watch_hub(hub, service)


async def _resolve(
    settings: Settings, credentials: Callable[[], CredentialManager | None], ref: str
) -> Secret:
    from toolbridge.credentials import SecretRef, resolve_reference

    manager = credentials()
    vault = manager.vault.get if manager is not None else None
    return await resolve_reference(SecretRef.parse(ref), base_dir=settings.base_dir, vault=vault)


def source(name: str, hook: HookSettings) -> Source:
    refs = (hook.secret,) if hook.previous_secret is None else (hook.secret, hook.previous_secret)
    return Source(
        name=name,
        kind=hook.verifier,
        secrets=refs,
        make=partial(make_verifier, hook),
        max_body_bytes=hook.max_body_bytes,
    )


def make_verifier(hook: HookSettings, keys: Sequence[str]) -> Verifier:
    fields = Fields(hook.type_field, hook.subject_field)
    if hook.verifier == "standard":
        return StandardVerifier(keys, tolerance=hook.tolerance, fields=fields)
    if hook.verifier == "github":
        return GitHubVerifier(keys, fields=fields)
    if hook.verifier == "stripe":
        return StripeVerifier(keys, tolerance=hook.tolerance, fields=fields)
    if hook.verifier == "slack":
        return SlackVerifier(keys, tolerance=hook.tolerance, fields=fields)
    assert hook.header is not None  # checked by HookSettings
    scheme = HmacScheme(
        header=hook.header,
        algorithm=hook.algorithm,
        encoding=hook.encoding,
        prefix=hook.prefix,
        signed=tuple(hook.signed),
        separator=hook.separator,
        timestamp_header=hook.timestamp_header,
        id_header=hook.id_header,
        type_header=hook.type_header,
    )
    return HmacVerifier(keys, scheme, tolerance=hook.tolerance, fields=fields)


def subscription(name: str, sub: SubscriptionSettings) -> Subscription:
    webhook = tool = None
    if sub.webhook is not None:
        w = sub.webhook
        webhook = WebhookTarget(w.url, w.secret, frozenset(h.lower() for h in w.allow_hosts), w.timeout)
    if sub.tool is not None:
        tool = ToolTarget(sub.tool.name, dict(sub.tool.arguments), sub.tool.principal)
    match = EventFilter(sub.source, sub.type, sub.subject, _where(sub.where))
    return Subscription(name, match, tuple(sub.principals), webhook, tool)


def trigger(name: str, t: TriggerSettings) -> Trigger:
    return Trigger(
        name=name,
        tool=t.tool,
        principal=t.principal,
        arguments=dict(t.arguments),
        every=t.every,
        cron=t.cron,
        items=t.items,
        key=t.key,
        fields=tuple(t.fields),
        type=t.type,
        initial=t.initial,
    )


def _where(where: Mapping[str, object]) -> dict[str, object]:
    return dict(where)
