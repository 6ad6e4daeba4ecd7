"""The one writer: every request waiting at a moment is logged and committed in one go.

Requests ``submit`` their ``Batch`` and wait. The writer task takes whatever is queued (up to
``max_batches``) and hands it to the journal on its own thread: append to the backup log and fsync,
then one store transaction. Each waiting request is answered after that. While one batch commits,
the next requests queue up, so the batch grows with the load and the per-event cost shrinks.

When the store is down or behind, the journal only logs: requests are still answered (their events
are on disk), and the writer keeps trying to catch the store up from the log, with backoff.
When the log itself cannot be written, nothing was kept, and the requests get ``StoreFailed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from shim.journal import Journal, StoreDown
from shim.records import Batch, Stored
from shim.store import Store

log = logging.getLogger("shim.writer")
T = TypeVar("T")

RETRY_MIN, RETRY_MAX = 0.5, 30.0
IDLE_CHECK = 5.0  # seconds without requests before looking whether the store fell behind


class StoreFailed(Exception):
    """The event could not be kept (the backup log is not writable): it must not be answered 2xx."""


@dataclass
class _Pending:
    batch: Batch
    done: asyncio.Future[list[Stored]]


class Writer:
    def __init__(self, journal: Journal, max_batches: int = 512) -> None:
        self.journal = journal
        self.max_batches = max_batches
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shim-writer")
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0
        self.lagging = False  # the store is behind the log
        self.store_error: str | None = None
        self.log_error: str | None = None
        self.bugs_changed = 0  # bumps whenever a committed batch touched a bug
        self._retry_at = 0.0
        self._retry_delay = RETRY_MIN

    @property
    def store(self) -> Store:
        return self.journal.store

    async def start(self) -> None:
        lagging, _ = await self.run_in_thread(self.journal.lag)
        self.lagging = lagging
        self._task = asyncio.create_task(self._run(), name="shim-writer")

    async def stop(self) -> None:
        """Commit everything already submitted, try a last catch-up, then stop."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self._thread.shutdown(wait=True)

    async def submit(self, batch: Batch) -> list[Stored]:
        """Wait until ``batch`` is kept; raise ``StoreFailed`` if it cannot be."""
        if self._task is None or self._task.done():
            raise StoreFailed("the writer is not running")
        done: asyncio.Future[list[Stored]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(batch, done))
        return await done

    async def run_in_thread(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on the writer's thread (the only thread that touches the store)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            if self.lagging:
                await self._catch_up()
            try:
                timeout = (max(0.05, self._retry_at - time.monotonic()) if self.lagging
                           else IDLE_CHECK)
                first = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                if not self.lagging:
                    # A CLI change that could only be logged leaves the store behind while we
                    # are idle; notice it without waiting for the next event.
                    self.lagging, _ = await self.run_in_thread(self.journal.lag)
                continue
            if first is None:
                break
            pending = [first]
            while len(pending) < self.max_batches and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    stopping = True
                    break
                pending.append(more)
            await self._commit(pending)
        if self.lagging:
            await self._catch_up(force=True)

    async def _commit(self, pending: list[_Pending]) -> None:
        batches = [p.batch for p in pending]
        try:
            results = await self.run_in_thread(self.journal.commit, batches)
            self.log_error = None
        except OSError as exc:
            if self.log_error is None:
                log.error("cannot write the backup log (%s); answering 503 until it can", exc)
            self.log_error = str(exc)
            for one in pending:
                _settle(one, error=StoreFailed(f"the backup log cannot be written: {exc}"))
            return
        self.transactions += 1
        if results is None:  # kept in the log only; the store catches up later
            if not self.lagging:
                self.lagging = True
                self._retry_at = time.monotonic() + self._retry_delay
            results = [[Stored(r.event_id, duplicate=False, bug_id=None, bug_number=None)
                        for r in b.error_logs] for b in batches]
        elif any(r.bug_id for stored in results for r in stored) or any(
                b.status_changes for b in batches):
            self.bugs_changed += 1
        for one, stored in zip(pending, results, strict=True):
            _settle(one, result=stored)

    async def _catch_up(self, force: bool = False) -> None:
        if not force and time.monotonic() < self._retry_at:
            return
        try:
            while True:
                done = await self.run_in_thread(self.journal.catch_up)
                self.bugs_changed += 1
                if done or (not self._queue.empty() and not force):
                    break
        except StoreDown as exc:
            self.store_error = str(exc)
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(RETRY_MAX, self._retry_delay * 2)
            return
        except Exception:
            log.exception("catching up from the backup log failed; retrying")
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(RETRY_MAX, self._retry_delay * 2)
            return
        if done:
            if self.store_error:
                log.warning("store is back; caught up from the backup log")
            self.lagging, self.store_error, self._retry_delay = False, None, RETRY_MIN


def _settle(pending: _Pending, result: list[Stored] | None = None,
            error: Exception | None = None) -> None:
    if pending.done.done():  # the client went away; its batch is kept all the same
        return
    if error is not None:
        pending.done.set_exception(error)
    else:
        assert result is not None
        pending.done.set_result(result)
