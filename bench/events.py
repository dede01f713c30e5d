"""Inbound webhooks benchmark, against ``toolbridge serve`` on SQLite and on PostgreSQL:

1. GitHub-signed deliveries per second accepted (verified and durably stored) with 32 concurrent senders,
   against the same server's ``GET /healthz`` with the same senders (the HTTP floor, in the same run) and
   against a bare Starlette endpoint storing each body with one ``INSERT`` (``_events_floor.py``: the
   floor of one durable row per request). The senders are ``_raw_http`` (requests signed and serialized
   before the clock starts; a few tens of µs of CPU each) unless ``--sender httpx2``; the sender's own
   CPU per request is printed, since on a 2-core machine it competes with the server.
2. Time from receipt to an MCP notification: one delivery at a time, from sending the POST to the
   ``notifications/resources/updated`` of the matching subscription's resource arriving at an official
   SDK client, in the handshake era (``resources/subscribe``) and the 2026-07-28 era
   (``subscriptions/listen``), both subscribed at once; the POST's own answer time is the baseline.

    uv run python bench/events.py [--deliveries 3000] [--senders 32] [--notifications 300]
        [--skip-sqlite] [--skip-postgres] [--sender raw|httpx2] [--profile DIR]

Goals (issue #18): ≥ 1,000 deliveries/s on PostgreSQL; notification median ≤ 20 ms. Not run by
``make test``. Every delivery has its own ``X-GitHub-Delivery``, so each one is a new event row (plus its
dedupe row) committed before the answer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from _events_floor import __file__ as FLOOR
from _procs import Server, free_port, running
from _profile import record, summarize
from _raw_http import request_bytes, run_load

SECRET = "bench-secret-of-at-least-24-bytes"
CONFIG = """
server: {{host: 127.0.0.1, port: {port}, database: "{database}"}}
hooks:
  github: {{verifier: github, secret: env:TB_BENCH_GITHUB_SECRET}}
subscriptions:
  pushes: {{source: github, type: push, principals: [bench]}}
