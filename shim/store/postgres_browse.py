"""The Postgres store's reads for the web page (``shim.store.browse``), in SQL with the same
answers as ``sqlite_browse``: rows through ``rows.plain``, hours and days as UTC text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shim.store import browse
from shim.store.browse import BugQuery
from shim.store.rows import is_uuid

_HOUR = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')"
_CASTS = {"last_occurred_at": "timestamptz", "first_occurred_at": "timestamptz",
          "occurrence_count": "bigint"}


class PostgresBrowse:
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError  # PostgresStore's

    def _logs(self, level: str | None, component: str | None, bug_id: str | None,
              after: int | None, order: str, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError  # PostgresStore's

    def search_bugs(self, query: BugQuery) -> list[dict[str, Any]]:
        where: list[str] = ["merged_into IS NULL"]  # a merged bug lives on in the one it joined
        params: list[Any] = []
        if query.statuses:
            where.append("status = ANY(%s)")
            params.append(list(query.statuses))
        for column, value in query.equal_columns():
            where.append(f"{column} = %s")
            params.append(value)
        for key, value in (("environment", query.environment), ("release", query.release)):
            if value is not None:
                where.append(
                    "id IN (SELECT related_bug_id FROM (SELECT related_bug_id, context"
                    f" FROM error_logs ORDER BY seq DESC LIMIT {browse.ENVIRONMENT_WINDOW}) AS l"
                    f" WHERE related_bug_id IS NOT NULL AND context ->> '{key}' = %s)")
                params.append(value)
        if query.text:
            where.append("(title ILIKE %s OR error_message ILIKE %s)")
            params.extend([browse.like_pattern(query.text)] * 2)
        if query.new_since is not None:
            where.append("first_occurred_at >= %s::timestamptz")
            params.append(query.new_since)
        column = query.column
        if query.after is not None:
            where.append(f"({column}, bug_number) < (%s::{_CASTS[column]}, %s)")
            params.extend(query.after)
        sql = (f"SELECT * FROM bugs WHERE {' AND '.join(where) or 'true'}"
               f" ORDER BY {column} DESC, bug_number DESC LIMIT %s")
        return self._all(sql, [*params, query.limit])

    def bug_event(self, bug_id: str, go: str = "latest",
                  event_id: str | None = None) -> dict[str, Any] | None:
        if not is_uuid(bug_id):
            return None

        def one(condition: str, params: Sequence[Any], descending: bool) -> dict[str, Any] | None:
            order = "DESC" if descending else ""
            found = self._all(
                "SELECT * FROM error_logs WHERE related_bug_id = %s::uuid"
                f" {condition} ORDER BY created_at {order}, seq {order} LIMIT 1",
                [bug_id, *params])
            return {"cursor": found[0].pop("seq"), **found[0]} if found else None

        first, latest = one("", (), False), one("", (), True)
        if go in ("prev", "next") and event_id is not None:
            here = self._all("SELECT created_at, seq FROM error_logs WHERE event_id = %s"
                             " AND related_bug_id = %s::uuid", (event_id, bug_id))
            if not here:
                return None
            sign = "<" if go == "prev" else ">"
            event = one(f"AND (created_at, seq) {sign} (%s::timestamptz, %s)",
                        (here[0]["created_at"], here[0]["seq"]), go == "prev")
        elif go == "this" and event_id is not None:
            event = one("AND event_id = %s", (event_id,), False)
        elif go == "first":
            event = first
        else:
            event = latest
        if event is None or first is None or latest is None:
            return None
        return {**event, "is_first": event["event_id"] == first["event_id"],
                "is_latest": event["event_id"] == latest["event_id"]}

    def bug_hours(self, bug_ids: Sequence[str], since: str) -> dict[str, dict[str, int]]:
        ids = [i for i in bug_ids if is_uuid(i)]
        found: dict[str, dict[str, int]] = {}
        if not ids:
            return found
        for row in self._all(
                f"SELECT related_bug_id AS key, {_HOUR} AS hour, count(*) AS n FROM error_logs"
                " WHERE related_bug_id = ANY(%s::uuid[]) AND created_at >= %s::timestamptz"
                " GROUP BY 1, 2", (ids, since)):
            found.setdefault(row["key"], {})[row["hour"]] = int(row["n"])
        return found

    def level_hours(self, since: str) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for row in self._all(
                f"SELECT log_level AS key, {_HOUR} AS hour, count(*) AS n FROM error_logs"
                " WHERE created_at >= %s::timestamptz GROUP BY 1, 2", (since,)):
            found.setdefault(row["key"], {})[row["hour"]] = int(row["n"])
        return found

    def new_bugs_per_day(self, since: str) -> dict[str, int]:
        return {row["day"]: int(row["n"]) for row in self._all(
            "SELECT to_char(first_occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,"
            " count(*) AS n FROM bugs WHERE first_occurred_at >= %s::timestamptz GROUP BY 1",
            (since,))}

    def top_components(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        return self._all("SELECT component, count(*) AS count FROM error_logs"
                         " WHERE created_at >= %s::timestamptz GROUP BY component"
                         " ORDER BY count DESC, component LIMIT %s", (since, limit))

    def filter_values(self) -> dict[str, list[str]]:
        def values(sql: str) -> list[str]:
            return [str(r["v"]) for r in self._all(sql) if r["v"] not in (None, "")]

        recent = f"(SELECT context FROM error_logs ORDER BY seq DESC LIMIT {browse.RECENT_LOGS}) AS l"
        return {
            "components": values("SELECT DISTINCT component AS v FROM bugs ORDER BY 1"),
            "workspaces": values("SELECT DISTINCT workspace_id AS v FROM bugs ORDER BY 1"),
            "environments": values(f"SELECT DISTINCT context ->> 'environment' AS v FROM {recent}"
                                   " ORDER BY 1"),
            "releases": values(f"SELECT DISTINCT context ->> 'release' AS v FROM {recent}"
                               " ORDER BY 1"),
        }

    def recent_check_ins(self, limit: int = 1000) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM check_ins ORDER BY created_at DESC LIMIT %s", (limit,))

    def recent_logs(self, level: str | None = None, component: str | None = None,
                    bug_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._logs(level, component, bug_id, None, "l.created_at DESC, l.seq DESC", limit)
