"""The Postgres schema runner: applies ``shim/store/migrations/postgres/NNNN_name.sql`` in order.

Each file runs once and its version is recorded in ``schema_migrations``; all due files run in one
transaction (all or nothing) under a transaction-scoped advisory lock, so two processes starting at once
apply a file once (the second waits, then finds nothing to do); a transaction-scoped lock also works
behind transaction-mode poolers (PgBouncer, Supavisor), where session locks do not. ``script()`` is
the same as one SQL text, for databases the shim cannot reach (Supabase's SQL editor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import tuple_row

# Any constant shared by every shim process; "shim" in ASCII.
LOCK_KEY = 0x7368696D
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_SCHEMA_MIGRATIONS = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
                      " version integer PRIMARY KEY,"
                      " applied_at timestamptz NOT NULL DEFAULT now())")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The packaged migrations, in version order (they ship as package data of ``shim.store``)."""
    folder = resources.files("shim.store").joinpath("migrations", "postgres")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {[m.name for m in found]}")
    return found


def latest_version() -> int:
    return max((m.version for m in migrations()), default=0)


def script() -> str:
    """Every migration as one SQL script, for Supabase's SQL editor or ``psql -f``.

    It does what ``migrate`` does, in one transaction, and records the versions, so ``shim migrate``
    and the server find nothing left to do afterwards. The files are written to be run again (see
    0001), so pasting the script into a database that already has them changes nothing."""
    parts = ["-- The shim's Postgres schema (`shim migrate --sql`): paste it into Supabase's SQL",
             "-- editor, or run psql -v ON_ERROR_STOP=1 -f FILE. All or nothing.",
             "BEGIN;",
             f"SELECT pg_advisory_xact_lock({LOCK_KEY});",
             _SCHEMA_MIGRATIONS + ";"]
    for step in migrations():
        parts += [f"\n-- {step.name}", step.sql.strip(),
                  f"INSERT INTO schema_migrations (version) VALUES ({step.version})"
                  " ON CONFLICT (version) DO NOTHING;"]
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply every migration ``conn``'s database has not seen; the names of those applied.

    ``conn`` must be in autocommit mode: this opens (and commits) its own transaction."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(_SCHEMA_MIGRATIONS)
        with conn.cursor(row_factory=tuple_row) as cursor:
            done = {row[0] for row in cursor.execute("SELECT version FROM schema_migrations")}
        for step in migrations():
            if step.version in done:
                continue
            # No parameters: psycopg sends the file as one simple query, several statements.
            conn.execute(step.sql.encode())
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (step.version,))
            applied.append(step.name)
    return applied
