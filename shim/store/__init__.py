"""Storage: one protocol, one backend per URL scheme. ``open_store(url)`` picks the backend.

Stores are synchronous and are driven from the writer's single thread; routes never touch them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from shim.core.records import Batch, Stored
from shim.store.browse import BugQuery
from shim.writer.held import Held


class Store(Protocol):
    # True when a commit mostly waits on another process (a database server), so the writer lets
    # the event loop ingest the next requests meanwhile (see shim/writer/group.py).
    overlaps_commits: bool

    def write(self, batches: Sequence[Batch], checked: bool = False) -> list[list[Stored]]:
        """Store every batch in one transaction; per batch, what happened to each error_log.
        ``checked``: ``held`` has just said none of their event ids is stored (a store may then
        skip looking them up again, as long as an id stored meanwhile is still stored once)."""
        ...

    def held(self, event_ids: Sequence[str], check_in_ids: Sequence[str]) -> Held:
        """Which of these ids the store holds (the journal leaves those items out of a commit,
        see shim/writer/held.py); raises ``StoreUnavailable`` when it cannot tell."""
        ...

    def migrate(self) -> list[str]:
        """Apply the schema steps the database has not seen: the names of those applied (none
        when it is up to date). Opening a store migrates it already; ``shim migrate`` opens one
        with ``migrate=False`` and calls this (``apply_migrations``)."""
        ...

    def ping(self) -> bool:
        """Whether the store takes writes right now."""
        ...

    # Retention (shim/writer/retention.py).
    def prune(self, cutoff: str, limit: int, dry_run: bool = False) -> tuple[int, int]:
        """One batch: at most ``limit`` error_logs rows and ``limit`` check-ins created before
        ``cutoff`` (ISO 8601 UTC) that nothing needs deleted, in a short transaction of their own;
        (rows, check-ins) deleted. Kept whatever their age: each bug's first and latest events
        and the events that reopened it, each monitor's latest check-in. Bugs are never deleted.
        ``dry_run``: nothing deleted, every such row counted."""
        ...

    def reclaim(self) -> int:
        """Give the space prunes freed back to the file system where this backend holds it
        (SQLite's incremental vacuum); pages returned (0 where the database server does it)."""
        ...

    def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Whether ``holder`` now holds lease ``name`` for ``seconds`` (it was free, expired, or
        already its own): one process of all those sharing the store runs the hourly prune."""
        ...

    def grouping_since(self) -> str | None:
        """When the transition from grouping version 1 to 2 started (ISO 8601 UTC): the
        migration that brought version 2 to a database that had bugs. None: no transition."""
        ...

    def summary(self) -> dict[str, Any]:
        """What ``/healthz`` says about the store."""
        ...

    def close(self) -> None: ...

    # Reads, for the CLI and the snapshot.
    def list_bugs(self, status: str | None = None, component: str | None = None,
                  workspace: str | None = None, since: str | None = None, sort: str = "last",
                  limit: int = 50) -> list[dict[str, Any]]: ...

    def get_bug(self, bug_number: str) -> dict[str, Any] | None: ...

    def status_history(self, bug_id: str) -> list[dict[str, Any]]: ...

    def bug_hashes(self, bug_id: str) -> list[dict[str, Any]]:
        """The hashes events find the bug by (``hash``, ``grouping_version``), by version."""
        ...

    def list_logs(self, level: str | None = None, component: str | None = None,
                  bug_id: str | None = None, after: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]: ...

    def bugs_after(self, bug_number: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` bugs numbered after ``bug_number``, in number order."""
        ...

    def stats(self, hour_ago: str, day_ago: str) -> dict[str, Any]: ...

    # Reads for the web page (shim/store/browse.py; each backend's *_browse module).
    def search_bugs(self, query: BugQuery) -> list[dict[str, Any]]:
        """One page of bugs as ``query`` says (filters, order, keyset cursor)."""
        ...

    def bug_event(self, bug_id: str, go: str = "latest",
                  event_id: str | None = None) -> dict[str, Any] | None:
        """One of the bug's events, whole (context decoded): the ``first`` or ``latest``, the
        one before (``prev``) or after (``next``) ``event_id`` in event time order, or ``this``
        one; with ``is_first`` and ``is_latest`` set. None when there is none."""
        ...

    def bug_hours(self, bug_ids: Sequence[str], since: str) -> dict[str, dict[str, int]]:
        """Per bug id, its events per hour (``2026-11-28T13``, UTC) since ``since``."""
        ...

    def level_hours(self, since: str) -> dict[str, dict[str, int]]:
        """Per level, events (error_logs rows) per hour since ``since``."""
        ...

    def new_bugs_per_day(self, since: str) -> dict[str, int]:
        """Bugs first seen per day (``2026-11-28``) since ``since``."""
        ...

    def top_components(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        """The components with the most events since ``since``: ``component``, ``count``."""
        ...

    def filter_values(self) -> dict[str, list[str]]:
        """The choices of the bug list's filters: components and workspaces of bugs,
        environments and releases of the latest events (``browse.RECENT_LOGS``)."""
        ...

    def recent_check_ins(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The latest check-ins, newest first."""
        ...

    def recent_logs(self, level: str | None = None, component: str | None = None,
                    bug_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """``list_logs``'s rows and filters, the latest by event time first (each filter walks
        an index in that order, where ``list_logs``'s arrival order would sort them all)."""
        ...


def iter_bugs(store: Store, page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every bug in number order, a page at a time, so that writing the snapshot of a million
    bugs does not hold them all. Each page is read as it is then (not one snapshot)."""
    after = ""
    while True:
        bugs = store.bugs_after(after, page)
        yield from bugs
        if len(bugs) < page:
            return
        after = str(bugs[-1]["bug_number"])


class StoreUnavailable(ConnectionError):
    """Raised by a store's ``write`` when the store itself failed (down, locked, read-only, disk
    full, connection lost), not the data: the journal then keeps the events in the backup log and
    retries, instead of setting them aside as refused. The writer answers a request with it when
    its events could not be kept at all (the backup log not writable, the writer stopped): the app
    turns it into a 503, never a 2xx."""


class UnsupportedStore(ValueError):
    pass


class MigrationError(RuntimeError):
    """The schema could not be brought up to date (database unreachable, or a step failed)."""


def apply_migrations(url: str) -> tuple[list[str], int]:
    """Apply the schema steps the database at ``url`` has not seen (creating it if it is a new
    SQLite file): the names of those applied, and the schema version it is at now."""
    opened: Callable[[], Store]
    if url.startswith("sqlite://"):
        import sqlite3

        from shim.store.sqlite import SCHEMA_VERSION, SQLiteStore

        path = sqlite_path(url)
        opened, version, label = (lambda: SQLiteStore(path, migrate=False)), SCHEMA_VERSION, url
        errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)
    elif url.startswith(("postgresql://", "postgres://")):
        import psycopg

        from shim.store import migrate
        from shim.store.postgres import PostgresStore, redacted

        opened = lambda: PostgresStore(url, connect_timeout=10, migrate=False)  # noqa: E731
        version, label, errors = migrate.latest_version(), redacted(url), (psycopg.Error,)
    elif url in ("supabase", "supabase://"):
        # Said before asking for the project's key: its store could only check (SupabaseStore).
        raise MigrationError("the Supabase HTTP API cannot create tables: paste the output of "
                             "`shim migrate --sql` into the SQL editor, or run `shim migrate "
                             "--database <its postgresql:// connection string>`")
    else:
        raise UnsupportedStore(f"no migrations for {url.split(':', 1)[0]!r} URLs;"
                               " use sqlite:///PATH or postgresql://…")
    try:
        store = opened()
        try:
            applied = store.migrate()
            # An SQLite file made before incremental auto-vacuum never shrinks after a prune:
            # converted here, by the operator's command (it rewrites the file once).
            convert = getattr(store, "convert_to_incremental_vacuum", None)
            if convert is not None and convert():
                applied.append("incremental auto-vacuum (the file rewritten once)")
            return applied, version
        finally:
            store.close()
    except errors as exc:
        raise MigrationError(f"{label}: {str(exc).strip()}") from None


def open_store(url: str, related_logs: int = 20, server: bool = False,
               processes: int = 1) -> Store:
    """The store for ``url``; ``server=True`` also starts the store's background upkeep.
    ``processes`` servers share it (``--workers``): SQLite's page cache is split between them."""
    if url.startswith("sqlite://"):
        from shim.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), related_logs=related_logs,
                           background_checkpoints=server, cache_mib=max(16, 64 // processes))
    if url.startswith(("postgresql://", "postgres://")):
        from shim.store.postgres import PostgresStore

        return PostgresStore(url, related_logs=related_logs)
    if url in ("supabase", "supabase://"):
        return _supabase_store(related_logs)
    raise UnsupportedStore(f"no store for {url.split(':', 1)[0]!r} URLs;"
                           " use sqlite:///PATH, postgresql://… or supabase")


def _supabase_store(related_logs: int) -> Store:
    """Supabase's HTTP API; the project and its service key come from SUPABASE_URL, SUPABASE_KEY."""
    missing = [name for name in ("SUPABASE_URL", "SUPABASE_KEY") if not os.environ.get(name)]
    if missing:
        raise UnsupportedStore(f"SHIM_DATABASE_URL=supabase needs {' and '.join(missing)}"
                               " (the project URL and its service key)")
    try:
        from shim.store.supabase import SupabaseStore
    except ImportError as exc:
        raise UnsupportedStore(f"the Supabase store needs the supabase client ({exc});"
                               " install the supabase extra:"
                               " pip install -c requirements/lock.txt '.[supabase]'") from exc
    return SupabaseStore(os.environ["SUPABASE_URL"], os.environ["SUPABASE_KEY"],
                         related_logs=related_logs)


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``."""
    if not url.startswith("sqlite:///"):
        raise UnsupportedStore(f"{url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    return url.removeprefix("sqlite:///") or ":memory:"
