"""The shared store: one Postgres database that several shim processes (or machines) can write.

A ``write`` is one round trip: the batches, serialised once, go to the ``shim_ingest(jsonb)``
function (``migrations/postgres/0001_initial.sql``), which does what ``SQLiteStore._write`` does in
one implicit transaction. Races between processes are settled by the database: ``ON CONFLICT`` on
``event_id`` and on ``fingerprint``, and bug ids that follow from fingerprints.

Connections come from a small pool in autocommit mode (a single statement is its own transaction,
so no BEGIN/COMMIT round trips) with ``prepare_threshold=None``, which keeps it usable behind
transaction-mode poolers (PgBouncer, Supabase's Supavisor) that cannot hold prepared statements.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from shim.core.levels import LEVEL_RANK
from shim.core.records import Batch, Stored
from shim.store import StoreUnavailable
from shim.store import migrate as schema
from shim.store.sqlite import bug_id_for
from shim.writer.held import Held

log = logging.getLogger("shim.store")


def _iso(moment: datetime) -> str:
    """The text the SQLite store keeps for a time, so both stores read back the same."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the SQLite store returns it: ids and times as text, flags as 0/1."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = _iso(value)
        elif isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, bool | Decimal):  # sum() of bigint comes back as numeric
            value = int(value)
        out[key] = value
    return out


