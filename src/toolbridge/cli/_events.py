"""``toolbridge events tail | show | replay`` and ``toolbridge hooks list | test``.

Commands run in-process against the configured hub (as the local operator), like ``toolbridge call``.
``hooks test`` signs a sample delivery with the source's own secret and posts it through the same
``/hooks/<source>`` handler the server runs (or, with ``--url``, to a running server).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import anyio
import httpx2
import typer

from toolbridge._httpclient import closing_transport
from toolbridge.cli._output import JsonOption, console, show
from toolbridge.errors import ConfigurationError
from toolbridge.events import EventFilter, EventService

__all__ = ["events_app", "hooks_app", "subscriptions_app"]

T = TypeVar("T")

events_app = typer.Typer(help="Read the event log and deliver events again.", no_args_is_help=True)
hooks_app = typer.Typer(
    help="Inbound webhook sources: list them, send a signed test delivery.", no_args_is_help=True
)
subscriptions_app = typer.Typer(
    help="Event subscriptions: what they match, their targets, re-enable a disabled endpoint.",
    no_args_is_help=True,
)
out = console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="TOOLBRIDGE_CONFIG", help="toolbridge.yaml to use")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database", envvar="TOOLBRIDGE_DATABASE", help="Database URL override")
]
_COLUMNS = {"time": "time", "id": "id", "source": "source", "type": "type", "subject": "subject"}


def _with_service(
    config: Path | None,
    database: str | None,
    work: Callable[[EventService], Awaitable[T]],
    *,
    recorded: bool = False,
    peek: bool = False,
) -> T:
    """``work`` on the hub's event service; ``recorded``: it reads recorded events (the database must be
    there), ``peek``: it shows the configuration (a database that is not there is not created)."""
    from toolbridge.cli import _app as cli
    from toolbridge.cli._startup import require_database

    settings = cli._settings(config, database)
    hub = cli._hub(config, database, settings, peek=peek or recorded)  # a missing one is told of below

    async def main() -> T:
        if hub.event_service is None:
            raise ConfigurationError(
                "no webhook sources or subscriptions are configured",
                hint="add 'hooks:' or 'subscriptions:' to toolbridge.yaml (docs/events.md)",
            )
        if recorded:
            require_database(settings.server.database)
        async with hub:
            return await work(hub.event_service)

    return cli._run(main)


@events_app.command("tail")
def tail(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many")] = 20,
    source: Annotated[str | None, typer.Option("--source", help="Only this source (glob)")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this type (glob)")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events")] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """The latest events, oldest first (``--follow`` keeps printing new ones until Ctrl-C)."""
    match = EventFilter(source=source, type=type_)

    async def work(service: EventService) -> None:
        events = await service.log.tail(limit, match=match)
        show(out, [e.as_dict() for e in events], _COLUMNS, as_json=as_json)
        cursor = events[-1].seq if events else await service.log.head()
        while follow:
            found, cursor = await service.log.wait(cursor, match=match, seconds=30.0)
            show(out, [e.as_dict() for e in found], _COLUMNS, as_json=True)

    _with_service(config, database, work, recorded=True)


@events_app.command("show")
def show_event(
    event_id: Annotated[str, typer.Argument(help="The event's id (evt_…)")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """One event with its payload and its outbound deliveries."""

    async def work(service: EventService) -> None:
        event = await service.log.get(event_id)
        if event is None:
            from toolbridge.errors import NotFound

            raise NotFound(f"no event {event_id!r}", hint="list recent ones with 'toolbridge events tail'")
        document = event.as_dict()
        if service.deliveries is not None:
            items = await service.deliveries.items(event_seq=event.seq, limit=100)
            document["deliveries"] = [i.as_dict() for i in items]
        print(json.dumps(document, indent=2, default=str, ensure_ascii=False))

    _with_service(config, database, work, recorded=True)


@events_app.command("replay")
def replay(
    event_id: Annotated[str, typer.Argument(help="The event's id (evt_…)")],
    subscription: Annotated[
        str | None,
        typer.Option("--subscription", "-s", help="Only to this subscription [default: all that match]"),
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Deliver a recorded event again (new deliveries; the worker sends them)."""

    async def work(service: EventService) -> list[str]:
        return await service.replay(event_id, subscription)

    ids = _with_service(config, database, work, recorded=True)
    out.print(f"planned {len(ids)} deliver{'y' if len(ids) == 1 else 'ies'}: {' '.join(ids) or '-'}")