"""
POSTGRES = os.environ.get("TOOLBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def delivery(n: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": "refs/heads/main", "n": n, "repository": {"full_name": "bench/repo"}}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": f"sha256={signature}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": f"bench-{n}-{secrets.token_hex(4)}",
        "Content-Type": "application/json",
    }
    return body, headers


async def load(
    base: str, total: int, senders: int, make: Callable[[httpx2.AsyncClient, int], object]
) -> tuple[float, list[float]]:
    """``total`` requests from ``senders`` concurrent clients; (requests per second, latencies in s)."""
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx2.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx2.AsyncClient(base_url=base, trust_env=False, timeout=60, limits=limits) as client:

        async def sender() -> None:
            for n in counter:
                started = time.perf_counter()
                response = await make(client, n)  # type: ignore[misc]
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(senders):
                tg.start_soon(sender)
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


async def post_delivery(client: httpx2.AsyncClient, n: int) -> httpx2.Response:
    body, headers = delivery(n)
    return await client.post("/hooks/github", content=body, headers=headers)


URI = "toolbridge://events/pushes"


async def notification_latency(base: str, key: str, count: int) -> dict[str, list[float]]:
    """``count`` deliveries one at a time; seconds from sending each to its notification, per era."""
    arrived = {"legacy": anyio.Event(), "modern": anyio.Event()}
    seen: dict[str, list[float]] = {"legacy": [], "modern": [], "answer": []}

    def told(era: str) -> None:
        arrived[era].set()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            told("legacy")

    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(base_url=base, trust_env=False, timeout=60) as hooks,
        httpx2.AsyncClient(headers=headers, trust_env=False, timeout=60) as h1,
        httpx2.AsyncClient(headers=headers, trust_env=False, timeout=60) as h2,
        Client(
            streamable_http_client(f"{base}/mcp", http_client=h1), mode="legacy", message_handler=on_message
        ) as legacy,
        Client(streamable_http_client(f"{base}/mcp", http_client=h2), mode="2026-07-28") as modern,
        modern.listen(resource_subscriptions=[URI]) as stream,
        anyio.create_task_group() as tg,
    ):
        await legacy.subscribe_resource(URI)

        async def forward() -> None:
            async for _ in stream:
                told("modern")

        tg.start_soon(forward)
        for n in range(count):
            arrived = {"legacy": anyio.Event(), "modern": anyio.Event()}
            body, signed = delivery(1_000_000 + n)
            started = time.perf_counter()
            async with anyio.create_task_group() as waits:
                for era in ("legacy", "modern"):
                    waits.start_soon(_stamp, arrived[era], seen[era], started)
                response = await hooks.post("/hooks/github", content=body, headers=signed)
                seen["answer"].append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
        tg.cancel_scope.cancel()
    return seen


async def _stamp(arrived: anyio.Event, into: list[float], started: float) -> None:
    with anyio.fail_after(30):
        await arrived.wait()
    into.append(time.perf_counter() - started)


def agent_key(config: Path) -> str:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolbridge",
            "agents",
            "create",
            "bench",
            "-s",
            "events.*",
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return created.stdout.strip()


def _ms(name: str, values: list[float]) -> dict[str, float]:
    return {
        f"{name}_median_ms": statistics.median(values) * 1000,
        f"{name}_p99_ms": statistics.quantiles(values, n=100)[98] * 1000,
    }


async def get_health(client: httpx2.AsyncClient, n: int) -> httpx2.Response:
    return await client.get("/healthz")


def measure(
    server: Server, args: argparse.Namespace, what: str, *, offset: int = 0
) -> tuple[float, list[float], float, float]:
    """``args.deliveries`` requests of ``what`` ('hooks' or 'healthz'); (per second, latencies, server CPU
    seconds per request, sender CPU seconds per request)."""
    cpu = server.cpu_seconds()
    if args.sender == "httpx2":
        make = post_delivery if what == "hooks" else get_health
        started = time.process_time()
        rate, lat = anyio.run(load, server.base_url, args.deliveries, args.senders, make)
        sender = (time.process_time() - started) / args.deliveries
    else:
        requests = [
            request_bytes("POST", "/hooks/github", server.port, *delivery(offset + n))
            if what == "hooks"
            else request_bytes("GET", "/healthz", server.port, b"", {})
            for n in range(args.deliveries)
        ]
        rate, lat, sender = anyio.run(run_load, server.port, requests, args.senders)
    return rate, lat, (server.cpu_seconds() - cpu) / args.deliveries, sender


def run_floor(name: str, database: str, root: Path, args: argparse.Namespace) -> dict[str, float]:
    """The bare endpoint (one INSERT per request) with the same senders."""
    port = free_port()
    url = database.replace("+aiosqlite", "")
    with running(f"events-floor-{name}", [sys.executable, FLOOR, str(port), url], port, root) as server:
        measure(server, argparse.Namespace(**{**vars(args), "deliveries": 200}), "hooks")  # warm-up
        rate, lat, cpu, _ = measure(server, args, "hooks", offset=10_000_000)
    return {
        f"{name}_floor_insert_per_s": rate,
        f"{name}_floor_insert_median_ms": statistics.median(lat) * 1000,
        f"{name}_floor_server_cpu_ms_per_request": cpu * 1000,
    }


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    import asyncpg

    name = f"tb_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def run_backend(name: str, database: str, root: Path, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    config = root / f"{name}.yaml"
    config.write_text(CONFIG.format(port=port, database=database))
    argv = [sys.executable, "-m", "toolbridge", "serve", "-c", str(config), "--no-worker"]
    os.environ["TB_BENCH_GITHUB_SECRET"] = SECRET
    key = agent_key(config)
    with running(f"toolbridge-events-{name}", argv, port, root) as server:
        base = server.base_url
        measure(server, argparse.Namespace(**{**vars(args), "deliveries": 200}), "hooks")  # warm-up
        floor, floor_lat, floor_cpu, _ = measure(server, args, "healthz")
        with profiled(server, args.profile, name):
            rate, lat, cpu, sender = measure(server, args, "hooks", offset=1000)
        told = anyio.run(notification_latency, base, key, args.notifications)
    notify = {
        **_ms(f"{name}_notify_legacy", told["legacy"]),
        **_ms(f"{name}_notify_2026", told["modern"]),
        **_ms(f"{name}_notify_baseline_answer", told["answer"]),
    }
    return {
        **notify,
        f"{name}_deliveries_per_s": rate,
        f"{name}_median_ms": statistics.median(lat) * 1000,
        f"{name}_p99_ms": statistics.quantiles(lat, n=100)[98] * 1000,
        f"{name}_server_cpu_ms_per_delivery": cpu * 1000,
        f"{name}_sender_cpu_ms_per_delivery": sender * 1000,
        f"{name}_healthz_per_s": floor,
        f"{name}_healthz_server_cpu_ms_per_request": floor_cpu * 1000,
        f"{name}_healthz_median_ms": statistics.median(floor_lat) * 1000,
        f"{name}_ratio_to_healthz": rate / floor,
    }


@contextlib.contextmanager
def profiled(server: Server, into: Path | None, name: str) -> Iterator[None]:
    """With ``--profile DIR``: py-spy samples the server during the block; the summary is printed."""
    if into is None:
        yield
        return
    into.mkdir(parents=True, exist_ok=True)
    out = into / f"events-{name}.txt"
    with record(server.pid, out):
        yield
    print(summarize(out, top=25), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--notifications", type=int, default=300)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--sender", choices=["raw", "httpx2"], default="raw")
    parser.add_argument("--profile", type=Path, help="py-spy the server during the delivery load")
    args = parser.parse_args()
    results: dict[str, float | bool | str] = {
        "senders": args.senders,
        "deliveries": args.deliveries,
        "sender": args.sender,
        "load_average_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="tb-bench-events-") as tmp:
        root = Path(tmp)
        if not args.skip_sqlite:
            results.update(run_backend("sqlite", f"sqlite+aiosqlite:///{root}/tb.db", root, args))
            results.update(run_floor("sqlite", f"sqlite+aiosqlite:///{root}/floor.db", root, args))
        if not args.skip_postgres:

            async def with_pg() -> dict[str, float]:
                async with postgres_database() as url:
                    measured = await anyio.to_thread.run_sync(run_backend, "postgres", url, root, args)
                    floor = await anyio.to_thread.run_sync(run_floor, "postgres", url, root, args)
                    return {**measured, **floor}

            results.update(anyio.run(with_pg))
            results["postgres_ratio_to_floor"] = (
                results["postgres_deliveries_per_s"] / results["postgres_floor_insert_per_s"]  # type: ignore[operator]
            )
            results["goal_postgres_met"] = results["postgres_deliveries_per_s"] >= 1000
    results["goal_notify_met"] = all(
        v <= 20
        for k, v in results.items()
        if k.endswith(("notify_legacy_median_ms", "notify_2026_median_ms"))
    )
    results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}, indent=2))
    out = Path(__file__).parent / "results" / "events.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
