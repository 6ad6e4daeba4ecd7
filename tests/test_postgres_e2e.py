"""The Postgres store end to end: real ``shim serve`` processes on one Postgres database, real
``sentry_sdk`` clients as child processes, and the database read back with psycopg.

Each test gets a fresh database on the server at ``SHIM_TEST_POSTGRES`` (``tests/pg.py``):
skipped without Postgres, failed under ``CI``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import (
    LiveServer,
    answers_of,
    expect_ok,
    run_script,
    run_scripts,
    run_shim,
    script,
    start_server,
)
from pg import new_database, postgres_admin
from psycopg.rows import dict_row

NO_RATE_LIMIT = {"SHIM_RATE_LIMIT_PER_KEY": "0"}


@pytest.fixture
def pg_url() -> Iterator[str]:
    with new_database() as url:
        yield url


def rows(url: str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def healthz(server: LiveServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def acknowledged(results: Sequence[Any]) -> list[str]:
    """The event ids the servers answered 200 for, over all children (each checked clean)."""
    ids = []
    for result in results:
        expect_ok(result)
        for answer in answers_of(result):
            assert answer["status"] == 200, answer
            body = json.loads(answer["body"])
            if "id" in body:  # client reports carry no event
                ids.append(body["id"])
    return ids


def wait_for(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# Many senders, two servers, one database.

ROUNDS = 20
PER_ROUND = 5  # events per round; 4 of them open or update bugs
HAMMER = script("""
    import os
    import threading
    import uuid
    import sentry_sdk
    import probe

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, shutdown_timeout=30)
    probe.record_answers()
    sentry_sdk.set_tag("component", "hammer")
    threading.excepthook = lambda args: None  # the SDK reports it; keep stderr quiet

    def parse_invoice(number):
        raise ValueError(f"invoice {number} has no total")

    def load_account(account):
        return {}[f"account-{account}"]

    def run_job(job):
        raise RuntimeError(f"job {job} crashed")

    for n in range(int(os.environ["ROUNDS"])):
        try:
            parse_invoice(n)
        except ValueError as exc:
            with sentry_sdk.new_scope() as scope:
                scope.set_level("fatal")
                sentry_sdk.capture_exception(exc)
        try:
            load_account(uuid.uuid4())
        except KeyError as exc:
            with sentry_sdk.new_scope() as scope:
                scope.set_level("critical")
                sentry_sdk.capture_exception(exc)
        # unhandled in a thread: the threading integration reports it with handled=false
        thread = threading.Thread(target=run_job, args=(n,))
        thread.start()
        thread.join()
        sentry_sdk.capture_message(f"payment {uuid.uuid4()} declined after {n} retries",
                                   level="fatal")
        sentry_sdk.capture_message(f"slow response {n} ms", level="error")  # logged only
        if n % 5 == 4:
            sentry_sdk.flush()  # stay well within the SDK's queue of 100
    probe.print_answers()
""")


def test_two_servers_many_senders_one_bug_per_fingerprint(tmp_path: Path, pg_url: str) -> None:
    extra = {"SHIM_DATABASE_URL": pg_url, **NO_RATE_LIMIT}
    with start_server(tmp_path / "a", tmp_path / "a.log", extra) as one, \
            start_server(tmp_path / "b", tmp_path / "b.log", extra) as two, \
            ThreadPoolExecutor(2) as pool:
        env = {"ROUNDS": str(ROUNDS)}
        groups = [pool.submit(run_scripts, [HAMMER] * 4, server.dsn, env) for server in (one, two)]
        results = [result for group in groups for result in group.result()]
        for server in (one, two):
            health = healthz(server)
            assert health["status"] == "ok", health
            assert health["store"]["backend"] == "postgres"
            assert health["events_stored"] > 0  # both servers took part

    children = len(results)
    ids = acknowledged(results)
    assert len(ids) == len(set(ids)) == children * ROUNDS * PER_ROUND

    stored = Counter(r["event_id"] for r in rows(pg_url, "SELECT event_id FROM error_logs"))
    assert stored == Counter(ids)  # every acknowledged event exactly once, nothing else

    bugs = rows(pg_url, "SELECT * FROM bugs ORDER BY bug_number")
    assert [b["bug_number"] for b in bugs] == [f"BUG-{n:05d}" for n in range(1, 5)], [
        (b["bug_number"], b["title"], b["occurrence_count"], b["stack_trace"]) for b in bugs]
    assert len({b["fingerprint"] for b in bugs}) == 4
    assert {b["error_type"] for b in bugs} == {"ValueError", "KeyError", "RuntimeError", None}
    for bug in bugs:
        assert bug["occurrence_count"] == children * ROUNDS, bug["title"]
        [linked] = rows(pg_url, "SELECT count(*) AS n, count(DISTINCT fingerprint) AS fps"
                        " FROM error_logs WHERE related_bug_id = %s", (bug["id"],))
        assert linked == {"n": bug["occurrence_count"], "fps": 1}
        related = bug["related_log_ids"]
        assert len(related) == len(set(related)) == 20
        assert not set(related) - {str(r["id"]) for r in rows(
            pg_url, "SELECT id FROM error_logs WHERE related_bug_id = %s", (bug["id"],))}
    # Every bug-worthy row points at the one bug of its fingerprint; the "error" level ones at none.
    [split] = rows(pg_url, "SELECT count(*) AS n FROM (SELECT fingerprint FROM error_logs"
                   " WHERE related_bug_id IS NOT NULL GROUP BY 1"
                   " HAVING count(DISTINCT related_bug_id) > 1) AS s")
    assert split["n"] == 0
    [unlinked] = rows(pg_url, "SELECT count(*) AS n FROM error_logs WHERE related_bug_id IS NULL")
    assert unlinked["n"] == children * ROUNDS
    # Each server kept its own events in its own backup log.
    logged = [json.loads(line)["row"]["event_id"]
              for name in ("a", "b")
              for day in sorted((tmp_path / name / "bugs" / "logs").glob("*.jsonl"))
              for line in day.read_text().splitlines()
              if json.loads(line)["kind"] == "error_log"]
    assert Counter(logged) == Counter(ids)


# One server: the basics.

UNHANDLED = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.set_tag("component", "ocr")

    def read_page(page):
        raise ZeroDivisionError(f"page {page} has no lines")

    read_page(7)
""")


