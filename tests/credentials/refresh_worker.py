"""One process of the O1 test: open the hub, say "ready", wait for "go", run N concurrent calls, report.

Run as ``python -m tests.credentials.refresh_worker CONFIG N``; prints one JSON line with the outcome.
"""

from __future__ import annotations

import json
import sys

import anyio

from tests._patience import patience
from toolbridge import Hub, Principal, ToolbridgeError


async def main(config: str, calls: int) -> None:
    hub = Hub.from_file(config)
    ok = 0
    errors: list[str] = []
    async with hub:
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)

        async def one() -> None:
            nonlocal ok
            try:
                await hub.call(Principal.local(), "api.whoami")
                ok += 1
            except ToolbridgeError as exc:
                errors.append(f"{exc.code}: {exc.message}")

        with anyio.fail_after(patience(60)):
            async with anyio.create_task_group() as tg:
                for _ in range(calls):
                    tg.start_soon(one)
        refreshes = hub.credentials.refreshes if hub.credentials else 0
    print(json.dumps({"ok": ok, "errors": errors, "refreshes": refreshes}), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
