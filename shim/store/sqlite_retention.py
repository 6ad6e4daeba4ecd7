"""Retention for the SQLite store: deleting what is older than the window in small batches, giving
the space back, and the lease that lets one process of a server do it at a time.

The rows kept past the window, and how each batch finds the rest without a long lock, are the
Postgres schema's (``migrations/postgres/0005_retention.sql``); here the same in SQLite's SQL.
New databases are made with incremental auto-vacuum (``SQLiteStore``), so freed pages can be
returned to the file system after a prune; an older database is converted by ``shim migrate``.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from typing import Any

import orjson

# The events that reopened a bug: the first received after each time it was resolved.
_REOPENING = """
SELECT (SELECT r.id FROM error_logs AS r
        WHERE r.related_bug_id = s.bug_id AND r.received_at > s.at
        ORDER BY r.received_at, r.rowid LIMIT 1) AS id
FROM status_changes AS s WHERE s.status = 'resolved'
"""
# error_logs rows older than the cutoff but a bug's first and latest events and those reopening
# one, oldest first: the batch through error_logs_created, each one's neighbours through
# error_logs_bug (an index probe each, never a scan of the bug's events).
_PRUNABLE_LOGS = """
SELECT e.rowid FROM error_logs AS e
WHERE e.created_at < :cutoff
  AND e.id NOT IN (SELECT value FROM json_each(:keep))
  AND (e.related_bug_id IS NULL OR (
       EXISTS (SELECT 1 FROM error_logs AS o WHERE o.related_bug_id = e.related_bug_id
               AND (o.created_at < e.created_at
                    OR (o.created_at = e.created_at AND o.rowid < e.rowid)))
   AND EXISTS (SELECT 1 FROM error_logs AS o WHERE o.related_bug_id = e.related_bug_id
               AND (o.created_at > e.created_at
                    OR (o.created_at = e.created_at AND o.rowid > e.rowid)))))
ORDER BY e.created_at LIMIT :limit
"""
# Check-ins older than the cutoff but each monitor's latest.
_PRUNABLE_CHECK_INS = """
SELECT c.rowid FROM check_ins AS c
WHERE c.created_at < :cutoff
  AND EXISTS (SELECT 1 FROM check_ins AS n WHERE n.monitor_slug = c.monitor_slug
              AND n.project_id IS c.project_id
              AND (n.created_at > c.created_at
                   OR (n.created_at = c.created_at AND n.rowid > c.rowid)))
ORDER BY c.created_at LIMIT :limit
"""


class SQLiteRetention:
    db: sqlite3.Connection
    path: str

    def prune(self, cutoff: str, limit: int, dry_run: bool = False) -> tuple[int, int]:
        """See ``Store.prune``: one transaction of at most ``limit`` rows of each table."""
        keep = [row[0] for row in self.db.execute(_REOPENING) if row[0] is not None]
        found = {"cutoff": cutoff, "keep": orjson.dumps(keep).decode(),
                 "limit": -1 if dry_run else limit}
        if dry_run:
            logs = self.db.execute(f"SELECT count(*) FROM ({_PRUNABLE_LOGS})", found).fetchone()
            checks = self.db.execute(f"SELECT count(*) FROM ({_PRUNABLE_CHECK_INS})",
                                     found).fetchone()
            return int(logs[0]), int(checks[0])
        self.db.execute("BEGIN IMMEDIATE")
        try:
            logs = self.db.execute(f"DELETE FROM error_logs WHERE rowid IN ({_PRUNABLE_LOGS})",
                                   found).rowcount
            checks = self.db.execute(
                f"DELETE FROM check_ins WHERE rowid IN ({_PRUNABLE_CHECK_INS})", found).rowcount
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return logs, checks

    def reclaim(self) -> int:
        """Return the free pages to the file system (incremental auto-vacuum); how many. A
        database made without it (``auto_vacuum`` off) keeps them for reuse: 0."""
        (mode,) = self.db.execute("PRAGMA auto_vacuum").fetchone()
        if mode != 2:  # INCREMENTAL
            return 0
        (free,) = self.db.execute("PRAGMA freelist_count").fetchone()
        # (Through executescript, which steps the pragma to its end: execute() frees one page.)
        self.db.executescript("PRAGMA incremental_vacuum;")
        (left,) = self.db.execute("PRAGMA freelist_count").fetchone()
        # The file is cut short when the WAL is copied back: now, if no reader is in the way
        # (else at the next checkpoint).
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return int(free) - int(left)

    def incremental_vacuum(self) -> bool:
        """Whether freed pages can be returned to the file system (see ``convert``)."""
        (mode,) = self.db.execute("PRAGMA auto_vacuum").fetchone()
        return bool(mode == 2)

    def convert_to_incremental_vacuum(self) -> bool:
        """Make an older database give space back after a prune: rewrites the whole file once
        (``VACUUM``, which needs as much free disk again). False when there was nothing to do."""
        if self.incremental_vacuum():
            return False
        self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.db.execute("VACUUM")
        return True

    def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        """See ``Store.take_lease``: kept in a small file beside the database, under a lock, as
        every process using this database is on this machine."""
        path = f"{self.path}.leases"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                leases: Any = orjson.loads(os.pread(fd, 1 << 16, 0) or b"{}")
            except orjson.JSONDecodeError:
                leases = {}
            if not isinstance(leases, dict):
                leases = {}
            now = time.time()
            held = leases.get(name)
            if isinstance(held, list) and held[0] != holder and float(held[1]) > now:
                return False
            leases[name] = [holder, now + seconds]
            text = orjson.dumps(leases)
            os.ftruncate(fd, 0)
            os.pwrite(fd, text, 0)
            return True
        finally:
            os.close(fd)
