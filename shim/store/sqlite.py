"""The embedded default store: one SQLite file in WAL mode, written by one thread.

Each ``write`` is one ``BEGIN IMMEDIATE`` transaction for every request the writer gathered, committed
with ``synchronous=FULL`` so a commit is on disk before anyone is answered. The immediate lock also
serialises other processes writing the same file, so the read-then-write of a bug is safe there too.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from shim.core.records import Batch, ErrorLog, StatusChange, Stored
from shim.store import StoreUnavailable
from shim.store.checkpoint import Checkpointer
from shim.store.sqlite_browse import SQLiteBrowse
from shim.store.sqlite_bugs import SQLiteBugs
from shim.store.sqlite_merge import apply_merge
from shim.store.sqlite_retention import SQLiteRetention
from shim.writer.held import Held

_STEP_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _schema_steps() -> tuple[str, ...]:
    """The packaged ``migrations/sqlite/NNNN_name.sql`` files, in order: step N upgrades the schema
    from version N - 1 to N (a shipped file is never edited; a change is a new file)."""
    found: dict[int, str] = {}
    for entry in resources.files("shim.store").joinpath("migrations", "sqlite").iterdir():
        match = _STEP_NAME.match(entry.name)
        if match:
            found[int(match.group(1))] = entry.read_text("utf-8")
    if sorted(found) != list(range(1, len(found) + 1)):
        raise RuntimeError(f"the SQLite schema steps are not numbered 1 to N: {sorted(found)}")
    return tuple(found[version] for version in sorted(found))


MIGRATIONS = _schema_steps()
SCHEMA_VERSION = len(MIGRATIONS)

INSERT_ERROR_LOG = """
INSERT INTO error_logs (id, event_id, project_id, log_level, component, message, context,
    error_type, error_message, stack_trace, request_id, workspace_id, fingerprint, related_bug_id,
    item_type, created_at, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
"""Inserts one ``error_logs`` row, its values in the order of the columns named."""


# A row whose event id is there after all is skipped, and the write done again (``write``).
_INSERT_LOG_CHECKED = INSERT_ERROR_LOG.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)


class _Raced(Exception):
    """A row the caller found not stored was stored meanwhile (``write(checked=True)``)."""


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


