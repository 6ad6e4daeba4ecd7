"""The one writer: every request waiting at a moment is logged and committed in one go.

Requests ``submit`` their ``Batch`` and wait. The writer is a thread of its own, the only one that
touches the store: it takes everything released to it (up to ``max_batches``) and hands it to the
journal: append to the backup log and fsync, then one store transaction. Each waiting request is
answered after that; the batch grows with the load, and the per-event cost shrinks.

When a commit may start is the journal's choice (``overlaps_commits``, the store's own unless the
journal runs in a process of its own, ``shim.writer.process``):

- A database server (Postgres, Supabase), or the journal process (how ``shim serve`` runs
  SQLite), commits in another process, and the thread waits without the GIL: submissions are
  released at once, so the event loop goes on reading and ingesting the next requests while the
  previous ones commit.
- SQLite committing in this process (``SHIM_JOURNAL_PROCESS=0``, or an app given its store)
  holds the GIL for much of it: a commit running beside the event loop would slow both (and
  commit smaller batches). Submissions are released when the event loop has run every request
  that was ready (``call_soon``), so the requests of a wave are committed together while the
  loop has nothing else to do.

When the store is down or behind, the journal only logs: requests are still answered (their events
are on disk), and the writer keeps trying to catch the store up from the log, with backoff.
When the log itself cannot be written, nothing was kept, and the requests get ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shim.core.records import Batch, Stored
from shim.store import StoreUnavailable
from shim.writer.journal import Journaling

log = logging.getLogger("shim.writer")
T = TypeVar("T")

RETRY_MIN, RETRY_MAX = 0.5, 30.0
IDLE_CHECK = 5.0  # seconds without requests before looking whether the store fell behind


@dataclass
class _Pending:
    batch: Batch
    done: asyncio.Future[list[Stored]]


@dataclass
class _Job:
    """A call to run on the writer's thread (the only thread that touches the store)."""

    call: Callable[[], Any]
    done: asyncio.Future[Any]


_STOP = None  # queued by ``stop``: commit what came before it, catch up, end the thread
Outcome = tuple["asyncio.Future[Any]", Any, "BaseException | None"]


