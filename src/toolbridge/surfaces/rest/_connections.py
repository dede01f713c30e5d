"""``/v1/connections``: list, add, test and remove connections; the OAuth connect flow for web pages.

Authenticated like every other route (API key). A principal sees the connections of a connector when one
of its write scopes covers that connector's tools (``github.*``, ``*``): the shared ones and its own.
Another principal's connection looks like a missing one (404). Only the owner adds, replaces or removes a
connection of its own, and only an operator (the bare ``*`` scope) a shared one or one for somebody else;
every action is audited with the acting principal. The callback is the one unauthenticated route: the
single-use ``state`` authenticates it. Responses never contain secret material.
"""

from __future__ import annotations

import fnmatch
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from toolbridge.credentials import ConnectFlow, Connection, CredentialManager, Material, Secret
from toolbridge.credentials._ownership import check_owner, may_manage
from toolbridge.credentials._probe import probe
from toolbridge.errors import BadRequest, NotFound, PermissionDenied, ToolbridgeError
from toolbridge.hub import Hub
from toolbridge.policy import Principal
from toolbridge.surfaces._request import api_key

__all__ = ["connections_router"]


class AddConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str
    account: Annotated[str, Field(min_length=1, max_length=128)] = "default"
    secret: str | None = Field(
        default=None, max_length=65_536, description="API key, token or password (stored encrypted)"
    )
    shared: bool | None = Field(
        default=None,
        description="true: a connection every caller shares (operators only); false: the caller's own. "
        "Default: what the connector's policy uses",
    )


class StartConnect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str
    account: Annotated[str, Field(min_length=1, max_length=128)] = "default"
    redirect_uri: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="an http(s) URL registered with the provider exactly",
    )
    shared: bool | None = Field(default=None, description="as for POST /v1/connections")


async def _caller(request: Request) -> Principal:
    hub: Hub = request.app.state.hub
    return await hub.authenticate(api_key(request.headers), request_id=request.headers.get("x-request-id"))


Caller = Annotated[Principal, Depends(_caller)]


def _manager(request: Request) -> CredentialManager:
    hub: Hub = request.app.state.hub
    if hub.credentials is None:
        raise NotFound("no connector of this hub takes connections", hint="see docs/credentials.md")
    return hub.credentials


def _may_manage(principal: Principal, connector: str) -> bool:
    probe_name = f"{connector}.x"
    return any(s.access == "write" and fnmatch.fnmatchcase(probe_name, s.pattern) for s in principal.scopes)


def _visible(manager: CredentialManager, principal: Principal, connector: str) -> None:
    if connector not in manager.bindings or not _may_manage(principal, connector):
        raise NotFound(
            f"no connector {connector!r} with connections", hint="list them with GET /v1/connections"
        )


def _doc(manager: CredentialManager, conn: Connection) -> dict[str, Any]:
    binding = manager.bindings.get(conn.connector)
    return conn.document(manager.clock(), binding.refresh_skew if binding else 0.0)


def _sees(principal: Principal, conn: Connection) -> bool:
    """Shared connections and its own, of connectors in its scopes (operators: every connection)."""
    mine_or_shared = principal.is_operator or conn.owner in ("", principal.id)
    return mine_or_shared and _may_manage(principal, conn.connector)


async def _owned(manager: CredentialManager, principal: Principal, ident: str) -> Connection:
    try:
        conn = await manager.store.get(ident)
    except NotFound:
        conn = None
    if conn is None or not _sees(principal, conn):
        raise NotFound(f"no connection with id {ident!r}", hint="list them with GET /v1/connections")
    return conn


def _owner_for(manager: CredentialManager, caller: Principal, connector: str, shared: bool | None) -> str:
    """Whose connection an add or connect by ``caller`` makes: ``""`` (shared) or the caller's id."""
    binding = manager.binding(connector)
    shared = binding.policy == "shared" if shared is None else shared
    owner = "" if shared else caller.id
    check_owner(binding, connector, owner)
    _check_manage(caller, owner, connector)
    return owner


def _check_manage(caller: Principal, owner: str, connector: str) -> None:
    if not may_manage(caller, owner):
        raise PermissionDenied(
            f"{caller.id} may not change the shared connections of {connector!r}: only an operator may",
            missing_scope="*",
            hint="connect your own account instead (where the connector's policy allows it), or ask an "
            "operator",
        )


connections_router = APIRouter(prefix="/connections", tags=["connections"])


