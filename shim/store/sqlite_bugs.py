"""How the SQLite store counts new events towards bugs: each fingerprint's bug found through
``bug_hashes`` (by its hash, else, during the transition from grouping version 1, by the version 1
hash of its first event in the write, which the bug then learns), else a new bug. A mixin of
``SQLiteStore``, whose one writer thread calls it inside its transaction; ``shim_ingest``
(Postgres migration 0004) decides the same way.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import orjson

from shim.core.policy import escalated
from shim.core.records import ErrorLog
from shim.store.rows import bug_id_for, utc_text


def utc_now() -> str:
    return utc_text(datetime.now(UTC))


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


class SQLiteBugs:
    db: sqlite3.Connection
    related_logs: int

    def _upsert_bugs(self, rows: list[tuple[ErrorLog, str]]) -> dict[str, tuple[str, str]]:
        """Open or update the bug of each new event that counts towards one; for each
        fingerprint, its bug's (id, number).

        A fingerprint's bug is the one that hash belongs to (``bug_hashes``), else, during the
        transition from grouping version 1, the bug of the version 1 hash of its first event
        here, which then learns the new hash, else a new bug. (``shim_ingest``, Postgres
        migration 0004, decides the same way.)"""
        groups: dict[str, list[tuple[ErrorLog, str]]] = {}
        target_of: dict[str, str | None] = {}  # fingerprint -> bug id, None for a new bug
        learned: dict[str, dict[str, int]] = {}  # bug id -> hashes it learns, their version
        for row, received_at in rows:
            if row.fingerprint not in target_of:
                bug_id, learns = self._target(row, target_of)
                target_of[row.fingerprint] = bug_id
                if learns and bug_id is not None and row.bug is not None:
                    learned.setdefault(bug_id, {})[row.fingerprint] = row.bug.grouping_version
            key = target_of[row.fingerprint] or bug_id_for(row.fingerprint)
            groups.setdefault(key, []).append((row, received_at))
        bugs: dict[str, tuple[str, str]] = {}
        for key, group in groups.items():
            if target_of[group[0][0].fingerprint] is None:
                found = self._open_bug(group)
            else:
                found = self._update_bug(key, group)
            self.db.executemany(
                "INSERT OR IGNORE INTO bug_hashes (hash, bug_id, grouping_version)"
                " VALUES (?, ?, ?)",
                [(fingerprint, found[0], version)
                 for fingerprint, version in sorted(learned.get(key, {}).items())])
            for row, _ in group:
                bugs[row.fingerprint] = found
        return bugs

    def _target(self, row: ErrorLog, earlier: dict[str, str | None]) -> tuple[str | None, bool]:
        """The id of the bug of the row's fingerprint, else of its version 1 hash (and whether
        the bug then learns the fingerprint); None when neither has one. ``earlier``: the
        fingerprints of this write so far, and their bugs (None: opened by this write)."""
        found = self.db.execute("SELECT bug_id FROM bug_hashes WHERE hash = ?",
                                (row.fingerprint,)).fetchone()
        if found is not None:
            return found[0], False
        v1 = row.fingerprint_v1
        if v1 is None:
            return None, False
        if v1 in earlier:  # an event of version 1 earlier in this write (a restore's)
            return earlier[v1] or bug_id_for(v1), True
        found = self.db.execute("SELECT bug_id FROM bug_hashes WHERE hash = ?", (v1,)).fetchone()
        return (found[0], True) if found is not None else (None, False)

    def _open_bug(self, group: list[tuple[ErrorLog, str]]) -> tuple[str, str]:
        """A new bug for the new events of one fingerprint, which it keeps as its first hash."""
        first, first_received = group[0]
        signal = first.bug
        assert signal is not None
        times = sorted(r.created_at for r, _ in group)
        updated_at = max(received for _, received in group)
        new_ids = [r.id for r, _ in group]
        severity, priority = escalated(r.bug for r, _ in group if r.bug is not None)
        (number,) = self.db.execute(
            "UPDATE sequences SET value = value + 1 WHERE name = 'bug_number' RETURNING value"
        ).fetchone()
        bug_id, bug_number = bug_id_for(first.fingerprint), f"BUG-{number:05d}"
        self.db.execute(
            "INSERT INTO bugs (id, bug_number, title, description, severity, priority, status,"
            " component, workspace_id, error_type, error_message, stack_trace, fingerprint,"
            " grouping_version, occurrence_count, first_occurred_at, last_occurred_at,"
            " related_log_ids, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (bug_id, bug_number, signal.title, signal.description, severity,
             priority, first.component, first.workspace_id, first.error_type,
             first.error_message, first.stack_trace, first.fingerprint,
             signal.grouping_version, len(group), times[0], times[-1],
             _json(new_ids[-self.related_logs:]), first_received, updated_at))
        self.db.execute("INSERT INTO bug_hashes (hash, bug_id, grouping_version) VALUES (?, ?, ?)",
                        (first.fingerprint, bug_id, signal.grouping_version))
        if signal.grouping_version < 2:
            # A bug of version 1 in a database that had none (a restore of an older backup log):
            # the transition starts now, or its repeats would open new bugs.
            self.db.execute("INSERT OR IGNORE INTO shim_meta (key, value)"
                            " VALUES ('grouping_v2_since', ?)", (utc_now(),))
        return bug_id, bug_number

    def _update_bug(self, bug_id: str, group: list[tuple[ErrorLog, str]]) -> tuple[str, str]:
        """Count the new events of a bug that exists (reopening it if it was resolved)."""
        found = self.db.execute(
            "SELECT id, bug_number, status, severity, priority, related_log_ids, first_occurred_at,"
            " last_occurred_at FROM bugs WHERE id = ?", (bug_id,)).fetchone()
        times = sorted(r.created_at for r, _ in group)
        updated_at = max(received for _, received in group)
        severity, priority = escalated((r.bug for r, _ in group if r.bug is not None),
                                       (found["severity"], found["priority"]))
        related_ids = [*orjson.loads(found["related_log_ids"]),
                       *(r.id for r, _ in group)][-self.related_logs:]
        regression = found["status"] == "resolved"
        self.db.execute(
            "UPDATE bugs SET occurrence_count = occurrence_count + ?, first_occurred_at = ?,"
            " last_occurred_at = ?, related_log_ids = ?, severity = ?, priority = ?,"
            " status = CASE WHEN ? THEN 'open' ELSE status END,"
            " is_regression = CASE WHEN ? THEN 1 ELSE is_regression END, updated_at = ?"
            " WHERE id = ?",
            (len(group), min(found["first_occurred_at"], times[0]),
             max(found["last_occurred_at"], times[-1]), _json(related_ids), severity,
             priority, regression, regression, updated_at, found["id"]))
        return found["id"], found["bug_number"]
