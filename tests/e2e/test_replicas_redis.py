"""`toolbridge serve` replicas on one PostgreSQL database and one Redis share their rate limits, the pauses
an upstream asks for and their circuit breakers: the upstream, which counts what reaches it, sees the
configured limit in total, and no more failing calls than one breaker lets through.

Every assertion counts requests, never measures time: the limits are per hour and the upstream's pause is
100 s, so a machine however slow stays inside them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.conftest import fresh_postgres, require_service
from tests.e2e.test_serve import free_port
from toolbridge.testing import Reply, Upstream, running_upstream

pytestmark = pytest.mark.e2e
TOOLBRIDGE = [sys.executable, "-m", "toolbridge"]
REDIS = "redis://127.0.0.1:6379/0"
DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "counted", "version": "1"},
    "paths": {
        "/thing": {
            "get": {
                "operationId": "getThing",
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {}}}}},
            }
        }
    },
}


def _config(folder: Path, database: str, upstream: Upstream, prefix: str) -> Path:
    def connector(**resilience: Any) -> dict[str, Any]:
        return {
            "kind": "openapi",
            "spec": "counted.json",
            "base_url": upstream.url,
            "allow_hosts": [f"127.0.0.1:{upstream.port}"],
            "resilience": resilience,
        }

    (folder / "counted.json").write_text(json.dumps(DOCUMENT))
    config = {
        "server": {"database": database, "redis_prefix": prefix},  # Redis itself: --redis / TOOLBRIDGE_REDIS
        "connectors": {
            "limited": connector(rate="5/hour", burst=5, max_rate_wait=0),  # 5 now, the next in 12 min
            "held": connector(retry={"max_attempts": 1}),
            "free": connector(),
            "fragile": connector(retry={"max_attempts": 1}, breaker={"minimum_calls": 4, "window": 10}),
        },
        "agents": {"driver": {"scopes": ["*"]}, "metered": {"scopes": ["free.*"], "rate": "3/hour"}},
    }
    path = folder / "toolbridge.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@contextmanager
def _replicas(config: Path, count: int) -> Iterator[list[str]]:
    """``count`` ``toolbridge serve`` processes told of Redis by ``--redis`` or by ``TOOLBRIDGE_REDIS``."""
    procs: list[subprocess.Popen[bytes]] = []
    bases = []
    try:
        for i in range(count):
            port = free_port()
            by_option = i % 2 == 0
            env = {**os.environ, **({} if by_option else {"TOOLBRIDGE_REDIS": REDIS})}
            argv = [*TOOLBRIDGE, "serve", "-c", str(config), "--port", str(port), "--no-worker"]
            with (config.parent / f"replica{i}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        argv + (["--redis", REDIS] if by_option else []),
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            bases.append(f"http://127.0.0.1:{port}")
        yield bases
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=patience(15))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=patience(15))


async def _ready(http: httpx2.AsyncClient, bases: list[str], folder: Path) -> None:
    with anyio.fail_after(patience(120)):
        for i, base in enumerate(bases):
            while True:
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                log = (folder / f"replica{i}.log").read_text(errors="replace")
                assert "error:" not in log, log
                await anyio.sleep(0.2)  # bounded polling for a process's port


def _agent(config: Path, name: str) -> str:
    out = subprocess.run(
        [*TOOLBRIDGE, "agents", "create", name, "-c", str(config)],
        capture_output=True,
        text=True,
        check=True,
        timeout=patience(120),
    )
    return next(word for word in out.stdout.split() if word.startswith("tb_"))


@asynccontextmanager
async def _deployment(
    tmp_path: Path, count: int
) -> AsyncIterator[tuple[Upstream, list[str], dict[str, str]]]:
    import redis.asyncio as redis_asyncio

    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"tbtest:{secrets.token_hex(6)}:"
    async with fresh_postgres() as database, running_upstream() as upstream:
        config = _config(tmp_path, database, upstream, prefix)
        keys = {name: _agent(config, name) for name in ("driver", "metered")}
        redis = redis_asyncio.Redis.from_url(REDIS)
        try:
            with _replicas(config, count) as bases:
                yield upstream, bases, keys
        finally:
            found = [key async for key in redis.scan_iter(match=prefix + "*")]
            if found:
                await redis.delete(*found)
            await redis.aclose()


async def _call(http: httpx2.AsyncClient, base: str, key: str, tool: str) -> httpx2.Response:
    return await http.post(
        f"{base}/v1/tools/{tool}/call", json={"arguments": {}}, headers={"Authorization": f"Bearer {key}"}
    )


async def _spread(http: httpx2.AsyncClient, bases: list[str], key: str, tool: str, n: int) -> list[str]:
    """``n`` calls at once, round robin over the replicas: each answer's code (``ok`` for a 200)."""
    codes: list[str] = []

    async def one(i: int) -> None:
        answer = await _call(http, bases[i % len(bases)], key, tool)
        codes.append("ok" if answer.status_code == 200 else answer.json()["code"])

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return sorted(codes)


