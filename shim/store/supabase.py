"""The Supabase store: the shared Postgres schema, reached through Supabase's HTTP API (PostgREST).

For machines that have the project URL and the service key but no direct Postgres connection. A
write is one RPC of the same ``shim_ingest(jsonb)`` function the Postgres store calls, with the same
JSON argument (``rows.ingest_payload``), so deduplication, grouping into bugs and status changes
exist once, in SQL. Reads are table selects with PostgREST filters and give the rows the other stores
give: ids and times as text (UTC, microseconds), flags as 0/1, JSON columns decoded.

PostgREST cannot run DDL, so this store never changes the schema: ``shim migrate --sql`` prints it
for Supabase's SQL editor, and ``migrate`` only checks that it was applied (``shim migrate`` says
that it cannot create tables without asking: see ``apply_migrations``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from postgrest import APIError, CountMethod, SyncSelectRequestBuilder
from supabase import Client, ClientOptions, create_client

from shim.core.levels import LEVEL_RANK, STATUSES
from shim.core.records import Batch, Stored
from shim.store import StoreUnavailable, rows
from shim.store import migrate as schema
from shim.store.rows import ingest_payload, is_uuid, stored_from
from shim.store.supabase_browse import SupabaseBrowse
from shim.writer.held import Held

log = logging.getLogger("shim.store")

# Supabase answers at most this many rows per request (the API's "max rows" setting, 1000 by
# default), so longer reads go in pages.
PAGE = 1000
_TIMES = frozenset({"created_at", "updated_at", "received_at", "first_occurred_at",
                    "last_occurred_at", "resolved_at", "at", "hour"})
# PostgREST's codes for a function or table it does not know, and Postgres's own.
_NO_SCHEMA = frozenset({"PGRST202", "PGRST205", "42883", "42P01"})
APPLY_SCHEMA = ("apply the schema in Supabase's SQL editor: run `shim migrate --sql` and paste what"
                " it prints")

Query = SyncSelectRequestBuilder


class SchemaNotApplied(StoreUnavailable):
    """The project lacks the shim schema, or some of its migrations."""


def _hour(moment: str) -> str:
    """The start of ``moment``'s hour in UTC, as ``date_trunc('hour', …, 'UTC')``."""
    when = datetime.fromisoformat(moment).astimezone(UTC)
    return when.replace(minute=0, second=0, microsecond=0).isoformat()


def _filtered(query: Query, conditions: Sequence[rows.Condition]) -> Query:
    """``query`` keeping the rows that meet ``conditions``, as PostgREST filters."""
    for column, operator, value in conditions:
        if operator == "in":
            query = query.in_(column, value)
        elif operator == "is":
            query = query.is_(column, "null")
        else:
            query = {"=": query.eq, ">=": query.gte, ">": query.gt}[operator](column, value)
    return query


