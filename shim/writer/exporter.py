"""Rewrites the bugs snapshot in the background, in a separate process.

Every ``interval`` seconds it looks whether the writer reported a bug change since the last export,
and if so runs ``shim export --background`` in a child process at low priority. Serialising every
bug is O(bugs); doing it in another process keeps that work off the server's interpreter (and its
GIL), so the per-event cost of ingestion does not grow with the number of bugs. A slow export
stretches the wait after it (ten times its duration), and one more export runs at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable

from shim.settings import Settings

log = logging.getLogger("shim.exporter")


def export_command() -> list[str]:
    return [sys.executable, "-m", "shim", "export", "--background"]


def export_env(settings: Settings) -> dict[str, str]:
    """The child's environment: ours without SHIM_*, plus the settings the export needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
    env.update(SHIM_DATA_DIR=str(settings.data_dir), SHIM_DATABASE_URL=settings.database_url,
               SHIM_RELATED_LOGS=str(settings.related_logs))
    return env


def _lower_priority() -> None:
    with contextlib.suppress(OSError):
        os.nice(10)


class Exporter:
    def __init__(self, settings: Settings, changes: Callable[[], int]) -> None:
        self.settings = settings
        self.interval = settings.export_interval
        self._changes = changes
        # The server starts with nothing changed: no export until a bug changes (or shutdown
        # after one), so a restart does not rewrite (or create) the snapshot for nothing.
        self._exported_at_change = 0
        self._task: asyncio.Task[None] | None = None
        self.exports = 0
        self.last_duration = 0.0

    async def _export(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *export_command(), env=export_env(self.settings),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            preexec_fn=_lower_priority)
        _, stderr = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(stderr.decode(errors="replace").strip()[-500:])
        self.exports += 1

    async def export_if_changed(self) -> bool:
        change = self._changes()
        if change == self._exported_at_change:
            return False
        started = time.monotonic()
        try:
            await self._export()
        except Exception as exc:
            log.error("writing the bugs snapshot failed (will retry): %s", exc)
            return False
        self._exported_at_change = change
        self.last_duration = time.monotonic() - started
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(self.interval, 10 * self.last_duration))
            await self.export_if_changed()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shim-exporter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.export_if_changed()
