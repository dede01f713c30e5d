"""A small upstream MCP server (the official SDK's MCPServer, stdio) whose tool list grows on request.

``grow(name)`` adds a tool called ``name`` and tells the client (``notifications/tools/list_changed`` in
the handshake era, a ``subscriptions/listen`` event in the stateless one);
``shout(text)`` sends ``text`` as a warning log message and answers "ok". Used by test_notify.py.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

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


if __name__ == "__main__":
    server.run("stdio")
