"""Upstream MCP servers as connectors: stdio, streamable HTTP and legacy SSE, both protocol eras, pooled
sessions (one shared; one per connection where an upstream binds sessions to users).

``McpConnector(name, StdioServer(...) | HttpServer(...))`` lists the server's tools when it starts and
calls them over one shared session. Approved tool definitions are pinned (``PinStore``): a tool whose
definition changes is quarantined until a person approves it again.
"""

from toolbridge.connectors.mcp._config import (
    Approval,
    HttpServer,
    Protocol,
    StdioServer,
    ToolRules,
    Transport,
)
from toolbridge.connectors.mcp._connector import McpConnector, ToolReview
from toolbridge.connectors.mcp._pins import (
    Pin,
    PinStore,
    definition_diff,
    definition_digest,
    instruction_flags,
)
from toolbridge.connectors.mcp._pool import SessionPool

__all__ = [
    "Approval",
    "HttpServer",
    "McpConnector",
    "Pin",
    "PinStore",
    "Protocol",
    "SessionPool",
    "StdioServer",
    "ToolReview",
    "ToolRules",
    "Transport",
    "definition_diff",
    "definition_digest",
    "instruction_flags",
]
