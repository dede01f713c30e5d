"""The workspace browser: the workspaces the operator is a member of, a folder's files and sub-folders
(the ``workspace.list`` tool, through ``Hub.call``), and a file's download (as ``GET
/v1/workspaces/{ws}/files/{path}/content``: the workspace role and the ``workspace.read`` scope checked,
audited as ``workspace.download``). Downloads are attachments: a file is never shown as a page here."""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from toolbridge.errors import NotFound
from toolbridge.surfaces.admin._web import Operator, admin_of, operator, render
from toolbridge.surfaces.rest._workspace import find_workspace_connector
from toolbridge.workspace import WorkspaceConnector

__all__ = ["routes"]


def _connector(request: Request) -> WorkspaceConnector | None:
    return find_workspace_connector(admin_of(request).hub)


async def workspaces_page(request: Request) -> Response:
    who = await operator(request)
    connector = _connector(request)
    found: list[Any] = []
    if connector is not None:
        hub = admin_of(request).hub
        async with hub.perform(who.principal, f"{connector.name}.workspaces", {}, scope=None):
            found = await connector.service.workspaces(who.principal)
    context = {"configured": connector is not None, "workspaces": found}
    return render(request, "workspaces.html", context, who=who)


async def folder_page(request: Request) -> Response:
    who = await operator(request)
    connector = _required(request)
    workspace = request.path_params["ws"]
    path = request.query_params.get("path", "/") or "/"
    trashed = request.query_params.get("trashed") == "true"
    result = await admin_of(request).hub.call(
        who.principal, f"{connector.name}.list", {"workspace": workspace, "path": path, "trashed": trashed}
    )
    listing: dict[str, Any] = result.value if isinstance(result.value, dict) else {}
    context = {
        "workspace": workspace,
        "path": path,
        "parent": posixpath.dirname(path.rstrip("/")) or "/" if path != "/" else "",
        "trashed": trashed,
        "entries": [_shown(entry) for entry in listing.get("entries", [])],
        "truncated": result.truncated,
    }
    return render(request, "folder.html", context, who=who)


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """A ``workspace.list`` entry as shown: ``updated_at`` (seconds since 1970) as a UTC time."""
    when = entry.get("updated_at")
    if not isinstance(when, int | float):
        return entry
    return {**entry, "updated_at": datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S")}


async def download(request: Request) -> Response:
    who = await operator(request)
    connector = _required(request)
    workspace, path = request.path_params["ws"], request.query_params.get("path", "")
    hub = admin_of(request).hub
    arguments = {"workspace": workspace, "path": path}
    async with hub.perform(
        who.principal, f"{connector.name}.download", arguments, scope=f"{connector.name}.read"
    ):
        return await _stream(connector, who, workspace, path)


async def _stream(connector: WorkspaceConnector, who: Operator, workspace: str, path: str) -> Response:
    service = connector.service
    entry = await service.locate(who.principal, workspace, path)
    body = service.blobs.stream(entry.sha256, 0, entry.size)
    first = await anext(body, b"")  # a missing blob fails here, as an error page, before any header

    async def chunks() -> Any:
        yield first
        async for chunk in body:
            yield chunk

    name = posixpath.basename(entry.path) or "download"
    headers = {
        "Content-Length": str(entry.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "ETag": entry.etag,
    }
    return StreamingResponse(chunks(), headers=headers, media_type="application/octet-stream")


def _required(request: Request) -> WorkspaceConnector:
    connector = _connector(request)
    if connector is None:
        raise NotFound("this server has no workspace connector", hint="see docs/workspace.md")
    return connector


routes = [
    Route("/workspaces", workspaces_page),
    Route("/workspaces/{ws}", folder_page),
    Route("/workspaces/{ws}/download", download),
]
