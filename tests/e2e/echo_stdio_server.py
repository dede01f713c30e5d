"""An MCP server over stdio that tells what it was given, for the secret-canary test:
``python -m tests.e2e.echo_stdio_server`` speaks the 2025-11-25 era on stdin and stdout, in a few lines of
JSON-RPC (each CLI command of the test starts one: it starts in milliseconds, without the SDK).

What it was given: its environment's ``ECHO_*`` variables (a stdio server's secrets). ``headers`` answers
with them (as the HTTP echo server does with its request's headers); ``fail`` fails quoting them (as a
careless server's error would); ``crash`` exits at once. It also writes them to stderr when it starts and
on each call, and to stdout when it starts (as a careless server's log would).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TOOLS = {
    "headers": "The ECHO_* environment variables this server was started with.",
    "fail": "Fails, quoting the environment this server was started with.",
    "crash": "Writes its environment to stderr and exits at once (a server that crashes).",
}


def answer(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "initialize":
        info = {"name": "echo", "version": "1"}
        return {
            "protocolVersion": params.get("protocolVersion"),
            "capabilities": {"tools": {}},
            "serverInfo": info,
        }
    if method == "tools/list":
        schema = {"type": "object", "properties": {}}
        return {"tools": [{"name": n, "description": d, "inputSchema": schema} for n, d in TOOLS.items()]}
    if method != "tools/call":
        return {}
    given = json.dumps({k: v for k, v in os.environ.items() if k.startswith("ECHO_")})
    print(f"echo server: called with {given}", file=sys.stderr, flush=True)
    if params.get("name") == "crash":
        os._exit(3)
    failed = params.get("name") == "fail"
    text = f"refused: you sent {given}" if failed else given
    return {"content": [{"type": "text", "text": text}], "isError": failed}


def main() -> None:
    started = f"echo server: starting with {dict(sorted(os.environ.items()))}"
    print(started, flush=True)  # not JSON-RPC: a careless server's banner on stdout
    print(started, file=sys.stderr, flush=True)
    for line in sys.stdin:
        message = json.loads(line)
        if "id" in message:
            result = answer(message["method"], message.get("params") or {})
            print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)


if __name__ == "__main__":
    main()
