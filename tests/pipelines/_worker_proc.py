"""A pipeline worker process for crash tests::

    python -m tests.pipelines._worker_proc CONFIG [--crash PHASE:STEP_KEY] [--until RUN_ID]

``--crash``: the process kills itself with SIGKILL when the engine reaches that point (``started``: the
step is stored as running, not yet called; ``called``: the call returned, its outcome not yet noted;
``noted``: the outcome is noted, to be written with the run's next write).
``--until``: keep claiming due runs until that run has ended (a killed worker's lease must run out first).
The hub's idempotency claims last 1 s here, so a claim left by a killed worker is taken over quickly.

The process logs to stderr (a test shows it when the worker fails or hangs): each change of the awaited
run's state, and — once it has waited ``--report-after`` seconds — the stack of every task; once the run
has ended, the stack of every thread every 10 s until the process exits. A worker that never finishes
says where it waits.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import io
import logging
import os
import signal
import sys

import anyio

from toolbridge import Hub
from toolbridge.pipelines import PipelineWorker, pipeline_service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--crash", default="")
    parser.add_argument("--until", default="")
    parser.add_argument("--report-after", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(relativeCreated)7.0f ms %(name)s: %(message)s"
    )
    hub = Hub.from_file(args.config)
    hub.idempotency.lease = 1.0
    service = pipeline_service(hub)
    assert service is not None
    if args.crash:
        phase, key = args.crash.split(":", 1)

        def observer(at: str, _run: str, step: str) -> None:
            if (at, step) == (phase, key):
                os.kill(os.getpid(), signal.SIGKILL)

        service.engine.observer = observer

    async def work() -> None:
        async with hub, anyio.create_task_group() as tg:
            if args.until:
                tg.start_soon(report_tasks, args.report_after)
            worker = PipelineWorker(service)
            seen = ""
            while True:
                await worker.run_once()
                run = await service.store.get(args.until) if args.until else None
                if run is not None and run.state != seen:
                    seen = run.state
                    logging.info("run %s is %s", run.id, run.state)
                if run is None or run.state in ("succeeded", "failed", "cancelled", "needs_attention"):
                    if args.until:
                        faulthandler.dump_traceback_later(10, repeat=True)  # until the process exits
                    tg.cancel_scope.cancel()
                    return
                await anyio.sleep(0.1)  # the run is leased by a worker that died: wait for its lease

    anyio.run(work)


async def report_tasks(after: float) -> None:
    """Log every task's stack once the worker has waited ``after`` seconds (it should be done by then)."""
    await anyio.sleep(after)
    text = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(file=text)
    logging.warning("still running after %.0f s; tasks:\n%s", after, text.getvalue())


if __name__ == "__main__":
    main()
