"""Existence oracle and revocation latency over REST (in-process ASGI, the real hub and database).

For each object kind an agent may not see — a tool outside its scopes, another agent's connection,
another tenant's workspace, a file in it — "exists but forbidden" and "does not exist" must answer the
same (status and body, names masked) and take the same time: medians within 10% over ``--tries``
requests each, interleaved so machine noise hits both alike. Then revocation: the time from
``agents.revoke`` returning to the revoked agent's signed upload URL, download URL and open tus upload
being refused (goal: < 100 ms), median and worst over ``--revocations`` rounds.

    uv run python bench/existence_oracle.py [--tries 500] [--revocations 50]
"""

from __future__ import annotations

import argparse
import base64
import functools
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2

from toolbridge import Hub, Principal
from toolbridge.credentials import (
    AuthConfig,
    CredentialManager,
    Keyring,
    MasterKey,
    Material,
    Secret,
    StaticKeys,
    Vault,
)
from toolbridge.surfaces.app import create_app
from toolbridge.workspace import LocalBlobStore, Role, WorkspaceConnector

Request = Callable[[], Awaitable[httpx2.Response]]
TUS = {"Tus-Resumable": "1.0.0"}


def _masked(response: httpx2.Response, *names: str) -> tuple[int, str]:
    text = response.text
    for name in names:
        text = text.replace(name, "NAME")
    return response.status_code, re.sub(r'"instance":"[^"]*"', "", text)


async def _pair(tries: int, hidden: Request, missing: Request, names: tuple[str, str]) -> dict[str, Any]:
    times: dict[str, list[float]] = {"hidden": [], "missing": []}
    answers: dict[str, set[tuple[int, str]]] = {"hidden": set(), "missing": set()}
    for i in range(tries):
        order = [("hidden", hidden), ("missing", missing)]
        for label, send in order if i % 2 else order[::-1]:
            started = time.perf_counter()
            response = await send()
            times[label].append((time.perf_counter() - started) * 1000)
            answers[label].add(_masked(response, *names))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "same answer": answers["hidden"] == answers["missing"] and len(answers["hidden"]) == 1,
        "status": next(iter(answers["hidden"]))[0],
        "median hidden ms": med["hidden"],
        "median missing ms": med["missing"],
        "ratio": med["hidden"] / med["missing"],
    }


async def _world(folder: Path) -> tuple[Hub, WorkspaceConnector]:
    hub = Hub(database=f"sqlite+aiosqlite:///{folder / 'tb.db'}")
    keys = StaticKeys(Keyring(MasterKey.generate()))
    hub.credentials = CredentialManager(
        Vault(hub.database, keys), {"gh": AuthConfig(scheme="bearer", policy="per_user")}
    )
    for connector in ("gh", "admin"):

        @hub.tool(connector=connector, name="run", read_only=connector == "gh")
        async def run() -> str:
            """Run."""
            return "ran"

    workspace = WorkspaceConnector(
        database=hub.database,
        blobs=LocalBlobStore(folder / "blobs", fsync=False),
        members={"agent:alice": Role.EDITOR},
        signing_secret=b"s" * 32,
        public_url="http://bench",
        inline_bytes=10,
    )
    hub.add_connector(workspace)
    return hub, workspace