def test_unhandled_exception_lands_in_postgres_and_the_cli_reads_it(
        tmp_path: Path, pg_url: str) -> None:
    env = {"SHIM_DATABASE_URL": pg_url}
    with start_server(tmp_path / "data", tmp_path / "server.log", {**env, **NO_RATE_LIMIT}) \
            as server:
        health = healthz(server)
        assert health["status"] == "ok"
        assert health["store"]["backend"] == "postgres"
        assert health["store"]["state"] == "ok"
        assert health["store"]["url"] == pg_url

        expect_ok(run_script(UNHANDLED, server.dsn), returncode=1)

        [log] = rows(pg_url, "SELECT * FROM error_logs")
        [bug] = rows(pg_url, "SELECT * FROM bugs")
        assert log["error_type"] == "ZeroDivisionError"
        assert log["error_message"] == "page 7 has no lines"
        assert log["log_level"] == "error"
        assert log["component"] == "ocr"
        assert "in read_page" in log["stack_trace"]
        assert log["related_bug_id"] == bug["id"]
        assert bug["bug_number"] == "BUG-00001"
        assert bug["title"] == "Critical: ocr - ZeroDivisionError"
        assert bug["occurrence_count"] == 1
        assert bug["status"] == "open"

        listed = run_shim(server, "bugs", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        [entry] = json.loads(listed.stdout)
        assert (entry["bug_number"], entry["occurrence_count"], entry["id"]) == (
            "BUG-00001", 1, str(bug["id"]))

        shown = run_shim(server, "bug", "1", "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        assert detail["fingerprint"] == bug["fingerprint"]
        assert [r["event_id"] for r in detail["recent_logs"]] == [log["event_id"]]
        text = run_shim(server, "bug", "BUG-00001", env=env)
        assert text.returncode == 0, text.stderr
        assert "ZeroDivisionError: page 7 has no lines" in text.stdout


# Restore across backends.

MIXED = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.set_tag("component", "scanner")

    def parse(kind, text):
        raise kind(text)

    for kind, times in ((ValueError, int(os.environ["VALUES"])), (KeyError, 2), (OSError, 1)):
        for n in range(times):
            try:
                parse(kind, f"item {n}")
            except Exception as exc:
                with sentry_sdk.new_scope() as scope:
                    scope.set_level("fatal")
                    sentry_sdk.capture_exception(exc)
    sentry_sdk.capture_message("just a note 5", level="warning")
""")
COMPARED = ("id", "bug_number", "fingerprint", "title", "severity", "priority", "status",
            "component", "error_type", "error_message", "stack_trace", "occurrence_count",
            "first_occurred_at", "last_occurred_at", "is_regression", "related_log_ids",
            "resolved_at", "created_at", "updated_at")


def _bugs_json(server: LiveServer, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    listed = run_shim(server, "bugs", "--json", "--limit", "100", env=env)
    assert listed.returncode == 0, listed.stderr
    bugs: list[dict[str, Any]] = json.loads(listed.stdout)
    for bug in bugs:  # SQLite keeps the list as JSON text, Postgres as jsonb
        if isinstance(bug["related_log_ids"], str):
            bug["related_log_ids"] = json.loads(bug["related_log_ids"])
    return sorted(({k: bug[k] for k in COMPARED} for bug in bugs), key=lambda b: b["bug_number"])


def test_restore_from_a_sqlite_backup_log_into_postgres(tmp_path: Path, pg_url: str) -> None:
    with start_server(tmp_path / "data", tmp_path / "server.log", NO_RATE_LIMIT) as server:
        expect_ok(run_script(MIXED, server.dsn, env={"VALUES": "3"}))
        resolved = run_shim(server, "resolve", "BUG-00002", "--by", "ops")
        assert resolved.returncode == 0, resolved.stderr
        expect_ok(run_script(MIXED, server.dsn, env={"VALUES": "1"}))  # BUG-00002 recurs
        expected = _bugs_json(server)
        logs = server.query("SELECT event_id, related_bug_id FROM error_logs")

    assert [(b["bug_number"], b["occurrence_count"]) for b in expected] == [
        ("BUG-00001", 4), ("BUG-00002", 4), ("BUG-00003", 2)]
    assert expected[1]["is_regression"] == 1 and expected[1]["status"] == "open"

    env = {"SHIM_DATABASE_URL": pg_url}
    done = run_shim(server, "restore", "--database", pg_url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["events"], report["duplicates"], report["status_changes"]) == (len(logs), 0, 1)
    assert _bugs_json(server, env) == expected
    restored = rows(pg_url, "SELECT event_id, related_bug_id FROM error_logs")
    assert sorted((r["event_id"], r["related_bug_id"] and str(r["related_bug_id"]))
                  for r in restored) == sorted((r["event_id"], r["related_bug_id"]) for r in logs)

    again = run_shim(server, "restore", "--database", pg_url, "--json")
    assert json.loads(again.stdout)["duplicates"] == len(logs)
    assert _bugs_json(server, env) == expected


# The database refuses writes for a while.

OUTAGE = script("""
    import os
    import time
    import sentry_sdk
    import probe

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, shutdown_timeout=30)
    probe.record_answers()
    sentry_sdk.set_tag("component", "outage")

    def crash(n):
        raise ValueError(f"crash {n}")

    def send(start):
        for n in range(start, start + 5):
            try:
                crash(n)
            except ValueError as exc:
                with sentry_sdk.new_scope() as scope:
                    scope.set_level("fatal")
                    sentry_sdk.capture_exception(exc)
            sentry_sdk.capture_message(f"note {n}", level="info")
        sentry_sdk.flush()

    send(0)
    print("HALF", flush=True)
    while not os.path.exists(os.environ["GO_ON"]):  # the test makes the database read-only
        time.sleep(0.02)
    send(5)
    probe.print_answers()
""")


# Two ways a Postgres store goes away under load: read-only (what Supabase does to a database whose
# disk is full; the SDK cannot see it) and gone (the server refuses every connection, as when it is
# stopped). The server's sessions are cut either way; nobody restores them for shim.
OUTAGES = {
    "read-only": ('ALTER DATABASE "{0}" SET default_transaction_read_only = on',
                  'ALTER DATABASE "{0}" RESET default_transaction_read_only'),
    "refusing connections": ('ALTER DATABASE "{0}" ALLOW_CONNECTIONS false',
                             'ALTER DATABASE "{0}" ALLOW_CONNECTIONS true'),
}


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_a_store_outage_keeps_events_in_the_log_until_the_store_is_back(
        tmp_path: Path, pg_url: str, outage: str) -> None:
    name = pg_url.rsplit("/", 1)[1]
    down, back = (sql.format(name) for sql in OUTAGES[outage])
    go_on = tmp_path / "go-on"
    children = 4
    with start_server(tmp_path / "data", tmp_path / "server.log",
                      {"SHIM_DATABASE_URL": pg_url, **NO_RATE_LIMIT}) as server, \
            ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_scripts, [OUTAGE] * children, server.dsn,
                              {"GO_ON": str(go_on)})
        count = "SELECT count(*) AS n FROM error_logs"
        wait_for(lambda: rows(pg_url, count)[0]["n"] == children * 10, "the first halves")

        admin = postgres_admin()
        try:
            admin.execute(down)
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            go_on.touch()
            results = running.result()
            ids = acknowledged(results)
            assert len(ids) == children * 20  # all answered 200 while the store was down
            wait_for(lambda: healthz(server)["store"]["state"] == "down", "/healthz: down")
            health = healthz(server)
            assert health["status"] == "degraded"
            assert health["store"]["lag_bytes"] > 0
            if outage == "read-only":  # a database refusing connections refuses us too
                assert rows(pg_url, count)[0]["n"] == children * 10
                threading.Event().wait(1.0)  # retries while down change nothing
                assert rows(pg_url, count)[0]["n"] == children * 10
        finally:
            admin.execute(back)
            admin.close()

        # No one resets the server's sessions: it must notice by itself.
        wait_for(lambda: healthz(server)["status"] == "ok", "/healthz: ok", timeout=40)
        stored = Counter(r["event_id"] for r in rows(pg_url, "SELECT event_id FROM error_logs"))
        assert stored == Counter(ids)
        [bug] = rows(pg_url, "SELECT * FROM bugs")
        assert bug["occurrence_count"] == children * 10
        assert bug["bug_number"] == "BUG-00001"
        assert not (server.data_dir / "bugs" / "logs" / "rejected.jsonl").exists()
        assert not list(server.data_dir.rglob("rejected*"))