def _without_nul(value: Any) -> Any:
    """Postgres text and jsonb cannot hold U+0000, which SDK payloads may carry."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str)


def ingest_payload(batches: Sequence[Batch], related_logs: int, reuse_json: bool = True) -> str:
    """The argument of ``shim_ingest``: the batches as JSON, each bug row with its bug id.
    Contexts go in as already serialised for the backup log, unless ``reuse_json`` is off."""
    payload = {
        "related_logs": related_logs,
        "batches": [{
            "received_at": batch.received_at,
            "error_logs": [{
                "id": row.id, "event_id": row.event_id, "project_id": row.project_id,
                "log_level": row.log_level, "component": row.component, "message": row.message,
                "context": orjson.Fragment(row.context_json) if reuse_json else row.context,
                "error_type": row.error_type,
                "error_message": row.error_message, "stack_trace": row.stack_trace,
                "request_id": row.request_id, "workspace_id": row.workspace_id,
                "fingerprint": row.fingerprint, "item_type": row.item_type,
                "created_at": row.created_at,
                "bug": None if row.bug is None else {
                    "title": row.bug.title, "description": row.bug.description,
                    "severity": row.bug.severity, "grouping_version": row.bug.grouping_version},
                "bug_id": None if row.bug is None else bug_id_for(row.fingerprint),
            } for row in batch.error_logs],
            "check_ins": [{
                "check_in_id": c.check_in_id, "project_id": c.project_id,
                "monitor_slug": c.monitor_slug, "status": c.status, "duration": c.duration,
                "environment": c.environment, "release": c.release,
                "monitor_config": c.monitor_config or None, "created_at": c.created_at,
            } for c in batch.check_ins],
            "item_counts": batch.item_counts,
            "status_changes": [{
                "change_id": s.change_id, "bug_number": s.bug_number, "status": s.status,
                "assignee": s.assignee, "at": s.at, "by": s.by,
            } for s in batch.status_changes],
        } for batch in batches],
    }
    text = _dumps(payload)
    if b"\\u0000" in text:  # rare: only then pay for a second pass
        if reuse_json:
            return ingest_payload(batches, related_logs, reuse_json=False)
        text = _dumps(_without_nul(payload))
    return text.decode()


def stored_from(batches: Sequence[Batch], outcomes: Sequence[Any]) -> list[list[Stored]]:
    """What ``shim_ingest`` returned (per batch, per event: duplicate, bug id, bug number), as the
    Store protocol says it: shared by every backend that calls the function."""
    return [
        [Stored(event_id=log_row.event_id, duplicate=bool(duplicate),
                bug_id=None if bug_id is None else str(bug_id), bug_number=bug_number)
         for log_row, (duplicate, bug_id, bug_number) in zip(batch.error_logs, results, strict=True)]
        for batch, results in zip(batches, outcomes, strict=True)]


def redacted(url: str) -> str:
    """``url`` without its password, for ``/healthz`` and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PostgresStore:
    overlaps_commits = True  # a commit waits on the database server (shim/writer/group.py)

    def __init__(self, url: str, related_logs: int = 20, pool_size: int = 4,
                 connect_timeout: float = 5.0) -> None:
        self.url = url
        self.related_logs = related_logs
        self.pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url, min_size=1, max_size=pool_size, timeout=connect_timeout, open=True,
            name="shim", connection_class=psycopg.Connection[dict[str, Any]],
            kwargs={"autocommit": True, "prepare_threshold": None, "row_factory": dict_row,
                    "connect_timeout": max(1, int(connect_timeout))})
        self._migrated = False
        try:
            self.migrate()
        except psycopg.OperationalError as exc:
            # Like a locked SQLite file: the server starts, keeps events in the backup log, and
            # the first write that reaches the database migrates it.
            log.warning("postgres store not reachable yet (%s); will migrate on first write", exc)

    def migrate(self) -> int:
        """Apply the schema files this database has not seen; return how many ran."""
        with self.pool.connection() as conn:
            applied = schema.migrate(conn)
        self._migrated = True
        return len(applied)

    def close(self) -> None:
        self.pool.close()

    def ping(self) -> bool:
        """Whether the database answers and takes writes (is not a read-only standby)."""
        try:
            with self.pool.connection(timeout=2.0) as conn:
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
            with self.pool.connection() as conn:
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
            with self.pool.connection() as conn:
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

    # Reads: same arguments and row shapes as SQLiteReads.

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            return [_plain(r) for r in conn.execute(sql.encode(), params).fetchall()]

    def list_bugs(self, status: str | None = None, component: str | None = None,
                  workspace: str | None = None, since: str | None = None, sort: str = "last",
                  limit: int = 50) -> list[dict[str, Any]]:
        where: list[str] = ["true"]
        params: list[Any] = []
        for column, value in (("status", status), ("component", component),
                              ("workspace_id", workspace)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            where.append("last_occurred_at >= %s::timestamptz")
            params.append(since)
        order = "occurrence_count DESC, last_occurred_at DESC" if sort == "count" \
            else "last_occurred_at DESC"
        return self._all(f"SELECT * FROM bugs WHERE {' AND '.join(where)} ORDER BY {order}"
                         " LIMIT %s", [*params, limit])

    def get_bug(self, bug_number: str) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM bugs WHERE bug_number = %s", (bug_number,))
        return rows[0] if rows else None

    def status_history(self, bug_id: str) -> list[dict[str, Any]]:
        if not is_uuid(bug_id):
            return []
        return self._all("SELECT * FROM status_changes WHERE bug_id = %s::uuid ORDER BY at",
                         (bug_id,))

    def list_logs(self, level: str | None = None, component: str | None = None,
                  bug_id: str | None = None, after: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
        """The most recent logs, oldest first; ``after`` (a ``cursor``) gives only newer ones."""
        where: list[str] = ["true"]
        params: list[Any] = []
        if level is not None:
            where.append("l.log_level = ANY(%s)")
            params.append([name for name, rank in LEVEL_RANK.items()
                           if rank >= LEVEL_RANK[level]])
        if component is not None:
            where.append("l.component = %s")
            params.append(component)
        if bug_id is not None:
            if not is_uuid(bug_id):
                return []
            where.append("l.related_bug_id = %s::uuid")
            params.append(bug_id)
        if after is not None:
            where.append("l.seq > %s")
            params.append(after)
        rows = self._all(
            "SELECT l.seq AS cursor, l.*, b.bug_number FROM error_logs AS l"
            " LEFT JOIN bugs AS b ON b.id = l.related_bug_id"
            f" WHERE {' AND '.join(where)} ORDER BY l.seq DESC LIMIT %s", [*params, limit])
        for row in rows:
            del row["seq"]  # SQLite's rowid is not a column either: it is the cursor
        return rows[::-1]

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


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
