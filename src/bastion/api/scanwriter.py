"""Group commit for the live sampling API.

Each scanner request must be acknowledged only after its scans are durable, and a city at its
peak sends thousands of saves a second. Committing each request on its own costs a disk flush
and a round of statements per request; instead one writer per process takes every request that
is waiting, judges them together through :func:`bastion.testing.ingest.ingest_batches` (each as
if it had arrived alone, in order), commits once, then answers them all. Under light load a
request waits for nobody; under heavy load the batches grow and the per-request cost falls.

When the queue is longer than ``max_pending`` the API sheds load (429 with Retry-After) instead
of queueing without bound. If a group fails to commit (a concurrent writer in another process
touched the same tubes), it is retried once, then request by request, so one bad request can
never sink its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from bastion.core.errors import BastionError
from bastion.testing.ingest import BatchIn, IngestReport, SiteCache, ingest_batches

log = logging.getLogger("bastion.scanwriter")

MAX_GROUP = 256
MAX_PENDING = 4_000
#: Writers per process. More than one lets the next group be judged while one waits on the
#: database, but on a small machine the CPU, not the waiting, is what runs out: one writer makes
#: groups larger and each request cheaper (measured with two workers on 2 cores: 1.6 ms of server
#: CPU a 10-scan request with one writer, 2.6 ms with three; ADR 0008). Several writers (several
#: workers) rarely share tubes; when they do, the second waits on the lock (and the edge retries
#: a deadlock victim).
WRITERS = 1


class Overloaded(Exception):
    """The writer's queue is full: the client should retry after a pause (same key)."""


@dataclass
class _Pending:
    batch: BatchIn
    future: asyncio.Future[IngestReport] = field(repr=False)


class ScanWriter:
    def __init__(
        self,
        factory: Callable[[], Session],
        *,
        max_group: int = MAX_GROUP,
        max_pending: int = MAX_PENDING,
        writers: int = WRITERS,
    ) -> None:
        self.factory = factory
        self.max_group = max_group
        self.max_pending = max_pending
        self.writers = writers
        self.sites = SiteCache()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _ensure_running(self) -> asyncio.Queue[_Pending]:
        if self._queue is None or any(task.done() for task in self._tasks) or not self._tasks:
            for task in self._tasks:
                task.cancel()
            queue: asyncio.Queue[_Pending] = asyncio.Queue()
            self._queue = queue
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run(queue)) for _ in range(self.writers)]
        return self._queue

    async def submit(self, batch: BatchIn) -> IngestReport:
        """Queue a batch and wait until it is committed; its report, or the domain error."""
        queue = self._ensure_running()
        if queue.qsize() >= self.max_pending:
            raise Overloaded()
        future: asyncio.Future[IngestReport] = asyncio.get_running_loop().create_future()
        await queue.put(_Pending(batch, future))
        return await future

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            group = [await queue.get()]
            while len(group) < self.max_group and not queue.empty():
                group.append(queue.get_nowait())
            try:
                outcomes = await anyio.to_thread.run_sync(self._write, [p.batch for p in group])
            except Exception as err:  # a waiting request must get an answer
                log.exception("group of %d batches failed", len(group))
                outcomes = [err] * len(group)
            for pending, outcome in zip(group, outcomes, strict=True):
                if pending.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)

    def _write(self, batches: list[BatchIn]) -> list[IngestReport | BaseException]:
        for _ in range(2):
            try:
                with self.factory() as session, session.begin():
                    return list(
                        ingest_batches(db_session=session, batches=batches, sites=self.sites)
                    )
            except (IntegrityError, DBAPIError) as err:
                log.warning(
                    "group of %d batches failed to commit (%s); retrying", len(batches), err
                )
            except BastionError:
                break
        out: list[IngestReport | BaseException] = []
        for batch in batches:
            try:
                with self.factory() as session, session.begin():
                    out.append(
                        ingest_batches(db_session=session, batches=[batch], sites=self.sites)[0]
                    )
            except BastionError as err:
                out.append(err)
            except Exception as err:
                log.exception("batch %s failed", batch.key)
                out.append(err)
        return out
