"""Read queries of the SQLite store, for the CLI and ``/healthz``: bugs, one bug, logs, stats.

Rows come back as plain dicts with the table's column names; JSON columns are decoded.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from shim.store import rows

_JSON_COLUMNS = ("context", "related_log_ids", "monitor_config")


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for column in _JSON_COLUMNS:
        if isinstance(out.get(column), str):
            out[column] = orjson.loads(out[column])
    return out


class SQLiteReads:
    db: sqlite3.Connection

    def _all(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [_row(r) for r in self.db.execute(sql, params)]

    def list_bugs(
        self,
        status: str | None = None,
        component: str | None = None,
        workspace: str | None = None,
        since: str | None = None,
        sort: str = "last",
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        where, params = rows.sql_where(rows.bug_conditions(status, component, workspace, since),
                                       "?")
        return self._all(f"SELECT * FROM bugs WHERE {where}"
                         f" ORDER BY {rows.sql_order(rows.bug_order(sort))} LIMIT ?",
                         [*params, limit])

    def get_bug(self, bug_number: str) -> dict[str, Any] | None:
        found = self._all("SELECT * FROM bugs WHERE bug_number = ?", (bug_number,))
        return found[0] if found else None

    def status_history(self, bug_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM status_changes WHERE bug_id = ? ORDER BY at", (bug_id,))

    def bug_hashes(self, bug_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT hash, grouping_version FROM bug_hashes WHERE bug_id = ?"
                         " ORDER BY grouping_version, hash", (bug_id,))

    def list_logs(
        self,
        level: str | None = None,
        component: str | None = None,
        bug_id: str | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The most recent logs, oldest first; ``after`` (a ``cursor``) gives only newer ones."""
        return self._logs(level, component, bug_id, after, "l.rowid DESC", limit)[::-1]

    def _logs(self, level: str | None, component: str | None, bug_id: str | None,
              after: int | None, order: str, limit: int) -> list[dict[str, Any]]:
        """error_logs rows (each with its cursor and bug number) matching the filters, in
        ``order``: the store's order of arrival (the CLI) or event time (the web page)."""
        where, params = rows.sql_where(
            rows.log_conditions(level, component, bug_id, after, cursor="rowid"), "?", prefix="l.")
        return self._all(
            "SELECT l.rowid AS cursor, l.*, b.bug_number FROM error_logs AS l"
            " LEFT JOIN bugs AS b ON b.id = l.related_bug_id"
            f" WHERE {where} ORDER BY {order} LIMIT ?", [*params, limit])

    def bugs_after(self, bug_number: str, limit: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM bugs WHERE bug_number > ? ORDER BY bug_number LIMIT ?",
                         (bug_number, limit))

    def stats(self, hour_ago: str, day_ago: str) -> dict[str, Any]:
        def per(sql: str, params: tuple[Any, ...]) -> dict[str, int]:
            return {str(r[0]): int(r[1]) for r in self.db.execute(sql, params)}

        levels = "SELECT log_level, count(*) FROM error_logs WHERE created_at >= ? GROUP BY 1"
        items = "SELECT item_type, sum(count) FROM item_counts WHERE hour >= ? GROUP BY 1"
        return {
            "levels": {"hour": per(levels, (hour_ago,)), "day": per(levels, (day_ago,))},
            "items": {"hour": per(items, (hour_ago[:13],)), "day": per(items, (day_ago[:13],))},
            "bugs_by_status": per("SELECT status, count(*) FROM bugs GROUP BY 1", ()),
            "busiest": self._all(
                "SELECT bug_number, title, status, occurrence_count, last_occurred_at FROM bugs"
                " WHERE last_occurred_at >= ? ORDER BY occurrence_count DESC LIMIT 5",
                (day_ago,)),
        }
