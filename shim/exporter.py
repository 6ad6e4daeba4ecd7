"""Rewrites the bugs snapshot in the background, on its own thread and its own store connection.

It looks every ``interval`` seconds and writes only when the writer reports a bug change since the
last export; once more at shutdown. A slow export (many bugs) stretches the wait after it, so the
exporter never takes more than about a tenth of the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shim.snapshot import write_snapshot
from shim.store import Store

log = logging.getLogger("shim.exporter")


class Exporter:
    def __init__(self, open_reader: Callable[[], Store], directory: Path, interval: float,
                 changes: Callable[[], int]) -> None:
        self._open_reader = open_reader
        self._reader: Store | None = None
        self.directory = directory
        self.interval = interval
        self._changes = changes
        self._exported_at_change = -1
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shim-exporter")
        self._task: asyncio.Task[None] | None = None
        self.exports = 0

    def _export(self) -> None:
        if self._reader is None:
            self._reader = self._open_reader()
        write_snapshot(self._reader.all_bugs(), self.directory)
        self.exports += 1

    async def export_if_changed(self) -> bool:
        change = self._changes()
        if change == self._exported_at_change:
            return False
        started = time.monotonic()
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._export)
        except Exception:
            log.exception("writing the bugs snapshot failed; will retry")
            return False
        self._exported_at_change = change
        self.last_duration = time.monotonic() - started
        return True

    async def _run(self) -> None:
        while True:
            await self.export_if_changed()
            await asyncio.sleep(max(self.interval, 10 * getattr(self, "last_duration", 0.0)))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shim-exporter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.export_if_changed()
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._reader.close)
        self._thread.shutdown(wait=True)
