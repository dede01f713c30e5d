"""Chaos over real HTTP at full size: 10,000 calls with 30 % faults of every kind, ``kill -9`` mid-run.

A chaos upstream process (its own OpenAPI document, idempotency keys, effect counters) behind the
OpenAPI connector, with the settings users get (only the outbox backoff is shortened so the run drains);
calls through the real REST and MCP surfaces; then a reconciliation against the upstream's counters.
CI runs the same harness at 240 calls per configuration (tests/resilience/test_chaos_http.py).

- ``sqlite``: one ``toolbridge serve`` (with its in-process worker) on a SQLite file, killed twice;
- ``postgres``: two replicas and two ``toolbridge worker`` processes on PostgreSQL (a fresh database on
  127.0.0.1:5432), one replica and one worker killed.

Passes when no write was applied twice, none told ok/queued was lost, and ≥ 99 % of reads succeeded.

    uv run python bench/chaos.py [--calls 10000] [--seed 1] [--concurrency 64] [--backend both]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from pathlib import Path

from toolbridge.testing import ChaosPlan, ChaosReport, chaos_run

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def run_sqlite(folder: Path, args: argparse.Namespace) -> ChaosReport:
    plan = ChaosPlan(
        folder / "sqlite", calls=args.calls, seed=args.seed, concurrency=args.concurrency, drain_timeout=900
    )
    return chaos_run(plan)


def run_postgres(folder: Path, args: argparse.Namespace) -> ChaosReport:
    import asyncpg

    name = f"tb_chaos_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        plan = ChaosPlan(
            folder / "postgres",
            database=POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}",
            calls=args.calls,
            seed=args.seed,
            concurrency=args.concurrency,
            replicas=2,
            workers=2,
            kills=("server", "worker"),
            drain_timeout=900,
        )
        return chaos_run(plan)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def verdict(name: str, report: ChaosReport) -> bool:
    checks = {
        "no write applied twice": not report.duplicates,
        "no write told ok/queued lost": not report.lost,
        "no queued write failed": report.outbox["failed"] == 0,
        "reads >= 99 % ok": report.reads_ok() >= 0.99,
    }
    print(f"== {name}")
    print("\n".join(report.lines()))
    for check, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {check}")
    return all(checks.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="toolbridge-chaos-") as tmp:
        if args.backend in ("sqlite", "both"):
            results.append(verdict("sqlite, kill -9 of the server x2", run_sqlite(Path(tmp), args)))
        if args.backend in ("postgres", "both"):
            results.append(
                verdict("postgres, 2 replicas + 2 workers, one of each killed", run_postgres(Path(tmp), args))
            )
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