class SupabaseStore(SupabaseBrowse):  # the web page's reads: supabase_browse
    overlaps_commits = True  # a commit waits on the database server (shim/writer/group.py)

    def __init__(self, url: str, key: str, related_logs: int = 20, timeout: float = 30.0) -> None:
        self.url = url
        self.related_logs = related_logs
        # The client's own timeout option is deprecated in favour of an httpx client; owning it
        # also lets close() release the connections. No retries inside the client: the writer
        # retries from the backup log with its own backoff, and the CLI should fail fast.
        self._http = httpx.Client(timeout=timeout)
        self.client: Client = create_client(url, key, ClientOptions(
            httpx_client=self._http, postgrest_client_retry=False))
        self._checked = False
        try:
            self.migrate()
        except StoreUnavailable as exc:
            # Like the Postgres store: the server starts and keeps events in the backup log.
            log.warning("supabase store not ready (%s); will check again on first write", exc)

    def _run(self, request: Any) -> Any:
        """``request.execute()``; failures that are not about the data become StoreUnavailable."""
        try:
            return request.execute()
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"Supabase at {self.url} not reachable: {exc}") from exc
        except APIError as exc:
            code = exc.code or ""
            if code in _NO_SCHEMA:
                raise SchemaNotApplied(f"Supabase has no shim schema ({code}: {exc.message});"
                                       f" {APPLY_SCHEMA}") from exc
            if code[:2] in {"22", "23"}:  # data exception, integrity constraint: the data
                raise
            raise StoreUnavailable(f"Supabase refused the request ({code}: {exc.message})") from exc

    def migrate(self) -> list[str]:
        """Check that every packaged migration was applied: none is applied from here (PostgREST
        cannot create tables), so this returns no names, or raises ``SchemaNotApplied``, which
        says how to apply them."""
        response = self._run(self.client.table("schema_migrations").select("version"))
        done = {int(row["version"]) for row in response.data}
        missing = [m.name for m in schema.migrations() if m.version not in done]
        if missing:
            raise SchemaNotApplied(f"Supabase lacks the migrations {', '.join(missing)}; "
                                   f"{APPLY_SCHEMA}")
        self._checked = True
        return []

    def close(self) -> None:
        self._http.close()

    def ping(self) -> bool:
        """Whether ``shim_ingest`` answers: an empty batch, which writes nothing."""
        try:
            response = self._run(self.client.rpc("shim_ingest", {"batch": {"batches": []}}))
        except (StoreUnavailable, APIError) as exc:
            log.debug("supabase ping failed: %s", exc)
            return False
        return bool(response.data == [])

    def summary(self) -> dict[str, Any]:
        return {"backend": "supabase", "url": self.url}

    def write(self, batches: Sequence[Batch], checked: bool = False) -> list[list[Stored]]:
        # ``checked`` changes nothing here: shim_ingest's ON CONFLICT settles duplicates anyway.
        if not self._checked:
            self.migrate()
        # ingest_payload gives text (for psycopg); the client wants the value it will encode.
        payload = orjson.loads(ingest_payload(batches, self.related_logs))
        outcomes = self._run(self.client.rpc("shim_ingest", {"batch": payload})).data
        return stored_from(batches, outcomes)

    def held(self, event_ids: Sequence[str], check_in_ids: Sequence[str]) -> Held:
        """A select per kind of id (per 100 ids, which keeps the URL short)."""
        if not self._checked and (event_ids or check_in_ids):
            self.migrate()
        events: set[str] = set()
        statuses: dict[str, str] = {}
        for start in range(0, len(event_ids), 100):
            chunk = list(event_ids[start:start + 100])
            events.update(row["event_id"] for row in self._run(
                self.client.table("error_logs").select("event_id").in_("event_id", chunk)
                .limit(len(chunk))).data)
        for start in range(0, len(check_in_ids), 100):
            chunk = list(check_in_ids[start:start + 100])
            statuses.update((row["check_in_id"], row["status"]) for row in self._run(
                self.client.table("check_ins").select("check_in_id,status")
                .in_("check_in_id", chunk).limit(len(chunk))).data)
        return Held(frozenset(events), statuses)

    # Retention: the same functions the Postgres store calls (0005_retention.sql), over RPC.

    def prune(self, cutoff: str, limit: int, dry_run: bool = False) -> tuple[int, int]:
        done = self._run(self.client.rpc("shim_prune", {"cutoff": cutoff, "lim": limit,
                                                        "dry": dry_run})).data
        return int(done["error_logs"]), int(done["check_ins"])

    def reclaim(self) -> int:
        return 0  # the database server's autovacuum makes the space reusable

    def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        return bool(self._run(self.client.rpc("shim_take_lease", {
            "lease": name, "holder": holder, "seconds": seconds})).data)

    # Reads: same arguments and row shapes as SQLiteReads and PostgresStore.

    def _rows(self, query: Callable[[], Query], limit: int | None = None) -> list[dict[str, Any]]:
        """The rows of ``query()``, fetched a page at a time, up to ``limit``."""
        found: list[dict[str, Any]] = []
        while limit is None or len(found) < limit:
            want = PAGE if limit is None else min(PAGE, limit - len(found))
            page = self._run(query().range(len(found), len(found) + want - 1)).data
            found.extend(page)
            if len(page) < want:
                break
        return [rows.plain(r, _TIMES) for r in found]

    def _count(self, table: str, column: str, value: str, since: tuple[str, str] | None = None,
               ) -> int:
        """How many rows of ``table`` have ``column = value`` (and ``since[0] >= since[1]``).

        A HEAD request: only the count travels (PostgREST's Content-Range)."""
        q = self.client.table(table).select("*", count=CountMethod.exact, head=True).eq(column, value)
        if since is not None:
            q = q.gte(*since)
        return int(self._run(q).count or 0)

    def grouping_since(self) -> str | None:
        found = self._rows(lambda: self.client.table("shim_meta").select("value")
                           .eq("key", "grouping_v2_since"), 1)
        return str(found[0]["value"]) if found else None

    def list_bugs(self, status: str | None = None, component: str | None = None,
                  workspace: str | None = None, since: str | None = None, sort: str = "last",
                  limit: int = 50) -> list[dict[str, Any]]:
        def query() -> Query:
            q = _filtered(self.client.table("bugs").select("*"),
                          rows.bug_conditions(status, component, workspace, since))
            for column, descending in rows.bug_order(sort):
                q = q.order(column, desc=descending)
            return q.order("bug_number")  # stable pages

        return self._rows(query, max(limit, 0))

    def get_bug(self, bug_number: str) -> dict[str, Any] | None:
        found = self._rows(
            lambda: self.client.table("bugs").select("*").eq("bug_number", bug_number), 1)
        return found[0] if found else None

    def status_history(self, bug_id: str) -> list[dict[str, Any]]:
        if not is_uuid(bug_id):
            return []
        return self._rows(lambda: self.client.table("status_changes").select("*")
                          .eq("bug_id", bug_id).order("at"))

    def bug_hashes(self, bug_id: str) -> list[dict[str, Any]]:
        if not is_uuid(bug_id):
            return []
        return self._rows(lambda: self.client.table("bug_hashes").select("hash,grouping_version")
                          .eq("bug_id", bug_id).order("grouping_version").order("hash"))

    def list_logs(self, level: str | None = None, component: str | None = None,
                  bug_id: str | None = None, after: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
        """The most recent logs, oldest first; ``after`` (a ``cursor``) gives only newer ones."""
        if bug_id is not None and not is_uuid(bug_id):
            return []
        conditions = rows.log_conditions(level, component, bug_id, after, cursor="seq")
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            # Keyset pages (seq below the last one seen): new rows cannot shift them.
            q = _filtered(self.client.table("error_logs").select("*"), conditions)
            if found:
                q = q.lt("seq", found[-1]["seq"])
            want = min(PAGE, limit - len(found))
            page = self._run(q.order("seq", desc=True).limit(want)).data
            found.extend(page)
            if len(page) < want:
                break
        numbers = self._bug_numbers({r["related_bug_id"] for r in found if r["related_bug_id"]})
        return [rows.log_row(plain, numbers.get(plain["related_bug_id"]))
                for plain in (rows.plain(row, _TIMES) for row in reversed(found))]

    def _bug_numbers(self, bug_ids: set[str]) -> dict[str, str]:
        numbers: dict[str, str] = {}
        ids = sorted(bug_ids)
        for start in range(0, len(ids), 100):  # keeps the URL short
            chunk = ids[start:start + 100]
            response = self._run(self.client.table("bugs").select("id,bug_number")
                                 .in_("id", chunk).limit(len(chunk)))
            numbers.update({row["id"]: row["bug_number"] for row in response.data})
        return numbers

    def bugs_after(self, bug_number: str, limit: int) -> list[dict[str, Any]]:
        return self._rows(lambda: self.client.table("bugs").select("*")
                          .gt("bug_number", bug_number).order("bug_number"), limit)

    def stats(self, hour_ago: str, day_ago: str) -> dict[str, Any]:
        # Supabase leaves PostgREST's aggregates off, so counts are HEAD requests per value.
        def levels(since: str) -> dict[str, int]:
            counts = {name: self._count("error_logs", "log_level", name, ("created_at", since))
                      for name in LEVEL_RANK}
            return {name: n for name, n in counts.items() if n}

        hours = {hour: datetime.fromisoformat(hour) for hour in (_hour(hour_ago), _hour(day_ago))}
        earliest = min(hours, key=hours.__getitem__)
        item_rows = self._rows(lambda: self.client.table("item_counts")
                               .select("hour,item_type,count").gte("hour", earliest)
                               .order("hour").order("item_type"))

        def items(since: str) -> dict[str, int]:
            totals: dict[str, int] = {}
            for row in item_rows:
                if datetime.fromisoformat(row["hour"]) >= hours[since]:
                    totals[row["item_type"]] = totals.get(row["item_type"], 0) + int(row["count"])
            return totals

        statuses = {status: self._count("bugs", "status", status)
                    for status in STATUSES}
        return {
            "levels": {"hour": levels(hour_ago), "day": levels(day_ago)},
            "items": {"hour": items(_hour(hour_ago)), "day": items(_hour(day_ago))},
            "bugs_by_status": {status: n for status, n in statuses.items() if n},
            "busiest": self._rows(lambda: self.client.table("bugs")
                                  .select("bug_number,title,status,occurrence_count,last_occurred_at")
                                  .gte("last_occurred_at", day_ago)
                                  .order("occurrence_count", desc=True), 5),
        }
