"""Retention: a long-lived server's disk stays bounded (``SHIM_RETENTION_DAYS``,
``SHIM_BACKUP_RETENTION_DAYS``).

``prune`` deletes what is older than the window in small batches (``Store.prune``: a short
transaction each, with a pause between them, so ingestion never waits long behind it), gives the
space back (``Store.reclaim``), and removes the backup log's day files older than their own window
once the store has applied them. The server runs it hourly, one process of all those sharing the
store at a time (``Store.take_lease``); ``shim prune`` runs it now.

Bugs are never deleted, and their counts, first and last seen stay exact; each keeps its first and
latest events and the events that reopened it. A removed day file can no longer be restored from:
``shim restore`` rebuilds what the kept days hold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shim.store import Store
from shim.writer.log import BackupLog

log = logging.getLogger("shim.retention")

BATCH = 500  # rows of each table per transaction
PAUSE = 0.05  # seconds between batches: the writer's commits go first
LEASE = "retention"
EVERY = 3600.0  # seconds between the server's runs
FIRST_RUN = 5.0  # seconds after start: once the writer has caught up with the backup log


@dataclass
class Pruned:
    """What one run deleted (or, dry, would delete)."""

    cutoff: str | None
    dry_run: bool = False
    error_logs: int = 0
    check_ins: int = 0
    batches: int = 0
    pages_reclaimed: int = 0
    backup_cutoff: str | None = None
    backup_files: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        parts = []
        if self.cutoff is not None:
            parts.append(f"{verb} {self.error_logs} error_logs rows and {self.check_ins} "
                         f"check-ins created before {self.cutoff}")
        if self.pages_reclaimed:
            parts.append(f"returned {self.pages_reclaimed} free pages to the file system")
        if self.backup_cutoff is not None:
            parts.append(f"{'would remove' if self.dry_run else 'removed'} "
                         f"{len(self.backup_files)} backup day files from before "
                         f"{self.backup_cutoff}" + (f": {', '.join(self.backup_files)}"
                                                    if self.backup_files else ""))
        return "; ".join(parts) or "nothing to prune"


def run_once(open_store: Callable[[], Store], holder: str, now: datetime, days: float | None,
             log_dir: BackupLog, backup_days: float | None) -> Pruned | None:
    """The server's hourly run: a store of its own (its batches take turns with the writer's
    commits), and only when ``holder`` takes the lease (else another process runs it: None)."""
    store = open_store()
    try:
        if not store.take_lease(LEASE, holder, EVERY - 60):
            return None
        return prune(store, now, days, log_dir, backup_days)
    finally:
        store.close()


def prune(store: Store, now: datetime, days: float | None, log_dir: BackupLog | None = None,
          backup_days: float | None = None, dry_run: bool = False, batch: int = BATCH,
          pause: float = PAUSE, sleep: Callable[[float], None] = time.sleep) -> Pruned:
    """Delete what is older than ``days`` (none: keep the rows) and the applied day files older
    than ``backup_days`` (none: keep them); see the module doc."""
    cutoff = (now - timedelta(days=days)).isoformat(timespec="microseconds") if days else None
    done = Pruned(cutoff=cutoff, dry_run=dry_run)
    if cutoff is not None:
        if dry_run:
            done.error_logs, done.check_ins = store.prune(cutoff, batch, dry_run=True)
        else:
            while True:
                logs, checks = store.prune(cutoff, batch)
                done.batches += 1
                done.error_logs += logs
                done.check_ins += checks
                if logs < batch and checks < batch:
                    break
                sleep(pause)
            if done.error_logs or done.check_ins:
                done.pages_reclaimed = store.reclaim()
    if log_dir is not None and backup_days:
        day = (now - timedelta(days=backup_days)).date().isoformat()
        done.backup_cutoff = day
        with log_dir.locked():
            done.backup_files = log_dir.applied_files_before(day)
            if not dry_run:
                log_dir.remove(done.backup_files)
    return done
