"""Event-log appends against readers on PostgreSQL, in one process: what the gap fence costs.

32 tasks append 6,000 events (each with its own delivery id) through the group commit while a reader
polls the log from the start (``after``, every 50 ms), as an agent's subscription does; a second
``Database`` plays the reader's process. Prints appends per second, CPU per append and the events the
reader saw, per round, then the median. ``--src`` runs another checkout's code (an A/B: alternate them).

    uv run python bench/event_log.py [--rounds 4] [--src ../other-checkout/src]

Not run by ``make test``; needs PostgreSQL on 127.0.0.1:5432 (``TOOLBRIDGE_TEST_POSTGRES``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time

import anyio

ADMIN = os.environ.get("TOOLBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
APPENDERS, EVENTS = 32, 6000


async def one_round() -> tuple[float, float, int]:
    import asyncpg

    from toolbridge.events import EventLog, NewEvent
    from toolbridge.storage import Database

    name = "tb_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{name}"
    try:
        async with Database(url) as db, Database(url) as reader_db:
            log, reader = EventLog(db), EventLog(reader_db)
            seen, done = 0, anyio.Event()

            async def poll() -> None:
                nonlocal seen
                cursor = 0
                while not done.is_set():
                    found, cursor = await reader.after(cursor, limit=500)
                    seen += len(found)
                    await anyio.sleep(0.05)

            async def append(k: int) -> None:
                for i in range(EVENTS // APPENDERS):
                    await log.append(NewEvent("github", "push", "r", {"i": i}, f"{k}-{i}"))

            wall, cpu = time.perf_counter(), time.process_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(poll)
                async with anyio.create_task_group() as appenders:
                    for k in range(APPENDERS):
                        appenders.start_soon(append, k)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                done.set()
        return EVENTS / wall, 1000 * cpu / EVENTS, seen
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--src", help="a checkout's src folder to import toolbridge from")
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, os.path.abspath(args.src))
    rates = []
    for _ in range(args.rounds):
        rate, cpu, seen = anyio.run(one_round)
        rates.append(rate)
        print(f"{rate:,.0f} appends/s, {cpu:.3f} ms CPU per append, reader saw {seen} by the end")
    print(f"median {statistics.median(rates):,.0f} appends/s over {args.rounds} rounds")


if __name__ == "__main__":
    main()