class SQLiteStore(SQLiteBrowse, SQLiteBugs, SQLiteRetention):  # reads: sqlite_reads, sqlite_browse
    overlaps_commits = False  # it commits in this process, mostly holding the GIL (shim/writer/group.py)

    def __init__(self, path: str, related_logs: int = 20, busy_timeout: float = 5.0,
                 background_checkpoints: bool = False, cache_mib: int = 64,
                 migrate: bool = True) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.related_logs = related_logs
        # Another process holding the write lock longer than this counts as the store being
        # down: the writer then keeps events in the backup log and catches up later.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                  timeout=busy_timeout)
        self.busy_timeout_ms = int(busy_timeout * 1000)
        self.db.row_factory = sqlite3.Row
        # Freed pages can go back to the file system after a prune (shim/store/sqlite_retention.py).
        # Set on a new, empty file only (on an existing one it would wait for the write lock, and
        # change nothing before a VACUUM): an older database is converted by `shim migrate`.
        if self.db.execute("PRAGMA page_count").fetchone()[0] == 0:
            self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._wal(busy_timeout)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # A 64 MiB page cache (split between the processes of `serve --workers`, which share the
        # file and the OS's cache of it) keeps the hot index pages (event ids, fingerprints) in
        # memory as tables grow, so the per-event cost stays flat.
        self.db.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")
        if migrate:  # `shim migrate` opens it without, to call migrate() itself
            self.migrate()
        self._checkpointer: Checkpointer | None = None
        if background_checkpoints and path != ":memory:":
            # Copying the WAL back into the database costs more the more distinct pages a big
            # table spreads its writes over; done on another thread (sqlite releases the GIL),
            # it stays off the commit path. Auto-checkpoints remain as a backstop (~128 MiB).
            self.db.execute("PRAGMA wal_autocheckpoint=32768")
            self._checkpointer = Checkpointer(path)

    def _wal(self, patience: float) -> None:
        """Switch to WAL. The switch takes the file's exclusive lock without waiting (no busy
        handler), so two processes opening a new database at once (``serve --workers``) retry."""
        deadline = time.monotonic() + patience
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def migrate(self) -> list[str]:
        """Apply the schema steps this database has not seen; the names of those applied.

        The write lock is taken only when a step is due, so opening an up-to-date database never
        waits for (or fails on) another process's write, e.g. while the store is "down"."""
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version >= SCHEMA_VERSION:
            return []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = self.db.execute("PRAGMA user_version").fetchone()
            for step in MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return [f"sqlite schema version {v}" for v in range(int(version) + 1, SCHEMA_VERSION + 1)]

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.db.close()

    def ping(self) -> bool:
        """Whether the database takes writes right now (takes and releases the write lock)."""
        try:
            self.db.execute("PRAGMA busy_timeout=200")
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False
        finally:
            self.db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")

    def summary(self) -> dict[str, Any]:
        return {"backend": "sqlite", "path": self.path}

    def write(self, batches: Sequence[Batch], checked: bool = False) -> list[list[Stored]]:
        """``checked``: the caller found none of these event ids stored (``held``, under the
        backup log's lock, which every writer of the server's data dir takes), so the rows are
        inserted without looking them up again; one that is there after all (written by
        something outside that lock meanwhile) undoes the transaction, which is done again the
        usual way."""
        try:
            try:
                return self._transaction(batches, checked)
            except _Raced:
                return self._transaction(batches, False)
        except sqlite3.OperationalError as exc:  # locked, disk full, I/O error: not the data
            raise StoreUnavailable(f"sqlite {self.path}: {exc}") from exc

    def _transaction(self, batches: Sequence[Batch], checked: bool) -> list[list[Stored]]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            results = self._write(batches, checked)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    def _write(self, batches: Sequence[Batch], checked: bool = False) -> list[list[Stored]]:
        """Events in runs; an operator's change (status, merge) applies between the runs around
        it, so a replay of the log keeps "resolved, then it happened again" in that order."""
        results: list[list[Stored]] = []
        run: list[Batch] = []
        for batch in batches:
            if batch.changes_bugs:
                results.extend(self._write_events(run, checked))
                results.extend(self._write_events([batch], checked))
                for change in batch.status_changes:
                    self._apply_status(change)
                for merge in batch.merges:
                    apply_merge(self.db, merge, self.related_logs)
                run = []
            else:
                run.append(batch)
        results.extend(self._write_events(run, checked))
        return results

    def _write_events(self, batches: Sequence[Batch], checked: bool = False
                      ) -> list[list[Stored]]:
        if not batches:
            return []
        rows = [(row, batch.received_at) for batch in batches for row in batch.error_logs]
        existing = set() if checked else self._existing_event_ids([row.event_id for row, _ in rows])
        fresh: list[tuple[ErrorLog, str]] = []
        for row, received_at in rows:
            if row.event_id not in existing:
                existing.add(row.event_id)
                fresh.append((row, received_at))
        fresh_ids = {id(row) for row, _ in fresh}

        bugs = self._upsert_bugs([(row, received_at) for row, received_at in fresh
                                  if row.bug is not None])

        inserted = self.db.executemany(_INSERT_LOG_CHECKED if checked else INSERT_ERROR_LOG, [
            (row.id, row.event_id, row.project_id, row.log_level, row.component, row.message,
             row.context.decode(), row.error_type, row.error_message, row.stack_trace,
             row.request_id, row.workspace_id, row.fingerprint,
             bugs[row.fingerprint][0] if row.bug is not None else None,
             row.item_type, row.created_at, received_at)
            for row, received_at in fresh
        ]).rowcount
        if checked and fresh and inserted != len(fresh):
            raise _Raced  # an event id was stored after all: not fresh, nor its bug's count
        for batch in batches:
            if batch.check_ins:
                self._write_check_ins(batch)
        self._count_items(batches)

        results: list[list[Stored]] = []
        for batch in batches:
            stored = []
            for row in batch.error_logs:
                is_new = id(row) in fresh_ids
                bug = bugs.get(row.fingerprint) if is_new and row.bug is not None else None
                stored.append(Stored(event_id=row.event_id, duplicate=not is_new,
                                     bug_id=bug[0] if bug else None,
                                     bug_number=bug[1] if bug else None))
            results.append(stored)
        return results

    def held(self, event_ids: Sequence[str], check_in_ids: Sequence[str]) -> Held:
        try:
            statuses: dict[str, str] = {}
            for chunk in _chunks(check_in_ids):
                statuses.update(self.db.execute(
                    "SELECT check_in_id, status FROM check_ins WHERE check_in_id IN"
                    f" ({','.join('?' * len(chunk))})", chunk).fetchall())
            return Held(frozenset(self._existing_event_ids(event_ids)), statuses)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {self.path}: {exc}") from exc

    def _existing_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(event_ids):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.execute(
                f"SELECT event_id FROM error_logs WHERE event_id IN ({marks})", chunk))
        return found

    def grouping_since(self) -> str | None:
        found = self.db.execute(
            "SELECT value FROM shim_meta WHERE key = 'grouping_v2_since'").fetchone()
        return None if found is None else str(found[0])

    def _apply_status(self, change: StatusChange) -> None:
        """Apply an operator's change once (a replayed change id is skipped)."""
        bug = self.db.execute("SELECT id FROM bugs WHERE bug_number = ?",
                              (change.bug_number,)).fetchone()
        if bug is None:
            return  # nothing to change: the bug's events are not in this database
        inserted = self.db.execute(
            "INSERT INTO status_changes (change_id, bug_id, bug_number, status, assignee,"
            " changed_by, at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (change_id) DO NOTHING",
            (change.change_id, bug["id"], change.bug_number, change.status, change.assignee,
             change.by, change.at)).rowcount
        if not inserted:
            return
        if change.status is not None:
            self.db.execute(
                "UPDATE bugs SET status = ?, updated_at = ?,"
                " resolved_at = CASE WHEN ? = 'resolved' THEN ? ELSE resolved_at END,"
                " is_regression = CASE WHEN ? IN ('resolved', 'closed') THEN 0"
                " ELSE is_regression END WHERE id = ?",
                (change.status, change.at, change.status, change.at, change.status, bug["id"]))
        if change.assignee is not None:
            self.db.execute("UPDATE bugs SET assignee = ?, updated_at = ? WHERE id = ?",
                            (change.assignee or None, change.at, bug["id"]))

    def _write_check_ins(self, batch: Batch) -> None:
        self.db.executemany(
            "INSERT INTO check_ins (check_in_id, project_id, monitor_slug, status, duration,"
            " environment, release, monitor_config, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (check_in_id) DO UPDATE SET status = excluded.status,"
            " duration = COALESCE(excluded.duration, duration),"
            " environment = COALESCE(excluded.environment, environment),"
            " release = COALESCE(excluded.release, release),"
            " monitor_config = COALESCE(excluded.monitor_config, monitor_config),"
            " updated_at = excluded.updated_at",
            [(c.check_in_id, c.project_id, c.monitor_slug, c.status, c.duration, c.environment,
              c.release, _json(c.monitor_config) if c.monitor_config else None, c.created_at,
              batch.received_at)
             for c in batch.check_ins])

    def _count_items(self, batches: Sequence[Batch]) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        for batch in batches:
            for item_type, n in batch.item_counts.items():
                counts[batch.received_at[:13], item_type] += n
        self.db.executemany(
            "INSERT INTO item_counts (hour, item_type, count) VALUES (?, ?, ?)"
            " ON CONFLICT (hour, item_type) DO UPDATE SET count = count + excluded.count",
            [(hour, item_type, n) for (hour, item_type), n in counts.items()])


def _chunks(ids: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    """``ids`` in pieces small enough for one statement's parameters."""
    return [ids[start:start + size] for start in range(0, len(ids), size)]

