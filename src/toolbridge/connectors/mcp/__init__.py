"""Upstream MCP servers as connectors: stdio and streamable HTTP, both protocol eras, pooled sessions.

``McpConnector(name, StdioServer(...) | HttpServer(...))`` lists the server's tools when it starts and
calls them over one shared session. Approved tool definitions are pinned (``PinStore``): a tool whose
definition changes is quarantined until a person approves it again.
"""

from toolbridge.connectors.mcp._config import Approval, HttpServer, Protocol, StdioServer, ToolRules
from toolbridge.connectors.mcp._connector import McpConnector, ToolReview
from toolbridge.connectors.mcp._pins import (
    Pin,
    PinStore,
    definition_diff,
    definition_digest,
    instruction_flags,
)

__all__ = [
    "Approval",
    "HttpServer",
    "McpConnector",
    "Pin",
    "PinStore",
    "Protocol",
    "StdioServer",
    "ToolReview",
    "ToolRules",
    "definition_diff",
    "definition_digest",
    "instruction_flags",
]
