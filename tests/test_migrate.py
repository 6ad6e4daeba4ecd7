"""`shim migrate`, run for real (``python -m shim migrate``): a fresh Postgres database gets every
table, index and RLS switch; a database of the in-house tracker (``fixtures/legacy_schema.sql``, with
rows) is upgraded in place, twice, keeping every row and filling the new columns; the shim then
writes to it; ``--sql`` pasted as it is does the same; and an SQLite path becomes a database.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pg import new_database
from test_store_contract import batch, event, status

from shim.store import iter_bugs
from shim.store.migrate import migrations
from shim.store.postgres import PostgresStore

LEGACY_SQL = (Path(__file__).parent / "fixtures" / "legacy_schema.sql").read_text()
TABLES = ("bugs", "error_logs", "check_ins", "item_counts", "status_changes", "schema_migrations",
          "shim_leases", "bug_hashes", "shim_meta")
INDEXES = {
    "bugs": {"bugs_fingerprint_key", "bugs_bug_number_key", "bugs_open_last", "bugs_last"},
    "error_logs": {"error_logs_event_id_key", "error_logs_created", "error_logs_component",
                   "error_logs_bug"},
}
# What the fixture's free-form words become: (severity, priority, status) per bug number.
MAPPED = {
    "BUG-00001": ("critical", "urgent", "open"),
    "BUG-00002": ("high", "high", "in_progress"),  # High, P1, In Progress
    "BUG-00005": ("high", "high", "resolved"),  # major, (none), fixed
    "BUG-00007": ("medium", "medium", "closed"),  # (none), (none), wont_fix
}


def shim_migrate(tmp_path: Path, *args: str, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
    done = subprocess.run([sys.executable, "-m", "shim", "migrate", *args],
                          env={**clean, "SHIM_DATA_DIR": str(tmp_path / "data"), **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done


def query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def execute(url: str, script: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(script.encode())  # no parameters: one simple query, many statements


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with new_database() as url:
        yield url


@pytest.fixture
def legacy_url(postgres_url: str) -> str:
    """A database as the in-house tracker's seed script left it, with its rows."""
    execute(postgres_url, LEGACY_SQL)
    return postgres_url


def rows_by_id(url: str, table: str) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): r for r in query(url, f"SELECT * FROM {table}")}


def columns(url: str) -> dict[tuple[str, str], tuple[str, str, str | None]]:
    return {(r["table_name"], r["column_name"]): (r["data_type"], r["is_nullable"],
                                                   r["is_identity"])
            for r in query(url, "SELECT table_name, column_name, data_type, is_nullable,"
                           " is_identity FROM information_schema.columns"
                           " WHERE table_schema = 'public'")}


def check_schema(url: str) -> None:
    """Every table, the indexes of the common queries, RLS on and no policies."""
    rls = {r["relname"]: r["relrowsecurity"] for r in query(
        url, "SELECT relname, relrowsecurity FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'")}
    assert {name: rls.get(name) for name in TABLES} == dict.fromkeys(TABLES, True)
    assert query(url, "SELECT * FROM pg_policies WHERE schemaname = 'public'") == []
    for table, names in INDEXES.items():
        found = {r["indexname"] for r in query(
            url, "SELECT indexname FROM pg_indexes WHERE tablename = %s", table)}
        assert names <= found, table
    unique = {r["indexname"] for r in query(
        url, "SELECT indexname FROM pg_indexes WHERE indexdef LIKE 'CREATE UNIQUE INDEX%%'")}
    assert {"bugs_fingerprint_key", "bugs_bug_number_key", "error_logs_event_id_key"} <= unique
    (routine,) = query(url, "SELECT count(*) AS n FROM pg_proc WHERE proname = 'shim_ingest'")
    assert routine["n"] == 1
    assert query(url, "SELECT version FROM schema_migrations ORDER BY 1") == [
        {"version": m.version} for m in migrations()]
    assert [m.version for m in migrations()][:3] == [1, 2, 3]
    (context,) = query(url, "SELECT attcompression FROM pg_attribute"
                       " WHERE attrelid = 'error_logs'::regclass AND attname = 'context'")
    assert context["attcompression"] == "l"  # lz4 (this server has it)


