"""Read queries of the SQLite store, for the CLI and ``/healthz``: bugs, one bug, logs, stats.

Rows come back as plain dicts with the table's column names; JSON columns are decoded.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from shim.core.levels import LEVEL_RANK

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
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for column, value in (("status", status), ("component", component),
                              ("workspace_id", workspace)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("last_occurred_at >= ?")
            params.append(since)
        order = "occurrence_count DESC, last_occurred_at DESC" if sort == "count" \
            else "last_occurred_at DESC"
        return self._all(f"SELECT * FROM bugs WHERE {' AND '.join(where)} ORDER BY {order}"
                         " LIMIT ?", [*params, limit])

    def get_bug(self, bug_number: str) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM bugs WHERE bug_number = ?", (bug_number,))
        return rows[0] if rows else None

    def status_history(self, bug_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM status_changes WHERE bug_id = ? ORDER BY at", (bug_id,))

    def list_logs(
        self,
        level: str | None = None,
        component: str | None = None,
        bug_id: str | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The most recent logs, oldest first; ``after`` (a ``cursor``) gives only newer ones."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if level is not None:
            levels = [name for name, rank in LEVEL_RANK.items() if rank >= LEVEL_RANK[level]]
            where.append(f"l.log_level IN ({','.join('?' * len(levels))})")
            params.extend(levels)
        if component is not None:
            where.append("l.component = ?")
            params.append(component)
        if bug_id is not None:
            where.append("l.related_bug_id = ?")
            params.append(bug_id)
        if after is not None:
            where.append("l.rowid > ?")
            params.append(after)
        rows = self._all(
            "SELECT l.rowid AS cursor, l.*, b.bug_number FROM error_logs AS l"
            " LEFT JOIN bugs AS b ON b.id = l.related_bug_id"
            f" WHERE {' AND '.join(where)} ORDER BY l.rowid DESC LIMIT ?", [*params, limit])
        return rows[::-1]

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
