"""The one writer: every request waiting at a moment is committed in a single store transaction.

Requests ``submit`` their ``Batch`` and wait. The writer task takes whatever is queued (up to
``max_batches``), hands it to the store on its own thread, and answers each waiting request once
the transaction has committed. While one transaction commits, the next requests queue up, so the
batch grows with the load and the per-event cost of the commit shrinks.

If a combined transaction fails, each request's batch is retried alone, so one poisonous event
cannot fail the requests it happened to share a transaction with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from shim.records import Batch, Stored
from shim.store import Store

log = logging.getLogger("shim.writer")
T = TypeVar("T")


class StoreFailed(Exception):
    """The store could not commit this request's batch."""


@dataclass
class _Pending:
    batch: Batch
    done: asyncio.Future[list[Stored]]


class Writer:
    def __init__(self, store: Store, max_batches: int = 512) -> None:
        self.store = store
        self.max_batches = max_batches
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shim-writer")
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shim-writer")

    async def stop(self) -> None:
        """Commit everything already submitted, then stop."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self._thread.shutdown(wait=True)

    async def submit(self, batch: Batch) -> list[Stored]:
        """Wait until ``batch`` is committed; raise ``StoreFailed`` if it cannot be."""
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
            first = await self._queue.get()
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

    async def _commit(self, pending: list[_Pending]) -> None:
        try:
            results = await self.run_in_thread(self.store.write, [p.batch for p in pending])
            self.transactions += 1
        except Exception:
            if len(pending) > 1:
                for one in pending:
                    await self._commit([one])
                return
            log.exception("store write failed")
            _settle(pending[0], error=StoreFailed("the store could not save the event"))
            return
        for one, stored in zip(pending, results, strict=True):
            _settle(one, result=stored)


def _settle(pending: _Pending, result: list[Stored] | None = None,
            error: Exception | None = None) -> None:
    if pending.done.done():  # the client went away; its batch is committed all the same
        return
    if error is not None:
        pending.done.set_exception(error)
    else:
        assert result is not None
        pending.done.set_result(result)
