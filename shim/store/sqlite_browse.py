"""The SQLite store's reads for the web page (``shim.store.browse``): the bug list's filters and
keyset pages, a bug's events one at a time, per-hour counts, the filters' choices, check-ins.

Times are kept as UTC text (``2026-11-28T13:05:00.000000+00:00``), so an hour is its first 13
characters and a day its first 10.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from shim.core.levels import STATUSES
from shim.store import browse
from shim.store.browse import BugQuery
from shim.store.sqlite_reads import SQLiteReads


class SQLiteBrowse(SQLiteReads):
    db: sqlite3.Connection

    def search_bugs(self, query: BugQuery) -> list[dict[str, Any]]:
        """One select per status, each walking the (status, last_occurred_at) index and stopping
        at the page's size, then merged: SQLite would otherwise sort every matching bug (no index
        orders bugs of several statuses, or of all, by time). The first-seen and count orders
        have no index: those sort the matching bugs."""
        where: list[str] = ["merged_into IS NULL"]  # a merged bug lives on in the one it joined
        params: list[Any] = []
        for column, value in query.equal_columns():
            where.append(f"{column} = ?")
            params.append(int(value) if isinstance(value, bool) else value)
        for key, value in (("environment", query.environment), ("release", query.release)):
            if value is not None:
                where.append(
                    "id IN (SELECT related_bug_id FROM (SELECT related_bug_id, context"
                    f" FROM error_logs ORDER BY rowid DESC LIMIT {browse.ENVIRONMENT_WINDOW})"
                    f" WHERE related_bug_id IS NOT NULL AND json_extract(context, '$.{key}') = ?)")
                params.append(value)
        if query.text:
            where.append("(title LIKE ? ESCAPE '\\' OR error_message LIKE ? ESCAPE '\\')")
            params.extend([browse.like_pattern(query.text)] * 2)
        if query.new_since is not None:
            where.append("first_occurred_at >= ?")
            params.append(query.new_since)
        column = query.column
        if query.after is not None:  # (column, bug_number) < after, as a range on column
            where.append(f"{column} <= ? AND ({column} < ? OR bug_number < ?)")
            value, number = query.after
            params.extend([value, value, number])
        order = f"ORDER BY {column} DESC, bug_number DESC LIMIT ?"
        parts = [f"SELECT * FROM (SELECT * FROM bugs WHERE {' AND '.join(['status = ?', *where])}"
                 f" {order})" for _ in query.statuses or STATUSES]
        every = [p for status in query.statuses or STATUSES
                 for p in (status, *params, query.limit)]
        return self._all(f"{' UNION ALL '.join(parts)} {order}", [*every, query.limit])

    def bug_event(self, bug_id: str, go: str = "latest",
                  event_id: str | None = None) -> dict[str, Any] | None:
        def one(condition: str, params: Sequence[Any], descending: bool) -> dict[str, Any] | None:
            order = "DESC" if descending else ""
            found = self._all(
                "SELECT rowid AS cursor, * FROM error_logs WHERE related_bug_id = ?"
                f" {condition} ORDER BY created_at {order}, rowid {order} LIMIT 1",
                [bug_id, *params])
            return found[0] if found else None

        first, latest = one("", (), False), one("", (), True)
        if go in ("prev", "next") and event_id is not None:
            here = self.db.execute("SELECT created_at, rowid FROM error_logs WHERE event_id = ?"
                                   " AND related_bug_id = ?", (event_id, bug_id)).fetchone()
            if here is None:
                return None
            sign = "<" if go == "prev" else ">"
            event = one(f"AND (created_at, rowid) {sign} (?, ?)", tuple(here), go == "prev")
        elif go == "this" and event_id is not None:
            event = one("AND event_id = ?", (event_id,), False)
        elif go == "first":
            event = first
        else:
            event = latest
        if event is None or first is None or latest is None:
            return None
        return {**event, "is_first": event["event_id"] == first["event_id"],
                "is_latest": event["event_id"] == latest["event_id"]}

    def bug_hours(self, bug_ids: Sequence[str], since: str) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for start in range(0, len(bug_ids), 500):
            chunk = list(bug_ids[start:start + 500])
            for bug_id, hour, n in self.db.execute(
                    "SELECT related_bug_id, substr(created_at, 1, 13), count(*) FROM error_logs"
                    f" WHERE related_bug_id IN ({','.join('?' * len(chunk))})"
                    " AND created_at >= ? GROUP BY 1, 2", [*chunk, since]):
                found.setdefault(bug_id, {})[hour] = int(n)
        return found

    def level_hours(self, since: str) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for level, hour, n in self.db.execute(
                "SELECT log_level, substr(created_at, 1, 13), count(*) FROM error_logs"
                " WHERE created_at >= ? GROUP BY 1, 2", (since,)):
            found.setdefault(level, {})[hour] = int(n)
        return found

    def new_bugs_per_day(self, since: str) -> dict[str, int]:
        return {day: int(n) for day, n in self.db.execute(
            "SELECT substr(first_occurred_at, 1, 10), count(*) FROM bugs"
            " WHERE first_occurred_at >= ? GROUP BY 1", (since,))}

    def top_components(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        return self._all("SELECT component, count(*) AS count FROM error_logs"
                         " WHERE created_at >= ? GROUP BY component"
                         " ORDER BY count DESC, component LIMIT ?", (since, limit))

    def filter_values(self) -> dict[str, list[str]]:
        def values(sql: str) -> list[str]:
            return [str(r[0]) for r in self.db.execute(sql) if r[0] not in (None, "")]

        recent = f"(SELECT context FROM error_logs ORDER BY rowid DESC LIMIT {browse.RECENT_LOGS})"
        return {
            "components": values("SELECT DISTINCT component FROM bugs ORDER BY 1"),
            "workspaces": values("SELECT DISTINCT workspace_id FROM bugs ORDER BY 1"),
            "environments": values("SELECT DISTINCT json_extract(context, '$.environment')"
                                   f" FROM {recent} ORDER BY 1"),
            "releases": values("SELECT DISTINCT json_extract(context, '$.release')"
                               f" FROM {recent} ORDER BY 1"),
        }

    def recent_check_ins(self, limit: int = 1000) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM check_ins ORDER BY created_at DESC, rowid DESC LIMIT ?",
                         (limit,))

    def recent_logs(self, level: str | None = None, component: str | None = None,
                    bug_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._logs(level, component, bug_id, None, "l.created_at DESC, l.rowid DESC", limit)
