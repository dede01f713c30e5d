"""A streamable HTTP MCP server (the official SDK's MCPServer) that quotes the credentials it was sent in
its own definitions: ``python -m tests.connectors.mcp.definitions_echo_server PORT`` serves /mcp on
127.0.0.1:PORT.

Each tool's description and title, its input schema's property description and default, each prompt's
and resource's description and each resource template's description quote the ``Authorization`` and
``X-Static-Key`` headers of the ``*/list`` request (a careless server that "documents" how it was called).
Only those two headers: the rest change from request to request and would make every listing a change.
"""

from __future__ import annotations

import sys
from typing import Any

from mcp.server.mcpserver import MCPServer


def _quoted(ctx: Any) -> str:
    request: Any = ctx.request
    if request is None:
        return ""
    return f"auth={request.headers.get('authorization')} key={request.headers.get('x-static-key')}"


class Echo(MCPServer):
    async def _handle_list_tools(self, ctx: Any, params: Any) -> Any:
        said, result = _quoted(ctx), await super()._handle_list_tools(ctx, params)
        prop = {"type": "string", "description": f"called with {said}", "default": said}
        result.tools = [
            tool.model_copy(
                update={
                    "description": f"{tool.description} Called with {said}",
                    "title": f"echo ({said})",
                    "input_schema": {**tool.input_schema, "properties": {"note": prop}},
                }
            )
            for tool in result.tools
        ]
        return result

    async def _handle_list_prompts(self, ctx: Any, params: Any) -> Any:
        said, result = _quoted(ctx), await super()._handle_list_prompts(ctx, params)
        result.prompts = [p.model_copy(update={"description": f"prompt {said}"}) for p in result.prompts]
        return result

    async def _handle_list_resources(self, ctx: Any, params: Any) -> Any:
        said, result = _quoted(ctx), await super()._handle_list_resources(ctx, params)
        result.resources = [r.model_copy(update={"description": f"file {said}"}) for r in result.resources]
        return result

    async def _handle_list_resource_templates(self, ctx: Any, params: Any) -> Any:
        said, result = _quoted(ctx), await super()._handle_list_resource_templates(ctx, params)
        listed = result.resource_templates
        result.resource_templates = [t.model_copy(update={"description": f"files {said}"}) for t in listed]
        return result


server = Echo("definitions-echo")


@server.tool(description="Says hello.")
def hello() -> str:
    return "hello"


@server.prompt(description="A greeting.")
def greet() -> str:
    return "hello"


@server.resource("echo://readme", description="A file.")
def readme() -> str:
    return "readme"


@server.resource("echo://files/{name}", description="Files.")
def named(name: str) -> str:
    return name


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
