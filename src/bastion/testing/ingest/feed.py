"""Turning batches of raw scans into staging chunks, inline or in a thread of their own.

The Python side of a file import (reading the file, checking each row) costs about as much as
the database's side. Run in a thread it overlaps with the database judging the previous chunk
(the driver releases the interpreter while it waits), so a file costs roughly the larger of
the two instead of their sum. The thread never touches the session: the few lookups a row needs
(a round, a site, first met) are handed to the consuming thread and answered there, and the
reports are only ever changed by the consumer. The producer is never more than one chunk
ahead, so memory stays flat.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bastion.core.auth import Principal
from bastion.core.errors import FieldProblem
from bastion.testing.ingest.rows import RawScan, ScanContext, check_row

T = TypeVar("T")
#: Runs a callable where the session lives and returns its result.
Caller = Callable[[Callable[[], Any]], Any]


@dataclass
class Chunk:
    """Rows ready for staging, the rows refused on the way, and counts per batch."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    problems: list[tuple[int, FieldProblem]] = field(default_factory=list)
    staged: dict[int, int] = field(default_factory=dict)
    rounds: dict[int, int] = field(default_factory=dict)
    #: The rows as a reading connection resolved them (``resolve``), if one did.
    resolved: bytes | None = None


@dataclass(frozen=True)
class Work:
    """One batch to feed: its id, sender and scans."""

    batch_id: int
    principal: Principal
    scans: Any  # Iterable[RawScan]


def chunks(
    work: Sequence[Work],
    make_context: Callable[[Principal, Caller], ScanContext],
    size: int,
    call: Caller,
    *,
    first: int | None = None,
) -> Iterator[Chunk]:
    """Check every scan of ``work`` in order; yield chunks of at most ``size`` staged rows (or
    refused rows), the first of at most ``first`` if given, the last one possibly empty."""
    contexts: dict[str, ScanContext] = {}
    current = Chunk()
    limit = first or size
    for item in work:
        ctx = contexts.get(item.principal.username)
        if ctx is None:
            ctx = contexts[item.principal.username] = make_context(item.principal, call)
        batch_id = item.batch_id
        scan: RawScan
        for scan in item.scans:
            checked = check_row(ctx, scan)
            if isinstance(checked, FieldProblem):
                current.problems.append((batch_id, checked))
                if len(current.problems) >= limit:
                    yield current
                    current, limit = Chunk(), size
                continue
            current.rows.append((batch_id, *checked))
            current.staged[batch_id] = current.staged.get(batch_id, 0) + 1
            if batch_id not in current.rounds:
                current.rounds[batch_id] = checked[1]
            if len(current.rows) >= limit:
                yield current
                current, limit = Chunk(), size
    yield current


def direct(fn: Callable[[], T]) -> T:
    return fn()


_switching = threading.Lock()
_feeds = 0
_interval = 0.005


def _quick_switches(change: int) -> None:
    """Count the feeds running in this process: the first shortens the interpreter's switch
    interval, the last one out restores it (feeds may overlap in a server)."""
    global _feeds, _interval
    with _switching:
        if change > 0 and _feeds == 0:
            _interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval, 0.0005))
        _feeds += change
        if _feeds == 0:
            sys.setswitchinterval(_interval)


class _Stopped(Exception):
    """The consumer has gone: the producer stops where it is."""


def threaded(produce: Callable[[Caller], Iterator[Chunk]]) -> Iterator[Chunk]:
    """Run ``produce`` in a thread and yield its chunks here; calls it hands over run here too.
    An exception in the producer is raised here; leaving the loop early stops the producer."""
    channel: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(message: tuple[str, Any]) -> None:
        while not stop.is_set():
            try:
                channel.put(message, timeout=0.1)
            except queue.Full:
                continue
            return
        raise _Stopped

    def taken() -> None:
        # Wait until the consumer has taken everything handed over (Queue.join, stoppable):
        # the producer builds a chunk while the consumer lands the one before, and no
        # further. Two ahead, the last two chunks of a file were landed with the producer's
        # core idle (about half a second of a 900,000-row file, when the database is slower).
        with channel.all_tasks_done:
            while channel.unfinished_tasks and not stop.is_set():
                channel.all_tasks_done.wait(0.1)

    def call(fn: Callable[[], Any]) -> Any:
        future: Future[Any] = Future()
        put(("call", (fn, future)))
        while True:
            try:
                return future.result(timeout=0.1)
            except FutureTimeout:
                if stop.is_set():
                    raise _Stopped from None

    def worker() -> None:
        try:
            for item in produce(call):
                put(("chunk", item))
                taken()
            put(("done", None))
        except _Stopped:
            pass
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            with contextlib.suppress(_Stopped):
                put(("error", err))

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(worker,), name="scan-feed", daemon=True
    )
    # The checking thread computes without pause; this one mostly waits on the database and
    # then needs the interpreter for a moment to send the next statement. At the default 5 ms
    # switch interval it waited that long for each, and the database with it; at 0.5 ms the
    # file lands about 5% sooner (the whole process switches more often while it runs).
    _quick_switches(+1)
    thread.start()
    try:
        while True:
            kind, payload = channel.get()
            channel.task_done()
            if kind == "call":
                fn, future = payload
                try:
                    future.set_result(fn())
                except BaseException as err:  # noqa: BLE001 - raised in the producer
                    future.set_exception(err)
            elif kind == "chunk":
                yield payload
            elif kind == "error":
                raise payload
            else:
                return
    finally:
        stop.set()
        thread.join()
        _quick_switches(-1)