class Writer:
    def __init__(self, journal: Journaling, max_batches: int = 512,
                 overlap: bool | None = None,
                 on_commit: Callable[[int, float], None] | None = None) -> None:
        self.journal = journal
        # Told (requests, seconds) after each commit, on the writer's thread (the metrics).
        self.on_commit = on_commit
        self.max_batches = max_batches
        self.overlap = journal.overlaps_commits if overlap is None else overlap
        self._submitted: list[_Pending] = []  # on the loop, not yet released to the thread
        self._release_due = False
        self._queue: deque[_Pending | _Job | None] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None
        self._stopping = False
        self._ended = False  # the thread has finished; set under ``_wake``
        self.transactions = 0
        self.lagging = False  # the store is behind the log
        self.store_error: str | None = None
        self.log_error: str | None = None
        self.bugs_changed = 0  # bumps whenever a committed batch touched a bug
        self._retry_at = 0.0
        self._retry_delay = RETRY_MIN

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._finished = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name="shim-writer", daemon=True)
        self._thread.start()
        self.lagging, _ = await self.run_in_thread(self.journal.lag)

    async def stop(self) -> None:
        """Commit everything already submitted, try a last catch-up, then stop."""
        if self._thread is None or self._finished is None:
            return
        self._stopping = True
        self._release()
        self._put(_STOP)
        await self._finished
        self._thread.join()
        self._thread = None

    async def submit(self, batch: Batch) -> list[Stored]:
        """Wait until ``batch`` is kept; raise ``StoreUnavailable`` if it cannot be."""
        if self._stopping or self._thread is None or not self._thread.is_alive():
            raise StoreUnavailable("the writer is not running")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Stored]] = loop.create_future()
        self._submitted.append(_Pending(batch, done))
        if self.overlap:
            self._release()
        elif not self._release_due:  # after the requests the loop has ready now
            self._release_due = True
            loop.call_soon(self._release)
        return await done

    @property
    def waiting(self) -> int:
        """Requests submitted and not yet taken into a commit (read without the lock: a
        gauge's reading, which may be a moment old)."""
        return len(self._submitted) + len(self._queue)

    async def run_in_thread(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on the writer's thread, in turn with the commits."""
        if self._thread is None or not self._thread.is_alive():
            raise StoreUnavailable("the writer is not running")
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._release()  # what was submitted before it is committed before it
        self._put(_Job(lambda: fn(*args), done))
        return await done

    def _release(self) -> None:
        """Hand what was submitted to the thread."""
        self._release_due = False
        if not self._submitted:
            return
        submitted, self._submitted = self._submitted, []
        self._put(*submitted)

    def _put(self, *items: _Pending | _Job | None) -> None:
        with self._wake:
            if not self._ended:
                self._queue.extend(items)
                self._wake.notify()
                return
        # The thread has ended (it failed): nothing will take these.
        _settle([(item.done, None, StoreUnavailable("the writer is not running"))
                 for item in items if item is not None])

    # Everything below runs on the writer's thread.

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException:  # pragma: no cover - a bug of ours; fail the waiting requests
            log.exception("the writer stopped on an unexpected error")
            raise
        finally:
            with self._wake:
                self._ended = True
                left, self._queue = list(self._queue), deque()
            failure = StoreUnavailable("the writer is not running")
            self._answer([(item.done, None, failure) for item in left if item is not None])
            if self._finished is not None:
                self._answer([(self._finished, None, None)])

    def _serve(self) -> None:
        while True:
            if self.lagging:
                self._catch_up()
            taken = self._take()
            if not taken:
                if not self.lagging:
                    # A CLI change that could only be logged leaves the store behind while we
                    # are idle; notice it without waiting for the next event.
                    try:
                        self.lagging, _ = self.journal.lag()
                    except OSError as exc:
                        log.warning("cannot read the backup log's position: %s", exc)
                continue
            pending: list[_Pending] = []
            for item in taken:
                if isinstance(item, _Pending):
                    pending.append(item)
                    continue
                if pending:  # what was submitted before a job or the stop is committed first
                    self._commit(pending)
                    pending = []
                if item is _STOP:
                    if self.lagging:
                        self._catch_up(force=True)
                    return
                assert isinstance(item, _Job)
                self._run_job(item)
            if pending:
                self._commit(pending)

    def _take(self) -> list[_Pending | _Job | None]:
        """What is queued, after waiting for something (or for the next retry / idle check)."""
        with self._wake:
            if not self._queue:
                timeout = (max(0.05, self._retry_at - time.monotonic()) if self.lagging
                           else IDLE_CHECK)
                self._wake.wait(timeout)
            count = min(len(self._queue), self.max_batches)
            return [self._queue.popleft() for _ in range(count)]

    def _run_job(self, job: _Job) -> None:
        try:
            result = job.call()
        except Exception as exc:
            self._answer([(job.done, None, exc)])
        else:
            self._answer([(job.done, result, None)])

    def _commit(self, pending: list[_Pending]) -> None:
        batches = [p.batch for p in pending]
        began = time.perf_counter()
        try:
            results = self.journal.commit(batches)
            self.log_error = None
        except OSError as exc:
            if self.log_error is None:
                log.error("cannot write the backup log (%s); answering 503 until it can", exc)
            self.log_error = str(exc)
            failure = StoreUnavailable(f"the backup log cannot be written: {exc}")
            self._answer([(p.done, None, failure) for p in pending])
            return
        except Exception as exc:  # a bug of ours: these requests fail, the writer goes on
            log.exception("committing %d requests failed", len(pending))
            failure = StoreUnavailable(f"the events could not be kept: {type(exc).__name__}")
            self._answer([(p.done, None, failure) for p in pending])
            return
        except BaseException:  # the thread ends: nobody must be left waiting
            self._answer([(p.done, None, StoreUnavailable("the writer stopped")) for p in pending])
            raise
        self.transactions += 1
        if self.on_commit is not None:
            self.on_commit(len(pending), time.perf_counter() - began)
        try:
            self._answer_committed(pending, batches, results)
        except Exception:  # a bug of ours: the events are kept, but these requests must not hang
            log.exception("answering %d committed requests failed", len(pending))
            failure = StoreUnavailable("the events were kept but could not be confirmed; retry "
                                  "(a retried event is recognised by its id)")
            self._answer([(p.done, None, failure) for p in pending])

    def _answer_committed(self, pending: list[_Pending], batches: list[Batch],
                          results: list[list[Stored]] | None) -> None:
        if results is None:  # kept in the log only; the store catches up later
            if not self.lagging:
                self.lagging = True
                self._retry_at = time.monotonic() + self._retry_delay
            results = [[Stored(r.event_id, duplicate=False, bug_id=None, bug_number=None)
                        for r in b.error_logs] for b in batches]
        elif any(r.bug_id for stored in results for r in stored) or any(
                b.changes_bugs for b in batches):
            self.bugs_changed += 1
        self._answer([(p.done, stored, None)
                      for p, stored in zip(pending, results, strict=True)])

    def _catch_up(self, force: bool = False) -> None:
        if not force and time.monotonic() < self._retry_at:
            return
        try:
            while True:
                done = self.journal.catch_up()
                self.bugs_changed += 1
                if done or (self._queue and not force):
                    break
        except StoreUnavailable as exc:
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

    def _answer(self, outcomes: list[Outcome]) -> None:
        """Settle futures on the event loop: one wake-up of the loop for a whole commit."""
        if not outcomes or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(_settle, outcomes)


def _settle(outcomes: list[Outcome]) -> None:
    for done, result, error in outcomes:
        if done.done():  # the client went away; its batch is kept all the same
            continue
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)
