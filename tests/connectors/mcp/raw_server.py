"""A tiny handshake-era MCP server written by hand (newline-delimited JSON-RPC on stdin/stdout), for start-up
failures the SDK's servers cannot produce.

``STARTS_FILE``: every start appends a line ``PID start MODE`` to it, every request ``PID METHOD``.
``MODE_FILE`` holds what this start does: ``die`` (exit 3 at once, with a line on stderr), ``silent-once``
(the first start reads and never answers, later ones serve), ``deep`` (serve, writing before each
``tools/call`` answer a line of JSON nested 5,000 levels deep, which Python's ``json`` cannot read without
a ``RecursionError``) or ``serve``. A ``server/discover`` is answered "method not found" (no stateless era).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TOOL = {"name": "ping", "description": "Answer pong.", "inputSchema": {"type": "object"}}


def answer(message: dict[str, object]) -> dict[str, object] | None:
    method = message.get("method")
    if "id" not in message:
        return None
    if method == "initialize":
        result: dict[str, object] = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw", "version": "1"},
        }
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "pong"}]}
    elif method in ("ping", "prompts/list", "resources/list", "resources/templates/list"):
        result = {"prompts": []} if method == "prompts/list" else {}
    else:
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": f"no {method}"}}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def record(starts: Path, what: str) -> None:
    with starts.open("a") as out:
        out.write(f"{os.getpid()} {what}\n")


def main() -> None:
    starts = Path(os.environ["STARTS_FILE"])
    earlier = starts.read_text().splitlines() if starts.exists() else []
    mode = Path(os.environ["MODE_FILE"]).read_text().strip()
    record(starts, f"start {mode}")
    if mode == "die":
        print("raw server: cannot open its database", file=sys.stderr)
        sys.exit(3)
    silent = mode == "silent-once" and not earlier
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        record(starts, str(message.get("method")))
        if silent:
            continue
        reply = answer(message)
        if mode == "deep" and message.get("method") == "tools/call":
            sys.stdout.write('{"jsonrpc": "2.0", "method": "x", "params": ' + "[" * 5000 + "]" * 5000 + "}\n")
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
