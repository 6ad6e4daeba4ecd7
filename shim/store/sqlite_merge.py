"""Merges and unmerges in the SQLite store (``shim merge``, ``shim unmerge``): an operator's
``BugMerge``, applied once by its change id, in the order the backup log holds it.

A merge folds each other bug into the first: its hashes (so later events of it count there),
its logs, its count and times; the other bug stays, marked ``merged_into``, with no count of its
own. An unmerge moves one hash, and the logs of that fingerprint, out of a bug: back to the bug
it came from (whose own fingerprint it is), or else to a new bug. Postgres migration 0004 does
the same in ``shim_merge`` and ``shim_unmerge``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from shim.core.levels import SEVERITY_RANK
from shim.core.records import BugMerge
from shim.store.rows import bug_id_for


def apply_merge(db: sqlite3.Connection, merge: BugMerge, related_logs: int) -> None:
    """Apply ``merge`` unless its change id was applied already."""
    inserted = db.execute(
        "INSERT INTO bug_merges (change_id, kind, bug_number, others, hashes, changed_by, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (change_id) DO NOTHING",
        (merge.change_id, merge.kind, merge.bug_number, orjson.dumps(merge.others).decode(),
         orjson.dumps(merge.hashes).decode(), merge.by, merge.at)).rowcount
    if not inserted:
        return
    bug = _bug(db, "bug_number = ?", merge.bug_number)
    if bug is None or bug["merged_into"] is not None:
        return  # its events are not in this database, or it went into another meanwhile
    if merge.kind == "merge":
        for number in merge.others:
            other = _bug(db, "bug_number = ?", number)
            if other is not None and other["id"] != bug["id"] and other["merged_into"] is None:
                _fold(db, bug, other, merge.at)
                bug = _bug(db, "id = ?", bug["id"])
                assert bug is not None
        _keep_recent_logs(db, bug["id"], related_logs)
    elif merge.kind == "unmerge":
        for fingerprint in merge.hashes:
            _split(db, bug, fingerprint, merge.at, related_logs)


def _bug(db: sqlite3.Connection, where: str, value: str) -> dict[str, Any] | None:
    found = db.execute(f"SELECT * FROM bugs WHERE {where}", (value,)).fetchone()
    return None if found is None else dict(found)


def _fold(db: sqlite3.Connection, bug: dict[str, Any], other: dict[str, Any], at: str) -> None:
    """``other``'s hashes, logs, count and times into ``bug``; ``other`` marked merged into it."""
    db.execute("UPDATE bug_hashes SET bug_id = ? WHERE bug_id = ?", (bug["id"], other["id"]))
    db.execute("UPDATE error_logs SET related_bug_id = ? WHERE related_bug_id = ?",
               (bug["id"], other["id"]))
    worse = SEVERITY_RANK[other["severity"]] > SEVERITY_RANK[bug["severity"]]
    severity, priority = ((other["severity"], other["priority"]) if worse
                          else (bug["severity"], bug["priority"]))
    db.execute(
        "UPDATE bugs SET occurrence_count = occurrence_count + ?,"
        " first_occurred_at = min(first_occurred_at, ?), last_occurred_at = max(last_occurred_at, ?),"
        " severity = ?, priority = ?, updated_at = ? WHERE id = ?",
        (other["occurrence_count"], other["first_occurred_at"], other["last_occurred_at"],
         severity, priority, at, bug["id"]))
    db.execute("UPDATE bugs SET merged_into = ?, occurrence_count = 0, related_log_ids = '[]',"
               " updated_at = ? WHERE id = ?", (bug["bug_number"], at, other["id"]))


def _split(db: sqlite3.Connection, bug: dict[str, Any], fingerprint: str, at: str,
           related_logs: int) -> None:
    """One hash of ``bug`` (not its own fingerprint) and its logs out to a bug of its own."""
    owned = db.execute("SELECT grouping_version FROM bug_hashes WHERE hash = ? AND bug_id = ?",
                       (fingerprint, bug["id"])).fetchone()
    if owned is None or fingerprint == bug["fingerprint"]:
        return
    back = _bug(db, "fingerprint = ?", fingerprint)
    if back is not None:  # the bug this hash was merged from comes back
        target = back["id"]
        db.execute("UPDATE bugs SET merged_into = NULL, updated_at = ? WHERE id = ?",
                   (at, target))
    else:
        target = bug_id_for(fingerprint)
        (number,) = db.execute("UPDATE sequences SET value = value + 1"
                               " WHERE name = 'bug_number' RETURNING value").fetchone()
        db.execute(
            "INSERT INTO bugs (id, bug_number, title, description, severity, priority, status,"
            " component, workspace_id, error_type, error_message, stack_trace, fingerprint,"
            " grouping_version, occurrence_count, first_occurred_at, last_occurred_at,"
            " related_log_ids, created_at, updated_at)"
            " SELECT ?, ?, title, description, severity, priority, 'open', component,"
            " workspace_id, error_type, error_message, stack_trace, ?, ?, 0, first_occurred_at,"
            " last_occurred_at, '[]', ?, ? FROM bugs WHERE id = ?",
            (target, f"BUG-{number:05d}", fingerprint, owned[0], at, at, bug["id"]))
    db.execute("UPDATE bug_hashes SET bug_id = ? WHERE hash = ?", (target, fingerprint))
    moved = db.execute("UPDATE error_logs SET related_bug_id = ?"
                       " WHERE related_bug_id = ? AND fingerprint = ?",
                       (target, bug["id"], fingerprint)).rowcount
    count, first, last = db.execute(
        "SELECT count(*), min(created_at), max(created_at) FROM error_logs"
        " WHERE related_bug_id = ?", (target,)).fetchone()
    db.execute("UPDATE bugs SET occurrence_count = ?, first_occurred_at = coalesce(?,"
               " first_occurred_at), last_occurred_at = coalesce(?, last_occurred_at),"
               " updated_at = ? WHERE id = ?", (count, first, last, at, target))
    db.execute("UPDATE bugs SET occurrence_count = max(occurrence_count - ?, 0), updated_at = ?"
               " WHERE id = ?", (moved, at, bug["id"]))
    _keep_recent_logs(db, target, related_logs)
    _keep_recent_logs(db, bug["id"], related_logs)


def _keep_recent_logs(db: sqlite3.Connection, bug_id: str, related_logs: int) -> None:
    """``related_log_ids``: the bug's most recent logs, oldest first, as events append them."""
    recent = [row[0] for row in db.execute(
        "SELECT id FROM error_logs WHERE related_bug_id = ? ORDER BY created_at DESC, id DESC"
        " LIMIT ?", (bug_id, related_logs))]
    db.execute("UPDATE bugs SET related_log_ids = ? WHERE id = ?",
               (orjson.dumps(recent[::-1]).decode(), bug_id))
