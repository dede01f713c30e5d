"""A small upstream MCP server (the official SDK's MCPServer, stdio) whose tool list grows on request.

``grow(name)`` adds a tool called ``name`` and tells the client (``notifications/tools/list_changed`` in
the handshake era, a ``subscriptions/listen`` event in the stateless one);
``shout(text, level)`` sends ``text`` as a log message and answers "ok"; ``where(region)`` declares its
argument as an ``x-mcp-header`` (stateless-era clients must mirror it into ``Mcp-Param-Region``). Used by
test_notify.py.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

server = MCPServer("growing")


@server.tool(description="Add a tool named `name`, and tell the client the tool list changed.")
async def grow(name: str, ctx: Context) -> str:
    def added() -> str:
        return f"I am {name}"

    server.add_tool(added, name=name, description=f"A tool added at run time ({name}).")
    await ctx.session.send_tool_list_changed()  # handshake era: on the standing channel
    await ctx.notify_tools_changed()  # stateless era: to subscriptions/listen streams
    return f"added {name}"


@server.tool(description="Send `text` as a log message at `level`.")
async def shout(text: str, level: str, ctx: Context) -> str:
    await ctx.log(level, text)  # type: ignore[arg-type]
    return "ok"


@server.tool(description="Say where the call was routed (the region travels as an Mcp-Param-Region header).")
def where(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    return f"routed to {region}"


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["http"]:  # growing_server.py http PORT: streamable HTTP on 127.0.0.1
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
