"""CLI pieces for upstream MCP tools: the state column of ``tools list`` and ``tools approve``.

MCP tools are known only once their server is reached, so these start the hub (which connects every
upstream) before reading the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from toolbridge._suggest import close_matches
from toolbridge.errors import ToolNotFound

if TYPE_CHECKING:  # the MCP SDK and the hub are imported only when an MCP command runs
    from toolbridge.catalog import Tool
    from toolbridge.connectors.mcp import ToolReview
    from toolbridge.hub import Hub

__all__ = ["approve", "has_mcp", "tool_list", "tool_rows"]


def has_mcp(hub: Hub) -> bool:
    from toolbridge.connectors.mcp import McpConnector

    return any(isinstance(hub.connector(n), McpConnector) for n in hub.connector_names())


def _reviews(hub: Hub) -> dict[str, ToolReview]:
    from toolbridge.connectors.mcp import McpConnector

    reviews: dict[str, ToolReview] = {}
    for name in hub.connector_names():
        connector = hub.connector(name)
        if isinstance(connector, McpConnector):
            reviews.update((r.name, r) for r in connector.review())
    return reviews


async def tool_rows(hub: Hub, connector: str | None) -> list[dict[str, Any]]:
    """Every tool with its access and, for upstream MCP tools, its approval state (quarantined ones too)."""
    async with hub:
        reviews = _reviews(hub)
        return tool_list(hub.catalog, connector, reviews)


def tool_list(
    tools: Iterable[Tool], connector: str | None, reviews: Mapping[str, ToolReview]
) -> list[dict[str, Any]]:
    """The tools (of ``connector``) as rows for ``tools list``."""
    rows = []
    for tool in (t for t in tools if connector in (None, t.connector)):
        a = tool.annotations
        review = reviews.get(tool.name)
        rows.append(
            {
                "name": tool.name,
                "connector": tool.connector,
                "access": "read" if a.read_only else "destructive" if a.destructive else "write",
                "state": _state(review) if review else "",
                "summary": tool.description.splitlines()[0] if tool.description else "",
                "description": tool.description,
            }
        )
    return rows


def _state(review: ToolReview) -> str:
    label = {
        "approved": "approved",
        "pending": "QUARANTINED: not approved",
        "changed": "QUARANTINED: changed",
    }
    text = label[review.state]
    return text + (f" ({len(review.flags)} flag(s))" if review.flags else "")


async def approve(hub: Hub, names: list[str], *, everything: bool, console: Console) -> list[str]:
    """Approve the named tools (or every one not approved yet), showing flags and diffs first."""
    from toolbridge.connectors.mcp import McpConnector

    async with hub:
        reviews = _reviews(hub)
        for name in names:
            if name not in reviews:
                raise ToolNotFound(name, suggestions=close_matches(name, reviews))
        chosen = (
            [reviews[n] for n in names] if names else [r for r in reviews.values() if r.state != "approved"]
        )
        if not everything and not names:
            return []
        for review in chosen:
            _show(review, console)
        approved: list[str] = []
        for name in hub.connector_names():
            connector = hub.connector(name)
            if isinstance(connector, McpConnector):
                mine = [r.name for r in chosen if r.name.startswith(name + ".")]
                if mine:
                    approved += await connector.approve(mine, by="cli")
        return approved


def _show(review: ToolReview, console: Console) -> None:
    console.print(f"[bold]{review.name}[/] ({review.state}, upstream {review.upstream!r})", highlight=False)
    for flag in review.flags:
        console.print(f"  [yellow]flag:[/] {escape(flag)}", highlight=False)
    if review.diff:
        console.print(escape(review.diff), highlight=False, markup=False)
