"""The MCP surface: streamable HTTP (both protocol eras) and stdio, served from one hub.

``McpSurface(hub)`` is the ASGI endpoint (mounted at ``/mcp`` by the server app); ``serve_stdio`` is
what ``toolbridge mcp`` runs for desktop clients. Both end in ``Hub.call``.
"""

from toolbridge.surfaces.mcp._http import McpSurface
from toolbridge.surfaces.mcp._stdio import serve_stdio

__all__ = ["McpSurface", "serve_stdio"]