@pytest.mark.anyio
@pytest.mark.postgres
@pytest.mark.redis
async def test_replicas_share_limits_and_the_upstreams_pause(tmp_path: Path) -> None:
    async with (
        _deployment(tmp_path, 3) as (upstream, bases, keys),
        httpx2.AsyncClient(trust_env=False, timeout=patience(60)) as http,
    ):
        await _ready(http, bases, tmp_path)
        assert f"rate limits and breakers shared through {REDIS}" in (tmp_path / "replica1.log").read_text()

        # the upstream asks replica 0 for a 100 s pause: replicas 1 and 2 do not call it meanwhile
        upstream.then(Reply(429, headers={"Retry-After": "100"}))
        first = await _call(http, bases[0], keys["driver"], "held.get_thing")
        assert first.status_code == 429 and first.headers["retry-after"] == "100"
        assert first.json()["retry_after"] == 100 and "wait 100 s" in first.json()["hint"]
        for base in bases[1:]:
            answer = await _call(http, base, keys["driver"], "held.get_thing")
            assert answer.status_code == 429 and answer.json()["code"] == "rate_limited", answer.text
            assert 90 <= int(answer.headers["retry-after"]) <= 100
        assert len(upstream.requests) == 1

        # rate: 5/hour, burst 5 on the connector: 15 calls over 3 replicas, 5 reach the upstream
        codes = await _spread(http, bases, keys["driver"], "limited.get_thing", 15)
        assert codes == ["ok"] * 5 + ["rate_limited"] * 10
        assert len(upstream.requests) == 1 + 5

        # rate: 3/hour on the agent: 9 calls over 3 replicas, 3 are served
        codes = await _spread(http, bases, keys["metered"], "free.get_thing", 9)
        assert codes == ["ok"] * 3 + ["rate_limited"] * 6
        assert len(upstream.requests) == 1 + 5 + 3

        # a breaker that trips at 4 failures in its window: 2 failures through replica 0 and 2 through
        # replica 1 open it for all three; replica 2, which never called, fails fast as well
        upstream.then(*[Reply(500)] * 4)
        for base in (bases[0], bases[1], bases[0], bases[1]):
            failed = await _call(http, base, keys["driver"], "fragile.get_thing")
            assert failed.status_code == 502, failed.text
        for base in bases:
            refused = await _call(http, base, keys["driver"], "fragile.get_thing")
            assert refused.status_code == 503 and refused.json()["code"] == "circuit_open", refused.text
            assert 40 <= int(refused.headers["retry-after"]) <= 72
        assert len(upstream.requests) == 1 + 5 + 3 + 4


def test_serve_stops_at_start_when_redis_does_not_answer(tmp_path: Path) -> None:
    """One line and a hint, the password masked, exit 1: nothing served without the shared limits."""
    (tmp_path / "toolbridge.yaml").write_text("version: 1\n")
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    out = subprocess.run(
        [*TOOLBRIDGE, "serve", "-c", "toolbridge.yaml", "--port", str(free_port()), "--redis", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=patience(60),
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("error: cannot reach Redis at redis://:***@127.0.0.1:"), out.stderr
    assert lines[1].startswith("hint: start Redis or correct server.redis"), out.stderr
    assert "s3cret" not in out.stdout + out.stderr and "serving" not in out.stdout


@pytest.mark.parametrize("given", ["http://:s3cret-pw@cache:6379/0", "redis://:s3cret-pw@cache:port/0"])
def test_a_redis_url_that_is_none_is_refused_without_its_password(tmp_path: Path, given: str) -> None:
    (tmp_path / "toolbridge.yaml").write_text("version: 1\n")
    out = subprocess.run(
        [*TOOLBRIDGE, "serve", "-c", "toolbridge.yaml", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=patience(60),
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300", "TOOLBRIDGE_REDIS": given},
    )
    assert out.returncode == 1 and "is not a Redis URL" in out.stderr, out.stderr
    assert "s3cret" not in out.stdout + out.stderr and "***" in out.stderr
