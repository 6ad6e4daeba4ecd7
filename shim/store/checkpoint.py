"""WAL checkpoints for the SQLite store, on a thread and a connection of their own.

Copying the WAL back into the database costs more the more distinct pages a big table spreads its
writes over. Done here (sqlite releases the GIL while it works, and a PASSIVE checkpoint never
waits for or blocks the writer or readers), it stays off the commit path.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("shim.store")


class Checkpointer:
    """A thread with its own connection that checkpoints the WAL every ``interval`` seconds."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shim-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, timeout=1.0)
        try:
            while not self._stop.wait(self._interval):
                try:
                    # PASSIVE never waits for, nor blocks, the writer or readers.
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint failed (will retry): %s", exc)
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
