"""toolbridge serving server-everything (federated over stdio) over its own stdio, as ``toolbridge mcp`` does.

Started as a subprocess by test_notifications.py: the official client talks to it over stdio, where
progress notifications have a stream to travel on.
"""

from __future__ import annotations

import sys

import anyio

from toolbridge import Hub, Principal
from toolbridge.connectors.mcp import McpConnector, StdioServer
from toolbridge.surfaces.mcp import serve_stdio

if __name__ == "__main__":
    node, everything = sys.argv[1:3]
    hub = Hub()
    hub.add_connector(McpConnector("ev", StdioServer(command=node, args=(everything, "stdio"))))
    anyio.run(serve_stdio, hub, Principal.agent("desktop", ["*"]))