def _performed(
    request: Request, caller: Principal, action: str, **arguments: Any
) -> AbstractAsyncContextManager[Any]:
    """A read or probe of connections as the caller's action through ``Hub.perform`` (one audit row);
    who may see which connection is this module's decision, so no tool scope is checked there."""
    hub: Hub = request.app.state.hub
    return hub.perform(caller, f"(connections.{action})", arguments, scope=None, request_id=_rid(request))


def _rid(request: Request) -> str:
    return request.headers.get("x-request-id") or ""


@connections_router.get("", summary="Connections the caller may manage, with their state")
async def list_connections(request: Request, caller: Caller) -> dict[str, Any]:
    if request.app.state.hub.credentials is None:
        return {"connections": []}
    manager = _manager(request)
    async with _performed(request, caller, "list"):
        conns = [c for c in await manager.store.list() if _sees(caller, c)]
    return {"connections": [_doc(manager, c) for c in conns]}


@connections_router.post("", status_code=201, summary="Add a connection with a static secret")
async def add_connection(body: AddConnection, request: Request, caller: Caller) -> dict[str, Any]:
    manager = _manager(request)
    _visible(manager, caller, body.connector)
    binding = manager.binding(body.connector)
    if binding.scheme == "oauth2":
        raise BadRequest(
            f"connector {body.connector!r} uses OAuth 2: its connections are made by the connect flow",
            hint="start the flow with POST /v1/connections/connect",
        )
    if not body.secret and not binding.uses_tokens:  # stored, every call with it was a 500 "has no secret"
        raise BadRequest(
            f"connector {body.connector!r} ({binding.scheme}) needs a secret for its connections",
            hint='send {"connector": …, "account": …, "secret": "<the API key, token or password>"}',
        )
    owner = _owner_for(manager, caller, body.connector, body.shared)
    material = Material(secret=Secret(body.secret) if body.secret is not None else None)
    conn = await manager.add(
        body.connector, body.account, material, owner=owner, actor=caller.id, request_id=_rid(request)
    )
    return _doc(manager, conn)


@connections_router.post("/connect", summary="Start an OAuth connect flow: the URL to send the person to")
async def start_connect(body: StartConnect, request: Request, caller: Caller) -> dict[str, Any]:
    manager = _manager(request)
    async with _performed(request, caller, "connect", connector=body.connector, account=body.account):
        _visible(manager, caller, body.connector)
        if manager.binding(body.connector).scheme != "oauth2":
            raise BadRequest(
                f"connector {body.connector!r} has no connect flow (it is not OAuth 2)",
                hint="add its secret with POST /v1/connections",
            )
        owner = _owner_for(manager, caller, body.connector, body.shared)
        started = await ConnectFlow(manager).start(
            body.connector,
            body.account,
            redirect_uri=body.redirect_uri,
            owner=owner,
            actor=caller.id,
            audited=True,
        )
    return {
        "authorization_url": started.url,
        "redirect_uri": started.redirect_uri,
        "expires_at": started.expires_at,
    }


@connections_router.get("/callback", summary="OAuth redirect target (the state authenticates it)")
async def callback(request: Request) -> HTMLResponse:
    try:  # a person's browser lands here: every answer is a page
        conn = await ConnectFlow(_manager(request)).complete(str(request.url))
    except ToolbridgeError as exc:
        return _page(exc.status, f"Not connected: {exc.message}")
    return _page(200, f"Connected {conn.connector} as {conn.account}. You can close this page.")


@connections_router.get("/{ident}", summary="One connection")
async def get_connection(ident: str, request: Request, caller: Caller) -> dict[str, Any]:
    manager = _manager(request)
    async with _performed(request, caller, "get", connection=ident):
        return _doc(manager, await _owned(manager, caller, ident))


@connections_router.post("/{ident}/test", summary="One read-only probe call with the connection")
async def test_connection(ident: str, request: Request, caller: Caller) -> dict[str, Any]:
    manager = _manager(request)
    async with _performed(request, caller, "test", connection=ident):
        await _owned(manager, caller, ident)
        return (await probe(manager, ident, principal=caller)).document()


@connections_router.delete("/{ident}", status_code=204, summary="Remove a connection and its secrets")
async def remove_connection(ident: str, request: Request, caller: Caller) -> None:
    manager = _manager(request)
    conn = await _owned(manager, caller, ident)
    _check_manage(caller, conn.owner, conn.connector)
    await manager.remove(ident, actor=caller.id, request_id=_rid(request))


def _page(status: int, text: str) -> HTMLResponse:
    import html

    body = f"<!doctype html><title>toolbridge</title><p>{html.escape(text)}</p>"
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
    return HTMLResponse(body, status_code=status, headers=headers)
