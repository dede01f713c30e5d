"""A pipeline worker process for crash tests::

    python -m tests.pipelines._worker_proc CONFIG [--crash PHASE:STEP_KEY] [--until RUN_ID]

``--crash``: the process kills itself with SIGKILL when the engine reaches that point (``started``: the
step is stored as running, not yet called; ``called``: the call returned, its outcome not yet noted;
``noted``: the outcome is noted, to be written with the run's next write).
``--until``: keep claiming due runs until that run has ended (a killed worker's lease must run out first).
The hub's idempotency claims last 1 s here, so a claim left by a killed worker is taken over quickly.
"""

from __future__ import annotations

import argparse
import os
import signal

import anyio

from toolbridge import Hub
from toolbridge.pipelines import PipelineWorker, pipeline_service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--crash", default="")
    parser.add_argument("--until", default="")
    args = parser.parse_args()
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
            while True:
                await worker.run_once()
                run = await service.store.get(args.until) if args.until else None
                if run is None or run.state in ("succeeded", "failed", "cancelled", "needs_attention"):
                    return
                await anyio.sleep(0.1)  # the run is leased by a worker that died: wait for its lease

    anyio.run(work)


if __name__ == "__main__":
    main()
