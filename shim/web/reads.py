"""The web page's own read-side store handle.

The writer owns its store on its thread (or, with SQLite, in the journal process), so the page
opens a second handle on the same database, once per worker process, on first use, and calls it
from Starlette's thread pool so the event loop never waits on a query. A SQLite connection is used
by one thread at a time (a lock); Postgres's pool and Supabase's HTTP client take concurrent calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from starlette.concurrency import run_in_threadpool

from shim.settings import Settings
from shim.store import Store, open_store

log = logging.getLogger("shim.web")
T = TypeVar("T")


class StoreUnreadable(Exception):
    """The store could not be opened or read; the page answers 503."""


class Reads:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.related_logs = settings.related_logs
        self.processes = settings.workers  # SQLite's page cache is split between them
        self._store: Store | None = None
        self._opening = threading.Lock()
        self._serial = threading.Lock() if self.url.startswith("sqlite://") else None
        self._kept: dict[str, tuple[float, Any]] = {}

    async def __call__(self, read: Callable[[Store], T]) -> T:
        """``read(store)`` on a worker thread."""
        return await run_in_threadpool(self._run, read)

    async def kept(self, name: str, seconds: float, read: Callable[[Store], T]) -> T:
        """``read(store)``, read again at most every ``seconds`` (for slowly changing things the
        pages show beside the data, like the filters' choices)."""
        found = self._kept.get(name)
        if found is not None and time.monotonic() - found[0] < seconds:
            return cast(T, found[1])
        value = await self(read)
        self._kept[name] = (time.monotonic(), value)
        return value

    def _run(self, read: Callable[[Store], T]) -> T:
        try:
            store = self._open()
            if self._serial is None:
                return read(store)
            with self._serial:
                return read(store)
        except StoreUnreadable:
            raise
        except Exception as exc:  # down, locked, unreachable: a page that says so, not a 500
            log.warning("the web page could not read the store: %s: %s", type(exc).__name__, exc)
            raise StoreUnreadable(f"{type(exc).__name__}: {exc}") from exc

    def _open(self) -> Store:
        with self._opening:
            if self._store is None:
                self._store = open_store(self.url, related_logs=self.related_logs,
                                         processes=self.processes)
            return self._store

    def close(self) -> None:
        with self._opening:
            if self._store is not None:
                self._store.close()
                self._store = None
