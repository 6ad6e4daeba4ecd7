"""The Supabase store under a real ``shim serve`` process: ``SHIM_DATABASE_URL=supabase`` with
``SUPABASE_URL`` pointing at the PostgREST stand-in (``tests/postgrest_standin.py``, which runs each
request on a real local Postgres), real ``sentry_sdk`` clients as child processes, and the real
``shim`` commands.

- events are stored through the stand-in;
- the stand-in stopped while events keep arriving: they are acknowledged and kept in the backup
  log, and the writer applies them, each once, when the stand-in is back on the same address;
- ``shim restore --database supabase`` rebuilds a fresh project's rows, equal to the live ones.

What the stand-in does not show (Supabase's gateway, roles, RLS) is said in test_supabase.py.
Skipped without Postgres, failed under ``CI`` (``tests/pg.py``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from conftest import LiveServer, expect_ok, run_script, run_scripts, run_shim, script, start_server
from pg import new_database
from postgrest_standin import Standin
from test_postgres_e2e import NO_RATE_LIMIT, acknowledged, healthz, rows, wait_for
from test_supabase import SERVICE_KEY

from shim.store import migrate


@contextmanager
def supabase_project() -> Iterator[tuple[str, Standin]]:
    """A fresh Postgres database with shim's schema (as ``shim migrate --sql`` gives it) behind a
    running stand-in: the database's URL, for reading back, and the stand-in."""
    with new_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate.migrate(conn)
        standin = Standin(url, SERVICE_KEY)
        standin.serve()
        try:
            yield url, standin
        finally:
            standin.stop()


def supabase_env(standin: Standin) -> dict[str, str]:
    return {"SHIM_DATABASE_URL": "supabase", "SUPABASE_URL": standin.url,
            "SUPABASE_KEY": SERVICE_KEY}


SENDER = script("""
    import os
    import sentry_sdk
    import probe

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, shutdown_timeout=30)
    probe.record_answers()
    sentry_sdk.set_tag("component", "ocr")
    phase = os.environ["PHASE"]

    def read_page(page):
        raise ValueError(f"page {page} has no text")

    for n in range(5):
        try:
            read_page(n)
        except ValueError as exc:
            with sentry_sdk.new_scope() as scope:
                scope.set_level("fatal")
                sentry_sdk.capture_exception(exc)
        sentry_sdk.capture_message(f"{phase}: page {n} read", level="info")
    probe.print_answers()
""")
PER_CHILD = 10  # events per SENDER child; 5 of them reach the one bug


def sent(server: LiveServer, phase: str, children: int) -> list[str]:
    """Run ``children`` SENDER children at once; the event ids the server acknowledged."""
    ids = acknowledged(run_scripts([SENDER] * children, server.dsn, {"PHASE": phase}))
    assert len(ids) == len(set(ids)) == children * PER_CHILD
    return ids


def logged_event_ids(data_dir: Path) -> list[str]:
    return [json.loads(line)["row"]["event_id"]
            for day in sorted((data_dir / "bugs" / "logs").glob("*.jsonl"))
            for line in day.read_text().splitlines()
            if json.loads(line)["kind"] == "error_log"]


def stored_event_ids(url: str) -> Counter[str]:
    return Counter(r["event_id"] for r in rows(url, "SELECT event_id FROM error_logs"))


def test_the_server_stores_through_supabase_and_catches_up_after_an_outage(
        tmp_path: Path) -> None:
    with supabase_project() as (url, standin), \
            start_server(tmp_path / "data", tmp_path / "server.log",
                         {**supabase_env(standin), **NO_RATE_LIMIT}) as server:
        health = healthz(server)
        assert (health["status"], health["store"]["backend"]) == ("ok", "supabase")
        assert health["store"]["url"] == standin.url
        assert SERVICE_KEY not in json.dumps(health)

        before = sent(server, "before", 2)
        assert stored_event_ids(url) == Counter(before)
        assert any(r.path == "/rest/v1/rpc/shim_ingest" for r in standin.requests)

        standin.stop()  # the project goes away; the server is not told
        during = sent(server, "during", 2)  # all answered 200 all the same
        wait_for(lambda: healthz(server)["store"]["state"] == "down", "/healthz: store down")
        health = healthz(server)
        assert health["status"] == "degraded" and health["store"]["lag_bytes"] > 0
        assert stored_event_ids(url) == Counter(before)  # the store has none of them...
        assert Counter(logged_event_ids(server.data_dir)) == Counter(before + during)  # ...the log all

        standin.serve(port=urlsplit(standin.url).port or 0)  # back on the same address
        wait_for(lambda: healthz(server)["status"] == "ok", "/healthz: ok", timeout=40)
        assert healthz(server)["store"]["lag_bytes"] == 0
        assert stored_event_ids(url) == Counter(before + during)  # each once
        [bug] = rows(url, "SELECT * FROM bugs")
        assert (bug["bug_number"], bug["occurrence_count"]) == ("BUG-00001", 4 * PER_CHILD // 2)
        [linked] = rows(url, "SELECT count(*) AS n FROM error_logs WHERE related_bug_id = %s",
                        (bug["id"],))
        assert linked["n"] == bug["occurrence_count"]
    assert not list(server.data_dir.rglob("rejected*"))  # nothing set aside as refused


RECUR = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.set_tag("component", "ocr")

    def read_page(page):
        raise ValueError(f"page {page} has no text")

    try:
        read_page(99)
    except ValueError as exc:
        with sentry_sdk.new_scope() as scope:
            scope.set_level("fatal")
            sentry_sdk.capture_exception(exc)
""")
TABLES = {"bugs": "bug_number", "error_logs": "event_id", "status_changes": "change_id",
          "check_ins": "check_in_id"}


def table_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    return {table: rows(url, f"SELECT * FROM {table} ORDER BY {key}")
            for table, key in TABLES.items()}


def test_restore_into_supabase_rebuilds_the_rows_of_the_live_project(tmp_path: Path) -> None:
    with supabase_project() as (url, standin):
        env = supabase_env(standin)
        with start_server(tmp_path / "data", tmp_path / "server.log",
                          {**env, **NO_RATE_LIMIT}) as server:
            sent(server, "live", 2)
            resolved = run_shim(server, "resolve", "BUG-00001", "--by", "ops", env=env)
            assert resolved.returncode == 0, resolved.stderr
            expect_ok(run_script(RECUR, server.dsn))  # a regression: reopened
        live = table_rows(url)
    [bug] = live["bugs"]
    assert (bug["status"], bug["is_regression"], bug["occurrence_count"]) == ("open", True, 11)
    assert len(live["error_logs"]) == 2 * PER_CHILD + 1 and len(live["status_changes"]) == 1

    with supabase_project() as (fresh_url, fresh):
        done = run_shim(server, "restore", "--database", "supabase", "--json",
                        env=supabase_env(fresh))
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["events"], report["duplicates"], report["status_changes"]) == (
            2 * PER_CHILD + 1, 0, 1)
        assert (report["unreadable"], report["torn"]) == ([], [])
        assert any(r.path == "/rest/v1/rpc/shim_ingest" for r in fresh.requests)
        assert table_rows(fresh_url) == live

        again = run_shim(server, "restore", "--database", "supabase", "--json",
                         env=supabase_env(fresh))
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["duplicates"] == 2 * PER_CHILD + 1
        assert table_rows(fresh_url) == live
