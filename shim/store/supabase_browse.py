"""The Supabase store's reads for the web page (``shim.store.browse``), through PostgREST's table
API with the same answers as ``sqlite_browse``.

Supabase leaves PostgREST's aggregates off, so per-hour and per-component counts are made here from
the rows, at most ``ROWS`` of them per chart (a chart of a busier window undercounts; the Postgres
store counts in SQL). The bug list's environment and release filters keep the bugs of the latest
``browse.RECENT_LOGS`` matching events; a keyset page is two selects (the rows tied on the sort
value after the cursor's bug number, then the rows past the value), as PostgREST has no row
comparison.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from postgrest import SyncSelectRequestBuilder
from supabase import Client

from shim.store import browse, rows
from shim.store.browse import BugQuery
from shim.store.rows import is_uuid

Query = SyncSelectRequestBuilder
ROWS = 20_000


def _quoted(text: str) -> str:
    """``text`` as an ilike pattern matching it anywhere, as a value inside PostgREST's
    ``or=(...)``: its ``%``, ``_`` and ``\\`` escaped for LIKE, then double-quoted with ``"`` and
    ``\\`` escaped for PostgREST. Its own ``*`` (PostgREST's wildcard) cannot be escaped: dropped."""
    like = text.replace("*", "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return '"*' + like.replace("\\", "\\\\").replace('"', '\\"') + '*"'


class SupabaseBrowse:
    client: Client

    def _rows(self, query: Callable[[], Query], limit: int | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError  # SupabaseStore's

    def _bug_numbers(self, bug_ids: set[str]) -> dict[str, str]:
        raise NotImplementedError  # SupabaseStore's

    def search_bugs(self, query: BugQuery) -> list[dict[str, Any]]:
        bug_ids: list[str] | None = None
        for key, value in (("environment", query.environment), ("release", query.release)):
            if value is not None:
                ids = self._bug_ids_where(f"context->>{key}", value)
                bug_ids = ids if bug_ids is None else [i for i in bug_ids if i in set(ids)]
        if bug_ids is not None and not bug_ids:
            return []

        def base() -> Query:
            q = self.client.table("bugs").select("*").is_("merged_into", "null")
            if query.statuses:
                q = q.in_("status", list(query.statuses))
            for column, value in query.equal_columns():
                q = q.eq(column, "true" if value is True else value)
            if bug_ids is not None:
                q = q.in_("id", bug_ids)
            if query.text:
                pattern = _quoted(query.text)
                q = q.or_(f"title.ilike.{pattern},error_message.ilike.{pattern}")
            if query.new_since is not None:
                q = q.gte("first_occurred_at", query.new_since)
            return q

        column = query.column
        if query.after is None:
            return self._rows(lambda: base().order(column, desc=True)
                              .order("bug_number", desc=True), query.limit)
        value, number = query.after
        tied = self._rows(lambda: base().eq(column, value).lt("bug_number", number)
                          .order("bug_number", desc=True), query.limit)
        past = self._rows(lambda: base().lt(column, value).order(column, desc=True)
                          .order("bug_number", desc=True), query.limit - len(tied))
        return tied + past

    def _bug_ids_where(self, column: str, value: str) -> list[str]:
        found = self._rows(lambda: self.client.table("error_logs").select("related_bug_id")
                           .eq(column, value).not_.is_("related_bug_id", "null")
                           .order("seq", desc=True), browse.RECENT_LOGS)
        return list(dict.fromkeys(str(r["related_bug_id"]) for r in found))[:200]

    def bug_event(self, bug_id: str, go: str = "latest",
                  event_id: str | None = None) -> dict[str, Any] | None:
        if not is_uuid(bug_id):
            return None

        def one(where: Callable[[Query], Query], descending: bool) -> dict[str, Any] | None:
            found = self._rows(lambda: where(self.client.table("error_logs").select("*")
                                             .eq("related_bug_id", bug_id))
                               .order("created_at", desc=descending)
                               .order("seq", desc=descending), 1)
            return {"cursor": found[0].pop("seq"), **found[0]} if found else None

        first, latest = one(lambda q: q, False), one(lambda q: q, True)
        event = first if go == "first" else latest
        if go in ("prev", "next") and event_id is not None:
            here = self._rows(lambda: self.client.table("error_logs").select("created_at,seq")
                              .eq("event_id", event_id).eq("related_bug_id", bug_id), 1)
            if not here:
                return None
            at, seq = here[0]["created_at"], here[0]["seq"]
            if go == "prev":
                event = (one(lambda q: q.eq("created_at", at).lt("seq", seq), True)
                         or one(lambda q: q.lt("created_at", at), True))
            else:
                event = (one(lambda q: q.eq("created_at", at).gt("seq", seq), False)
                         or one(lambda q: q.gt("created_at", at), False))
        if go == "this" and event_id is not None:
            event = one(lambda q: q.eq("event_id", event_id), False)
        if event is None or first is None or latest is None:
            return None
        return {**event, "is_first": event["event_id"] == first["event_id"],
                "is_latest": event["event_id"] == latest["event_id"]}

    def bug_hours(self, bug_ids: Sequence[str], since: str) -> dict[str, dict[str, int]]:
        ids = [i for i in bug_ids if is_uuid(i)]
        found: dict[str, dict[str, int]] = {}
        for start in range(0, len(ids), 100):  # keeps the URL short
            chunk = ids[start:start + 100]
            for row in self._rows(lambda c=chunk: self.client.table("error_logs")  # type: ignore[misc]
                                  .select("related_bug_id,created_at").in_("related_bug_id", c)
                                  .gte("created_at", since).order("seq", desc=True), ROWS):
                browse.add_hour(found, str(row["related_bug_id"]), row["created_at"])
        return found

    def level_hours(self, since: str) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for row in self._rows(lambda: self.client.table("error_logs").select("log_level,created_at")
                              .gte("created_at", since).order("seq", desc=True), ROWS):
            browse.add_hour(found, row["log_level"], row["created_at"])
        return found

    def new_bugs_per_day(self, since: str) -> dict[str, int]:
        days = Counter(str(row["first_occurred_at"])[:10] for row in self._rows(
            lambda: self.client.table("bugs").select("first_occurred_at")
            .gte("first_occurred_at", since).order("bug_number"), ROWS))
        return dict(days)

    def top_components(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        counts = Counter(row["component"] for row in self._rows(
            lambda: self.client.table("error_logs").select("component")
            .gte("created_at", since).order("seq", desc=True), ROWS))
        ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0] or ""))
        return [{"component": name, "count": n} for name, n in ranked[:limit]]

    def filter_values(self) -> dict[str, list[str]]:
        def distinct(table: str, select: str, key: str, order: str) -> list[str]:
            found = self._rows(lambda: self.client.table(table).select(select)
                               .order(order, desc=True), browse.RECENT_LOGS)
            return sorted({str(r[key]) for r in found if r[key] not in (None, "")})

        return {
            "components": distinct("bugs", "component", "component", "last_occurred_at"),
            "workspaces": distinct("bugs", "workspace_id", "workspace_id", "last_occurred_at"),
            "environments": distinct("error_logs", "environment:context->>environment",
                                     "environment", "seq"),
            "releases": distinct("error_logs", "release:context->>release", "release", "seq"),
        }

    def recent_check_ins(self, limit: int = 1000) -> list[dict[str, Any]]:
        return self._rows(lambda: self.client.table("check_ins").select("*")
                          .order("created_at", desc=True), limit)

    def recent_logs(self, level: str | None = None, component: str | None = None,
                    bug_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if bug_id is not None and not is_uuid(bug_id):
            return []
        conditions = rows.log_conditions(level, component, bug_id, None, cursor="seq")

        def query() -> Query:
            q = self.client.table("error_logs").select("*")
            for column, operator, value in conditions:
                q = q.in_(column, value) if operator == "in" else q.eq(column, value)
            return q.order("created_at", desc=True).order("seq", desc=True)

        found = self._rows(query, limit)
        numbers = self._bug_numbers({r["related_bug_id"] for r in found if r["related_bug_id"]})
        return [rows.log_row(row, numbers.get(row["related_bug_id"])) for row in found]
