"""The chaos run over real HTTP and real processes (toolbridge.testing._chaos_run): a chaos upstream with
its own OpenAPI document and effect counters, 30 % faults of every kind, toolbridge servers and workers
killed with SIGKILL mid-run, calls through REST and MCP — on SQLite and on PostgreSQL.
bench/chaos.py runs the same at 10,000 calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fresh_postgres
from toolbridge.testing._chaos_run import ChaosPlan, ChaosReport, chaos_run

pytestmark = pytest.mark.anyio


def check(report: ChaosReport) -> None:
    text = "\n".join(report.lines())
    assert not report.duplicates, text  # no write applied twice, whatever the agent was told
    assert not report.lost, text  # every write told ok or queued was applied
    assert report.outbox["failed"] == 0, text
    assert report.reads_ok() >= 0.97, text  # bench/chaos.py measures ≥ 99 % over 10,000 calls
    assert set(report.faults) >= {"503", "429", "reset_before", "reset_after"}, text
    kinds = {key.split(":")[0] for key in report.outcomes}
    assert kinds == {"read", "keyed", "unkeyed"}, text


def test_sqlite_one_server_killed_twice(tmp_path: Path) -> None:
    plan = ChaosPlan(tmp_path, calls=240, seed=11, kills=("server", "server"))
    report = chaos_run(plan)
    check(report)
    assert report.kills == 2


async def test_postgres_two_replicas_two_workers_one_of_each_killed(tmp_path: Path) -> None:
    async with fresh_postgres() as url:
        plan = ChaosPlan(
            tmp_path, database=url, calls=240, seed=12, replicas=2, workers=2, kills=("server", "worker")
        )
        import anyio

        report = await anyio.to_thread.run_sync(chaos_run, plan)
    check(report)
    assert report.kills == 2