def test_a_fresh_database_gets_everything(tmp_path: Path, postgres_url: str) -> None:
    first = shim_migrate(tmp_path, "--database", postgres_url)
    assert first.stdout.splitlines()[:2] == ["applied 0001_initial.sql",
                                              "applied 0002_lz4_context.sql"]
    check_schema(postgres_url)
    again = shim_migrate(tmp_path, "--database", postgres_url, "--json")
    assert json.loads(again.stdout)["applied"] == []


def test_a_legacy_database_is_upgraded_in_place_twice(tmp_path: Path, legacy_url: str) -> None:
    old_bugs, old_logs = rows_by_id(legacy_url, "bugs"), rows_by_id(legacy_url, "error_logs")
    assert (len(old_bugs), len(old_logs)) == (4, 6)

    first = shim_migrate(tmp_path, "--database", legacy_url)
    assert "applied 0001_initial.sql" in first.stdout
    second = shim_migrate(tmp_path, "--database", legacy_url)
    assert second.stdout.startswith("nothing to do:")
    check_schema(legacy_url)

    bugs, logs = rows_by_id(legacy_url, "bugs"), rows_by_id(legacy_url, "error_logs")
    assert set(bugs) == set(old_bugs) and set(logs) == set(old_logs)
    mapped = {"severity", "priority", "status", "log_level", "workspace_id", "updated_at"}
    for new, old in [*((bugs[i], r) for i, r in old_bugs.items()),
                     *((logs[i], r) for i, r in old_logs.items())]:
        assert {k: v for k, v in new.items() if k in old and k not in mapped} == \
            {k: v for k, v in old.items() if k not in mapped}
        assert new["workspace_id"] == (None if old["workspace_id"] is None
                                       else str(old["workspace_id"]))

    for bug_id, bug in bugs.items():
        related = sorted((r for r in logs.values() if str(r["related_bug_id"]) == bug_id),
                         key=lambda r: r["created_at"])
        assert (bug["severity"], bug["priority"], bug["status"]) == MAPPED[bug["bug_number"]]
        assert bug["fingerprint"] == "legacy:" + hashlib.md5(bug_id.encode()).hexdigest()
        assert bug["grouping_version"] == 0 and bug["is_regression"] is False
        assert bug["occurrence_count"] == max(1, len(related))
        assert bug["first_occurred_at"] == (related[0] if related else bug)["created_at"]
        assert bug["last_occurred_at"] == (related[-1] if related else bug)["created_at"]
        assert bug["related_log_ids"] == [str(r["id"]) for r in related]
        assert bug["updated_at"] == (old_bugs[bug_id]["updated_at"] or bug["created_at"])
        assert (bug["resolved_at"] is not None) == (bug["status"] == "resolved")
    # Two bugs of the same title stay two bugs.
    assert len({b["fingerprint"] for b in bugs.values()}) == 4
    assert len({b["title"] for b in bugs.values()}) == 3

    levels = {"CRITICAL": "critical", "warn": "warning"}
    for log_id, row in logs.items():
        old = old_logs[log_id]
        assert row["log_level"] == levels.get(old["log_level"], old["log_level"])
        assert row["event_id"] == uuid.UUID(log_id).hex
        assert row["received_at"] == row["created_at"] and row["item_type"] == "event"
        if row["related_bug_id"] is not None:
            assert row["fingerprint"] == bugs[str(row["related_bug_id"])]["fingerprint"]
        else:
            assert row["fingerprint"].startswith("legacy:")
    assert len({r["event_id"] for r in logs.values()}) == 6
    # The seq cursor is a unique, gapless order of the older logs.
    assert sorted(r["seq"] for r in logs.values()) == list(range(1, 7))

    # The upgraded tables are the fresh ones, plus what the older tables had of their own.
    with new_database() as fresh_url:
        shim_migrate(tmp_path, "--database", fresh_url)
        fresh = columns(fresh_url)
    upgraded = columns(legacy_url)
    assert {k: upgraded.get(k) for k in fresh} == fresh
    assert set(upgraded) - set(fresh) == {("bugs", "reported_by")}


