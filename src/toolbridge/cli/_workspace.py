"""``toolbridge workspace ls | put | get | rm`` — the workspace from the shell, with progress bars.

Commands run in-process against the configured hub (as the local operator), like ``toolbridge call``:
the database and blob store of ``toolbridge.yaml``. Transfers stream in 1 MiB chunks, so memory stays
flat whatever the file size.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import anyio
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from toolbridge.cli._output import JsonOption, console, show
from toolbridge.policy import Principal
from toolbridge.workspace import BlobInfo, WorkspaceConnector

__all__ = ["workspace_app"]

T = TypeVar("T")
CHUNK = 1 << 20

workspace_app = typer.Typer(help="List, upload, download and delete workspace files.", no_args_is_help=True)
out = console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="TOOLBRIDGE_CONFIG", help="toolbridge.yaml to use")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database", envvar="TOOLBRIDGE_DATABASE", help="Database URL override")
]
WorkspaceOption = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Workspace id [default: the connector's]")
]


def _with_connector(
    config: Path | None,
    database: str | None,
    work: Callable[[WorkspaceConnector], Awaitable[T]],
    *,
    recorded: bool = False,
) -> T:
    """``work`` on the workspace connector; ``recorded``: it only reads files (the database that lists
    them must be there: opening it would create an empty one)."""
    from toolbridge.cli import _app as cli
    from toolbridge.cli._startup import require_database
    from toolbridge.errors import ConfigurationError
    from toolbridge.surfaces.rest._workspace import find_workspace_connector

    settings = cli._settings(config, database)
    hub = cli._hub(config, database, settings, peek=recorded)  # a missing one is told of below

    async def main() -> T:
        if not any(isinstance(hub.connector(name), WorkspaceConnector) for name in hub.connector_names()):
            hint = "add one with 'kind: workspace' to toolbridge.yaml"
            raise ConfigurationError("no workspace connector is configured", hint=hint)
        if recorded:
            require_database(settings.server.database)
        async with hub:
            connector = find_workspace_connector(hub)
            if connector is None:  # configured, but it has no tools in the catalog
                raise ConfigurationError("the workspace connector has no tools", hint="check its 'tools:'")
            return await work(connector)

    return cli._run(main)


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=Console(stderr=True, emoji=False),
    )  # fmt: skip


@workspace_app.command("ls")
def ls(
    path: Annotated[str, typer.Argument(help="Folder")] = "/",
    workspace: WorkspaceOption = None,
    trashed: Annotated[bool, typer.Option("--trash", help="List the trash")] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a folder."""

    async def work(c: WorkspaceConnector) -> None:
        entries = await c.service.list_folder(
            Principal.local(), workspace or c.workspace, path, trashed=trashed
        )
        rows = [
            {
                "path": e.path,
                "kind": e.kind,
                "size": e.size if e.kind == "file" else None,
                "version": e.version,
                "updated_by": e.updated_by,
            }
            for e in entries
        ]
        if not as_json:
            rows = [{**r, "size": f"{r['size']:,}" if r["size"] is not None else ""} for r in rows]
        columns = {"path": "path", "kind": "kind", "size": "size", "version": "version"}
        show(out, rows, {**columns, "updated by": "updated_by"}, as_json=as_json)

    _with_connector(config, database, work, recorded=True)


@workspace_app.command("put")
def put(
    local: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Local file")],
    remote: Annotated[str, typer.Argument(help="Workspace path")],
    workspace: WorkspaceOption = None,
    lease: Annotated[str | None, typer.Option(help="Lease token, if the path is leased to you")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Upload a file (a new version if it exists)."""

    async def work(c: WorkspaceConnector) -> None:
        temp, blob = await _stage(local, c.service.blobs.scratch)
        try:
            entry = await c.service.commit(
                Principal.local(), workspace or c.workspace, remote, temp, blob, lease=lease, source="put"
            )
        finally:
            await anyio.Path(temp).unlink(missing_ok=True)
        out.print(f"{entry.path}: version {entry.version}, {entry.size:,} bytes, sha256 {entry.sha256[:16]}…")

    _with_connector(config, database, work)


async def _stage(local: Path, scratch: Path) -> tuple[Path, BlobInfo]:
    """Copy ``local`` next to the blob store while hashing it, with a progress bar."""
    fd, name = tempfile.mkstemp(dir=scratch, prefix="cli-")
    os.close(fd)
    digest, size = hashlib.sha256(), 0
    total = (await anyio.Path(local).stat()).st_size
    with _progress() as progress:
        task = progress.add_task(f"put {local.name}", total=total)
        async with await anyio.open_file(local, "rb") as src, await anyio.open_file(name, "wb") as dst:
            while chunk := await src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                await dst.write(chunk)
                progress.update(task, advance=len(chunk))
    return Path(name), BlobInfo(digest.hexdigest(), size)


@workspace_app.command("get")
def get(
    remote: Annotated[str, typer.Argument(help="Workspace path")],
    local: Annotated[Path | None, typer.Argument(help="Local file [default: the file's name]")] = None,
    workspace: WorkspaceOption = None,
    version: Annotated[int | None, typer.Option(help="An older version")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Download a file."""

    async def work(c: WorkspaceConnector) -> None:
        entry = await c.service.locate(Principal.local(), workspace or c.workspace, remote, version=version)
        target = local or Path(entry.path.rsplit("/", 1)[-1])
        partial = target.with_name(target.name + ".part")
        with _progress() as progress:
            task = progress.add_task(f"get {entry.path}", total=entry.size)
            async with await anyio.open_file(partial, "wb") as f:
                async for chunk in c.service.blobs.stream(entry.sha256):
                    await f.write(chunk)
                    progress.update(task, advance=len(chunk))
        await anyio.Path(partial).replace(target)
        out.print(f"{target}: {entry.size:,} bytes (version {entry.version})")

    _with_connector(config, database, work, recorded=True)


@workspace_app.command("rm")
def rm(
    remote: Annotated[str, typer.Argument(help="Workspace path (file or folder)")],
    workspace: WorkspaceOption = None,
    lease: Annotated[str | None, typer.Option(help="Lease token, if the path is leased to you")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Move a file or folder to the trash."""

    async def work(c: WorkspaceConnector) -> None:
        entry = await c.service.delete(Principal.local(), workspace or c.workspace, remote, lease=lease)
        out.print(f"moved {entry.path} to the trash (restore with trash id {entry.id})")

    _with_connector(config, database, work)