@hooks_app.command("list")
def list_hooks(
    config: ConfigOption = None, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Webhook sources (their URL path, verifier, counts this run) and subscriptions."""

    async def work(service: EventService) -> None:
        disabled = await service.deliveries.disabled() if service.deliveries is not None else {}
        rows = [
            {"kind": "source", "name": s.name, "detail": f"POST /hooks/{s.name}", "verifier": s.kind}
            for s in service.sources.values()
        ]
        for sub in service.subscriptions.values():
            targets = ", ".join(sub.targets()) or "agents"
            state = f" (disabled: {disabled[sub.name]})" if sub.name in disabled else ""
            rows.append({"kind": "subscription", "name": sub.name, "detail": targets + state, "verifier": ""})
        show(
            out,
            rows,
            {"kind": "kind", "name": "name", "where / targets": "detail", "verifier": "verifier"},
            as_json=as_json,
        )

    _with_service(config, database, work, peek=True)


@hooks_app.command("test")
def send_test(
    source: Annotated[str, typer.Argument(help="The source's name under 'hooks:'")],
    body: Annotated[
        str, typer.Option("--body", help="JSON body to send")
    ] = '{"zen": "toolbridge test delivery"}',
    event_type: Annotated[str, typer.Option("--type", help="Event type (GitHub: X-GitHub-Event)")] = "ping",
    url: Annotated[
        str | None,
        typer.Option("--url", help="Post to a running server (its base URL) instead of in-process"),
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Sign a test delivery with the source's secret and post it; prints the answer."""

    async def work(service: EventService) -> httpx2.Response:
        from toolbridge.cli import _app as cli
        from toolbridge.events._sign import sign

        hook = cli._settings(config, database).hooks[service.source(source).name]
        secret = (await service.resolve(hook.secret)).reveal()
        data = body.encode()
        headers = sign(
            hook.verifier, secret, data, now=time.time(), event_type=event_type, header=hook.header,
            algorithm=hook.algorithm, encoding=hook.encoding, prefix=hook.prefix, signed=hook.signed,
            separator=hook.separator, timestamp_header=hook.timestamp_header,
        )  # fmt: skip
        return await _post(service, source, data, headers, url)

    response = _with_service(config, database, work)
    out.print(f"{response.status_code} {response.text}")
    if response.status_code >= 300:
        raise typer.Exit(1)


async def _post(
    service: EventService, source: str, body: bytes, headers: dict[str, str], url: str | None
) -> httpx2.Response:
    if url is not None:
        async with httpx2.AsyncClient(transport=closing_transport(), trust_env=False, timeout=30) as client:
            return await client.post(f"{url.rstrip('/')}/hooks/{source}", content=body, headers=headers)
    receipt = await service.receive(source, body, headers)
    answer = {"challenge": receipt.challenge} if receipt.challenge else {
        "id": receipt.event.id if receipt.event else None, "duplicate": receipt.duplicate,
    }  # fmt: skip
    await anyio.lowlevel.checkpoint()
    return httpx2.Response(200, json=answer)


@subscriptions_app.command("list")
def list_subscriptions(
    config: ConfigOption = None, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Subscriptions: their filter, targets, readers, and whether their endpoint is disabled."""

    async def work(service: EventService) -> None:
        disabled = await service.deliveries.disabled() if service.deliveries is not None else {}
        rows = [
            {
                "name": s.name,
                "source": s.match.source,
                "type": s.match.type,
                "subject": s.match.subject,
                "targets": s.targets(),
                "readers": list(s.principals),
                "disabled": disabled.get(s.name),
            }
            for s in service.subscriptions.values()
        ]
        columns = {"name": "name", "source": "source", "type": "type", "targets": "targets"}
        show(out, rows, {**columns, "readers": "readers", "disabled": "disabled"}, as_json=as_json)

    _with_service(config, database, work, peek=True)


@subscriptions_app.command("enable")
def enable_subscription(
    name: Annotated[str, typer.Argument(help="The subscription whose webhook endpoint was disabled (410)")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Deliver to a subscription's webhook endpoint again after it answered 410 Gone (new events only)."""

    async def work(service: EventService) -> bool:
        if name not in service.subscriptions:
            from toolbridge.errors import NotFound

            choices = ", ".join(service.subscriptions) or "none"
            raise NotFound(f"no subscription {name!r}", hint=f"choose one of: {choices}")
        return service.deliveries is not None and await service.deliveries.enable(name)

    if _with_service(config, database, work):
        out.print(f"{name}: endpoint enabled again; replay missed events with 'toolbridge events replay'")
    else:
        out.print(f"{name}: its endpoint was not disabled")