def test_the_shim_writes_to_an_upgraded_database(tmp_path: Path, legacy_url: str) -> None:
    shim_migrate(tmp_path, "--database", legacy_url)
    store = PostgresStore(legacy_url, related_logs=5)
    try:
        before = {b["bug_number"]: b for b in iter_bugs(store)}
        # The message of a legacy bug: grouped by the shim's rules, it opens a bug of its own.
        first, repeat = event("page 3 is empty"), event("page 3 is empty")
        other = event("queue stuck", fingerprint="queue")
        results = store.write([batch(first, other), batch(repeat)])
        assert [s.bug_number for r in results for s in r] == ["BUG-00008", "BUG-00009",
                                                              "BUG-00008"]
        after = {b["bug_number"]: b for b in iter_bugs(store)}
        assert {n: after[n] for n in before} == before  # the legacy bugs are untouched
        assert after["BUG-00008"]["occurrence_count"] == 2
        assert after["BUG-00008"]["grouping_version"] >= 1

        # Operators' status changes reach the legacy bugs; the log cursor runs on after them.
        store.write([status("BUG-00002", "resolved", datetime(2026, 1, 1, tzinfo=UTC))])
        bug = store.get_bug("BUG-00002")
        assert bug is not None and bug["status"] == "resolved"
        logs = store.list_logs(limit=100)
        assert len(logs) == 9
        assert [r["cursor"] for r in logs] == sorted(r["cursor"] for r in logs)
        assert logs[-1]["event_id"] == repeat.event_id
        assert {r["bug_number"] for r in logs if r["component"] == "ocr"} == {"BUG-00001"}
    finally:
        store.close()


def test_a_shim_older_than_0003_finds_the_store_unavailable(tmp_path: Path,
                                                            postgres_url: str) -> None:
    """A batch without the policy's order (what a shim before 0003 sends) opens no bug with a
    guessed severity: the function refuses it as an outage (SQLSTATE 57000), which such a server
    answers by keeping its events in its backup log until it is upgraded."""
    import psycopg

    from shim.store.rows import ingest_payload

    shim_migrate(tmp_path, "--database", postgres_url)
    old = json.loads(ingest_payload([batch(event("from an old shim"))], related_logs=5))
    del old["severities"]
    with pytest.raises(psycopg.errors.OperatorIntervention, match="upgrade this one"):
        query(postgres_url, "SELECT shim_ingest(%s::jsonb)", json.dumps(old))
    assert query(postgres_url, "SELECT count(*) AS n FROM bugs") == [{"n": 0}]
    assert issubclass(psycopg.errors.OperatorIntervention, psycopg.OperationalError)
    # A batch without bugs (a ping, check-ins, counts) needs no order.
    assert query(postgres_url, "SELECT shim_ingest(%s::jsonb) AS r",
                 json.dumps({"batches": []})) == [{"r": []}]


@pytest.mark.parametrize("legacy", [False, True], ids=["fresh", "legacy"])
def test_the_sql_script_pasted_twice(tmp_path: Path, postgres_url: str, legacy: bool) -> None:
    """What a Supabase user does: paste `shim migrate --sql` into the SQL editor (maybe twice)."""
    if legacy:
        execute(postgres_url, LEGACY_SQL)
    script = shim_migrate(tmp_path, "--sql").stdout
    assert script.startswith("--") and "BEGIN;" in script and script.rstrip().endswith("COMMIT;")
    execute(postgres_url, script)
    execute(postgres_url, script)
    check_schema(postgres_url)
    assert shim_migrate(tmp_path, "--database", postgres_url).stdout.startswith("nothing to do:")
    assert len(query(postgres_url, "SELECT * FROM bugs")) == (4 if legacy else 0)
    store = PostgresStore(postgres_url)
    try:
        (stored,) = store.write([batch(event("after the paste"))])
        assert stored[0].bug_number == ("BUG-00008" if legacy else "BUG-00001")
    finally:
        store.close()


def test_sqlite_migrate_creates_the_database(tmp_path: Path) -> None:
    path = tmp_path / "new" / "shim.db"
    env = {"SHIM_DATABASE_URL": f"sqlite:///{path}"}
    first = shim_migrate(tmp_path, env=env)
    assert first.stdout.splitlines() == ["applied sqlite schema version 1",
                                         "applied sqlite schema version 2",
                                         f"sqlite:///{path}: schema at version 2"]
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"bugs", "error_logs", "check_ins", "item_counts", "status_changes", "bug_hashes",
            "shim_meta"} <= tables
    again = json.loads(shim_migrate(tmp_path, "--json", env=env).stdout)
    assert again == {"database": f"sqlite:///{path}", "applied": [], "version": 2}
