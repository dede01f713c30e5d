"""A pipeline worker process for crash tests::

    python -m tests.pipelines._worker_proc CONFIG [--crash PHASE:STEP_KEY] [--until RUN_ID]

``--crash``: the process kills itself with SIGKILL when the engine reaches that point (``started``: the
step is stored as running, not yet called; ``called``: the call returned, its outcome not yet noted;
``noted``: the outcome is noted, to be written with the run's next write).
``--until``: keep claiming due runs until that run has ended (a killed worker's lease must run out first).
The hub's idempotency claims last 1 s here, so a claim left by a killed worker is taken over quickly.

The process logs to stderr (a test shows it when the worker fails or hangs): each change of the awaited
run's state, the hub's close and the event loop's end, and — once it has run ``--report-after`` seconds —
the stack of every task and every thread, every 10 s until it exits. A worker that never finishes says
where it waits.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import signal
import sys
import threading
import time
import traceback

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
        async with hub:
            worker = PipelineWorker(service)
            seen = ""
            while True:
                await worker.run_once()
                run = await service.store.get(args.until) if args.until else None
                if run is not None and run.state != seen:
                    seen = run.state
                    logging.info("run %s is %s", run.id, run.state)
                if run is None or run.state in ("succeeded", "failed", "cancelled", "needs_attention"):
                    break
                await anyio.sleep(0.1)  # the run is leased by a worker that died: wait for its lease
            logging.info("closing the hub")
        logging.info("hub closed")

    if args.until:
        threading.Thread(target=report, args=(args.report_after,), daemon=True).start()
    anyio.run(work)
    logging.info("event loop closed")


def report(after: float) -> None:
    """Log every task's and every thread's stack after ``after`` seconds, then every 10 s (a worker
    should be gone by then: this says where it waits, in the engine, in the hub's close or after)."""
    time.sleep(after)
    while True:
        text = io.StringIO()
        for task in list(vars(asyncio.tasks)["_all_tasks"]):  # (read from this thread: a diagnostic)
            text.write(f"{task!r}\n")
            task.print_stack(file=text)
        for ident, frame in sys._current_frames().items():
            text.write(f"thread {ident}:\n{''.join(traceback.format_stack(frame))}")
        logging.warning("still running after %.0f s; tasks and threads:\n%s", after, text.getvalue())
        time.sleep(10)
        after += 10


if __name__ == "__main__":
    main()