async def oracle(http: httpx2.AsyncClient, hub: Hub, ws: WorkspaceConnector, tries: int) -> dict[str, Any]:
    alice = {"Authorization": f"Bearer {await hub.agents.create('alice', ['gh.*', 'workspace.*'])}"}
    await hub.agents.create("bob", ["gh.*", "workspace.*"])
    assert hub.credentials is not None
    bob_conn = await hub.credentials.add("gh", "main", Material(secret=Secret("b")), owner="agent:bob")
    await ws.service.ensure("bobs", members={"agent:bob": Role.OWNER})
    await ws.service.write(Principal.agent("bob", ["workspace.*"]), "bobs", "/plan.txt", b"secret plan")
    fake_id = "f" * len(bob_conn.id)

    def get(url: str, **params: str) -> Request:
        return lambda: http.get(url, params=params, headers=alice)

    def call(tool: str) -> Request:
        return lambda: http.post(f"/v1/tools/{tool}/call", json={"arguments": {}}, headers=alice)

    kinds = {
        "tool": (call("admin.run"), call("admin.rux"), ("admin.run", "admin.rux")),
        "connection": (get(f"/v1/connections/{bob_conn.id}"), get(f"/v1/connections/{fake_id}"),
                       (bob_conn.id, fake_id)),
        "workspace": (get("/v1/workspaces/bobs/files", path="/"), get("/v1/workspaces/boby/files", path="/"),
                      ("bobs", "boby")),
        "file": (get("/v1/workspaces/bobs/content", path="/plan.txt"),
                 get("/v1/workspaces/bobs/content", path="/plan.txx"), ("plan.txt", "plan.txx")),
    }  # fmt: skip
    return {
        kind: await _pair(tries, hidden, missing, names) for kind, (hidden, missing, names) in kinds.items()
    }


async def revocation(http: httpx2.AsyncClient, hub: Hub, ws: WorkspaceConnector, rounds: int) -> list[float]:
    """Milliseconds from ``revoke`` returning until each capability was refused (used one after another)."""
    taken = []
    for i in range(rounds):
        name = f"temp{i}"
        key = await hub.agents.create(name, ["workspace.*"])
        await ws.service.set_member(Principal.local(), "shared", f"agent:{name}", Role.EDITOR)
        agent = await hub.authenticate(key)
        urls = (await hub.call(agent, "workspace.upload_url", {"path": f"/r/{i}.bin"})).value
        await hub.call(agent, "workspace.write", {"path": f"/r/{i}.txt", "content": "y" * 100})
        download = (await hub.call(agent, "workspace.read", {"path": f"/r/{i}.txt"})).value["url"]
        meta = "path " + base64.b64encode(f"/r/{i}.tus".encode()).decode()
        created = await http.post(urls["tus"], headers={**TUS, "Upload-Length": "8", "Upload-Metadata": meta})
        patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
        await http.patch(
            created.headers["location"], content=b"1234", headers={**patch, "Upload-Offset": "0"}
        )
        tus_rest = {**patch, "Upload-Offset": "4"}
        uses: list[Request] = [
            functools.partial(http.put, urls["put"].replace("http://bench", ""), content=b"x"),
            functools.partial(http.get, download.replace("http://bench", "")),
            functools.partial(http.patch, created.headers["location"], content=b"5678", headers=tus_rest),
        ]
        await hub.agents.revoke(name)
        started = time.perf_counter()
        for use in uses[i % 3 :] + uses[: i % 3]:  # each capability goes first in a third of the rounds
            assert (await use()).status_code == 401
            taken.append((time.perf_counter() - started) * 1000)
    return taken


async def main(tries: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        hub, ws = await _world(Path(folder))
        app = create_app(hub, manage_hub=False)
        async with (
            hub,
            httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://bench") as http,
        ):
            found = await oracle(http, hub, ws, tries)
            taken = await revocation(http, hub, ws, rounds)
    print(f"existence oracle: {tries} requests per side, interleaved (goal: same answer, ratio 0.90-1.10)")
    print(f"{'kind':<11} {'status':>6} {'same':>5} {'hidden ms':>10} {'missing ms':>11} {'ratio':>6}")
    for kind, r in found.items():
        print(
            f"{kind:<11} {r['status']:>6} {r['same answer']!s:>5} {r['median hidden ms']:>10.3f} "
            f"{r['median missing ms']:>11.3f} {r['ratio']:>6.3f}"
        )
    print(
        f"revocation → capability refused (signed PUT, signed GET, tus PATCH, used one after another; "
        f"goal < 100 ms): median {statistics.median(taken):.2f} ms, p99 "
        f"{statistics.quantiles(taken, n=100)[98]:.2f} ms, worst {max(taken):.2f} ms over {len(taken)} uses"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tries", type=int, default=500)
    parser.add_argument("--revocations", type=int, default=50)
    args = parser.parse_args()
    anyio.run(main, args.tries, args.revocations)
