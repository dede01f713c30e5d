"""The MCP surface: streamable HTTP (both protocol eras) and stdio, served from one hub."""

from toolbridge.surfaces.mcp._gate import OriginPolicy
from toolbridge.surfaces.mcp._http import McpSurface
from toolbridge.surfaces.mcp._stdio import serve_stdio

__all__ = ["McpSurface", "OriginPolicy", "serve_stdio"]
