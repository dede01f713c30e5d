"""The pipeline worker: claims due runs (new, waiting, or left by a worker that died) and executes them,
at most ``concurrency`` at once, each under a renewed lease (``toolbridge worker`` runs one).

An idle worker wakes when a run is queued — in this process directly, from other processes through
PostgreSQL's ``LISTEN``/``NOTIFY`` — and otherwise every ``poll_interval`` (runs due after a retry
delay, leases that ran out, SQLite)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from anyio.abc import TaskGroup

from toolbridge.errors import StorageError
from toolbridge.pipelines._service import PipelineService, pipeline_service
from toolbridge.pipelines._store import Run

__all__ = ["PipelineWorker", "pipeline_service", "pipeline_worker"]

logger = logging.getLogger("toolbridge.pipelines")


class PipelineWorker:
    def __init__(self, service: PipelineService) -> None:
        self._service = service
        self._slots = anyio.CapacityLimiter(service.settings.concurrency)
        self._wake = anyio.Event()

    def wake(self) -> None:
        """Look for due runs now (a run was queued)."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and execute runs until cancelled."""
        self._service.on_queued.append(self.wake)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._listen)
                await self._loop(tg)
        finally:
            self._service.on_queued.remove(self.wake)

    async def _listen(self) -> None:
        """Be woken by runs queued in other processes, while the database can tell (PostgreSQL)."""
        while True:
            try:
                async with self._service.store.listening(self.wake) as lost:
                    if lost is None:
                        return  # this database cannot notify: polling it is
                    self.wake()  # anything queued while not listening
                    await lost.wait()
                    logger.warning("pipeline worker: the connection listening for runs was lost")
            except StorageError as exc:
                logger.warning("pipeline worker: %s", exc)
            await anyio.sleep(max(1.0, self._service.settings.poll_interval))

    async def _loop(self, tg: TaskGroup) -> None:
        while True:
            try:
                claimed = await self._claim()
            except StorageError as exc:  # the database is away: try again at the next poll
                logger.warning("pipeline worker: %s", exc)
                claimed = []
            for run in claimed:
                tg.start_soon(self._execute, run)
            if not claimed:
                with anyio.move_on_after(self._service.settings.poll_interval):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def run_once(self) -> int:
        """Execute every run due now, then return how many ran (``toolbridge worker --once``)."""
        count = 0
        while claimed := await self._claim():
            async with anyio.create_task_group() as tg:
                for run in claimed:
                    tg.start_soon(self._execute, run)
            count += len(claimed)
        return count

    async def _claim(self) -> list[Run]:
        free = int(self._slots.total_tokens - self._slots.borrowed_tokens)
        if free <= 0:
            return []
        return await self._service.store.claim_due(free, owner=self._service.owner)

    async def _execute(self, run: Run) -> None:
        async with self._slots:
            try:
                await self._service.execute(run)
            except StorageError as exc:  # the lease runs out and the run is claimed again
                logger.warning("pipeline run %s: storage failed: %s; it resumes later", run.id, exc)
            except Exception:  # a bug in one run must not stop the others: logged, left to its lease
                logger.exception(
                    "pipeline run %s failed unexpectedly; it resumes when its lease ends", run.id
                )
        self._wake.set()


def pipeline_worker(hub: Any) -> PipelineWorker | None:
    """A worker for the hub's pipeline runs (None when no pipelines are configured)."""
    service = pipeline_service(hub)
    return PipelineWorker(service) if service is not None else None
