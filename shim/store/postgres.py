"""The shared store: one Postgres database that several shim processes (or machines) can write.

A ``write`` is one round trip: the batches, serialised once, go to the ``shim_ingest(jsonb)``
function (``migrations/postgres/0001_initial.sql``, as 0003 replaced it), which does what
``SQLiteStore._write`` does in one implicit transaction. Races between processes are settled by
the database: ``ON CONFLICT`` on ``event_id`` and on ``fingerprint``, and bug ids that follow from
fingerprints.

Connections come from a small pool in autocommit mode (a single statement is its own transaction,
so no BEGIN/COMMIT round trips) with ``prepare_threshold=None``, which keeps it usable behind
transaction-mode poolers (PgBouncer, Supabase's Supavisor) that cannot hold prepared statements.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from shim.core.records import Batch, Stored
from shim.store import StoreUnavailable, rows
from shim.store import migrate as schema
from shim.store.postgres_browse import PostgresBrowse
from shim.store.rows import ingest_payload, is_uuid, stored_from
from shim.writer.held import Held

log = logging.getLogger("shim.store")


def redacted(url: str) -> str:
    """``url`` without its password, for ``/healthz`` and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PostgresStore(PostgresBrowse):  # the web page's reads: postgres_browse
    overlaps_commits = True  # a commit waits on the database server (shim/writer/group.py)

    def __init__(self, url: str, related_logs: int = 20, pool_size: int = 4,
                 connect_timeout: float = 5.0, migrate: bool = True) -> None:
        self.url = url
        self.related_logs = related_logs
        self.connect_timeout = max(1, int(connect_timeout))
        self.pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url, min_size=1, max_size=pool_size, timeout=connect_timeout, open=False,
            name="shim", connection_class=psycopg.Connection[dict[str, Any]],
            kwargs={"autocommit": True, "prepare_threshold": None, "row_factory": dict_row,
                    "connect_timeout": self.connect_timeout})
        self._migrated = False
        if not migrate:
            return  # `shim migrate` calls migrate() itself; the pool opens on first use
        self.pool.open()
        try:
            self.migrate()
        except psycopg.OperationalError as exc:
            # Like a locked SQLite file: the server starts, keeps events in the backup log, and
            # the first write that reaches the database migrates it.
            log.warning("postgres store not reachable yet (%s); will migrate on first write", exc)

    def _connection(self, timeout: float | None = None
                    ) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        self.pool.open()  # nothing to do once open
        return self.pool.connection(timeout=timeout)

    def migrate(self) -> list[str]:
        """Apply the schema files this database has not seen; the names of those applied.

        On a connection of its own, not the pool's: ``shim migrate`` then opens no pool."""
        with psycopg.connect(self.url, autocommit=True, prepare_threshold=None,
                             connect_timeout=self.connect_timeout) as conn:
            applied = schema.migrate(conn)
        self._migrated = True
        return applied

    def close(self) -> None:
        self.pool.close()

    def ping(self) -> bool:
        """Whether the database answers and takes writes (is not a read-only standby)."""
        try:
            with self._connection(timeout=2.0) as conn:
                # A standby, or a database set read-only (Supabase does that to a full disk).
                row = conn.execute(
                    "SELECT pg_is_in_recovery()"
                    " OR current_setting('transaction_read_only')::boolean AS read_only"
                ).fetchone()
                if row is None or row["read_only"]:
                    _drop(conn)
                    return False
                return True
        except (psycopg.Error, TimeoutError) as exc:
            log.debug("postgres ping failed: %s", exc)
            return False

    def summary(self) -> dict[str, Any]:
        return {"backend": "postgres", "url": redacted(self.url)}

    def write(self, batches: Sequence[Batch], checked: bool = False) -> list[list[Stored]]:
        # ``checked`` changes nothing here: shim_ingest's ON CONFLICT settles duplicates anyway.
        payload = ingest_payload(batches, self.related_logs)
        try:
            if not self._migrated:
                self.migrate()
            with self._connection() as conn:
                try:
                    row = conn.execute("SELECT shim_ingest(%s::jsonb) AS results",
                                       (payload,)).fetchone()
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    # The store is down, not the events poison: they wait in the backup log.
                    _drop(conn)
                    raise StoreUnavailable(f"the database takes no writes: {exc}") from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"{redacted(self.url)}: {exc}") from exc
        assert row is not None
        return stored_from(batches, row["results"])

    def held(self, event_ids: Sequence[str], check_in_ids: Sequence[str]) -> Held:
        """One round trip for both kinds of id (each an index lookup)."""
        if not event_ids and not check_in_ids:
            return Held()
        try:
            if not self._migrated:
                self.migrate()
            with self._connection() as conn:
                found = conn.execute(
                    "SELECT event_id AS id, NULL AS status FROM error_logs"
                    " WHERE event_id = ANY(%(events)s)"
                    " UNION ALL SELECT check_in_id, status FROM check_ins"
                    " WHERE check_in_id = ANY(%(check_ins)s)",
                    {"events": list(event_ids), "check_ins": list(check_in_ids)}).fetchall()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"{redacted(self.url)}: {exc}") from exc
        return Held(frozenset(r["id"] for r in found if r["status"] is None),
                    {r["id"]: r["status"] for r in found if r["status"] is not None})

    # Retention: migrations/postgres/0005_retention.sql does the work.

    def prune(self, cutoff: str, limit: int, dry_run: bool = False) -> tuple[int, int]:
        row = self._one("SELECT shim_prune(%s::timestamptz, %s, %s) AS done",
                        (cutoff, limit, dry_run))
        return int(row["done"]["error_logs"]), int(row["done"]["check_ins"])

    def reclaim(self) -> int:
        return 0  # autovacuum makes deleted rows' space reusable; the files do not shrink

    def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        row = self._one("SELECT shim_take_lease(%s, %s, %s) AS taken", (name, holder, seconds))
        return bool(row["taken"])

    def _one(self, sql: str, params: Sequence[Any]) -> dict[str, Any]:
        try:
            if not self._migrated:
                self.migrate()
            with self._connection() as conn:
                row = conn.execute(sql.encode(), params).fetchone()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"{redacted(self.url)}: {exc}") from exc
        assert row is not None
        return row

    def grouping_since(self) -> str | None:
        if not self._migrated:
            self.migrate()
        found = self._all("SELECT value FROM shim_meta WHERE key = 'grouping_v2_since'")
        return str(found[0]["value"]) if found else None

    # Reads: same arguments and row shapes as SQLiteReads.

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._connection() as conn:
            return [rows.plain(r) for r in conn.execute(sql.encode(), params).fetchall()]

    def list_bugs(self, status: str | None = None, component: str | None = None,
                  workspace: str | None = None, since: str | None = None, sort: str = "last",
                  limit: int = 50) -> list[dict[str, Any]]:
        where, params = rows.sql_where(rows.bug_conditions(status, component, workspace, since),
                                       "%s", casts={"last_occurred_at": "::timestamptz"})
        return self._all(f"SELECT * FROM bugs WHERE {where}"
                         f" ORDER BY {rows.sql_order(rows.bug_order(sort))} LIMIT %s",
                         [*params, limit])

    def get_bug(self, bug_number: str) -> dict[str, Any] | None:
        found = self._all("SELECT * FROM bugs WHERE bug_number = %s", (bug_number,))
        return found[0] if found else None

    def status_history(self, bug_id: str) -> list[dict[str, Any]]:
        if not is_uuid(bug_id):
            return []
        return self._all("SELECT * FROM status_changes WHERE bug_id = %s::uuid ORDER BY at",
                         (bug_id,))

    def bug_hashes(self, bug_id: str) -> list[dict[str, Any]]:
        if not is_uuid(bug_id):
            return []
        return self._all("SELECT hash, grouping_version FROM bug_hashes WHERE bug_id = %s::uuid"
                         " ORDER BY grouping_version, hash", (bug_id,))

    def list_logs(self, level: str | None = None, component: str | None = None,
                  bug_id: str | None = None, after: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
        """The most recent logs, oldest first; ``after`` (a ``cursor``) gives only newer ones."""
        return self._logs(level, component, bug_id, after, "l.seq DESC", limit)[::-1]

    def _logs(self, level: str | None, component: str | None, bug_id: str | None,
              after: int | None, order: str, limit: int) -> list[dict[str, Any]]:
        """error_logs rows (each with its bug number) matching the filters, in ``order``: the
        store's order of arrival (the CLI) or event time (the web page)."""
        if bug_id is not None and not is_uuid(bug_id):
            return []
        where, params = rows.sql_where(
            rows.log_conditions(level, component, bug_id, after, cursor="seq"), "%s", prefix="l.",
            casts={"related_bug_id": "::uuid"})
        found = self._all(
            "SELECT l.*, b.bug_number FROM error_logs AS l"
            " LEFT JOIN bugs AS b ON b.id = l.related_bug_id"
            f" WHERE {where} ORDER BY {order} LIMIT %s", [*params, limit])
        return [rows.log_row(row, row.pop("bug_number")) for row in found]

    def bugs_after(self, bug_number: str, limit: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM bugs WHERE bug_number > %s ORDER BY bug_number LIMIT %s",
                         (bug_number, limit))

    def stats(self, hour_ago: str, day_ago: str) -> dict[str, Any]:
        def per(sql: str, params: Sequence[Any]) -> dict[str, int]:
            return {str(r["key"]): int(r["n"]) for r in self._all(sql, params)}

        levels = ("SELECT log_level AS key, count(*) AS n FROM error_logs"
                  " WHERE created_at >= %s::timestamptz GROUP BY 1")
        items = ("SELECT item_type AS key, sum(count) AS n FROM item_counts"
                 " WHERE hour >= date_trunc('hour', %s::timestamptz, 'UTC') GROUP BY 1")
        return {
            "levels": {"hour": per(levels, (hour_ago,)), "day": per(levels, (day_ago,))},
            "items": {"hour": per(items, (hour_ago,)), "day": per(items, (day_ago,))},
            "bugs_by_status": per("SELECT status AS key, count(*) AS n FROM bugs GROUP BY 1", ()),
            "busiest": self._all(
                "SELECT bug_number, title, status, occurrence_count, last_occurred_at FROM bugs"
                " WHERE last_occurred_at >= %s::timestamptz ORDER BY occurrence_count DESC LIMIT 5",
                (day_ago,)),
        }


def _drop(conn: psycopg.Connection[Any]) -> None:
    """Close ``conn`` so the pool replaces it: a session keeps the read-only default it started
    with, so only a new one sees the database writable again."""
    conn.close()

