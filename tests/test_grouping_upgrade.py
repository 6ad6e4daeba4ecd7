"""Upgrading a database of grouping version 1 to version 2 never splits a bug: the migration
enters every bug's fingerprint as its version 1 hash and records when the transition started;
for ``SHIM_GROUPING_TRANSITION_DAYS`` events also compute their version 1 hash, and a repeat of
an old bug joins it and teaches it the new hash; after the window version 1 is no longer
computed, and the learnt hash still finds the bug. Against a SQLite file and a Postgres database
left at the schema before version 2, and end to end with real SDK clients of both majors."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import expect_ok, run_script, script, sdk_python, start_server
from pg import new_database
from test_bug_hashes import before_v2, export_body, export_failed

from shim.assembly import grouping_v1_until
from shim.core.event import normalize_event
from shim.core.items import Limits
from shim.core.records import Batch, ErrorLog
from shim.settings import Settings
from shim.store import Store, migrate, open_store
from shim.store.rows import bug_id_for
from shim.store.sqlite import MIGRATIONS
from shim.writer.journal import Journal
from shim.writer.log import BackupLog

BEFORE = "2026-11-01T09:00:00.000000+00:00"  # when the old bug was opened


def _old_bug(row: ErrorLog) -> tuple[Any, ...]:
    """A bug as a shim of grouping version 1 opened it for ``row`` (a ``before_v2`` row)."""
    return (bug_id_for(row.fingerprint), "BUG-00001", "Error: scanner - ExportError",
            "high", "high", "open", row.fingerprint, 1, 1, BEFORE, BEFORE, "[]", BEFORE, BEFORE)


_INSERT_OLD_BUG = (
    "INSERT INTO bugs (id, bug_number, title, severity, priority, status, fingerprint,"
    " grouping_version, occurrence_count, first_occurred_at, last_occurred_at, related_log_ids,"
    " created_at, updated_at) VALUES ({})")


def sqlite_v1(path: Path, rows: list[ErrorLog]) -> str:
    """A SQLite file at schema version 1 with a bug of version 1 per row; its URL."""
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    for number, row in enumerate(rows, start=1):
        values = list(_old_bug(row))
        values[1] = f"BUG-{number:05d}"
        db.execute(_INSERT_OLD_BUG.format(",".join("?" * len(values))), values)
    db.execute("UPDATE sequences SET value = ?", (len(rows),))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    return f"sqlite:///{path}"


def postgres_v1(url: str, rows: list[ErrorLog]) -> None:
    """The Postgres database at ``url`` migrated up to 0003, with a bug of version 1 per row."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        for step in migrate.migrations():
            if step.version <= 3:
                conn.execute(step.sql.encode())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                             (step.version,))
        for row in rows:
            values = list(_old_bug(row))
            values[1] = conn.execute("SELECT 'BUG-' || lpad(nextval('bug_number_seq')::text,"
                                     " 5, '0')").fetchone()[0]  # type: ignore[index]
            conn.execute(_INSERT_OLD_BUG.format(",".join(["%s"] * len(values))), values)


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of grouping version 1 holding the bug of ``export_failed``: its URL."""
    old = before_v2(export_failed(1, with_v1=True))
    if request.param == "sqlite":
        yield sqlite_v1(tmp_path / "shim.db", [old])
        return
    with new_database() as url:
        postgres_v1(url, [old])
        yield url


def settings_for(url: str, tmp_path: Path, days: int = 30) -> Settings:
    return Settings.from_env({"SHIM_DATA_DIR": str(tmp_path), "SHIM_DATABASE_URL": url,
                              "SHIM_GROUPING_TRANSITION_DAYS": str(days)})


def ingested(limits: Limits, job: int, received: datetime) -> ErrorLog:
    """``export_failed(job)`` as ingestion normalises it with these limits, received then."""
    return normalize_event(export_body(job), event_id=uuid.uuid4().hex, project_id="1",
                           received=received, bug_level="error",
                           with_v1=limits.with_v1(received))


def test_an_upgraded_database_keeps_its_bugs_through_the_transition(
        old_database: str, tmp_path: Path) -> None:
    store: Store = open_store(old_database)
    try:
        old = store.get_bug("BUG-00001")
        assert old is not None
        assert [(h["hash"], h["grouping_version"]) for h in store.bug_hashes(old["id"])] == [
            (old["fingerprint"], 1)]
        since = store.grouping_since()
        assert since is not None and abs(datetime.fromisoformat(since) - datetime.now(UTC)) < \
            timedelta(hours=1)
        settings = settings_for(old_database, tmp_path)
        until = grouping_v1_until(settings, Journal(BackupLog(tmp_path / "logs"), store))
        assert until == datetime.fromisoformat(since) + timedelta(days=30)
        limits = Limits(bug_level="error", max_event_bytes=1 << 20, grouping_v1_until=until)

        during = ingested(limits, 2, until - timedelta(days=1))
        assert during.fingerprint_v1 == old["fingerprint"] != during.fingerprint
        [[joined]] = store.write([Batch(error_logs=[during], received_at=during.created_at)])
        assert joined.bug_number == "BUG-00001"
        assert {h["hash"] for h in store.bug_hashes(old["id"])} == {old["fingerprint"],
                                                                    during.fingerprint}

        after = ingested(limits, 3, until + timedelta(seconds=1))
        assert after.fingerprint_v1 is None  # version 1 is no longer computed
        [[again]] = store.write([Batch(error_logs=[after], received_at=after.created_at)])
        assert again.bug_number == "BUG-00001"
        bug = store.get_bug("BUG-00001")
        assert bug is not None and bug["occurrence_count"] == 3
        assert [b["bug_number"] for b in store.list_bugs()] == ["BUG-00001"]
    finally:
        store.close()


def test_a_new_database_has_no_transition(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    store = open_store(url)
    try:
        assert store.grouping_since() is None
        journal = Journal(BackupLog(tmp_path / "logs"), store)
        assert grouping_v1_until(settings_for(url, tmp_path), journal) is None
    finally:
        store.close()


def test_no_transition_when_it_is_switched_off(old_database: str, tmp_path: Path) -> None:
    store = open_store(old_database)
    try:
        journal = Journal(BackupLog(tmp_path / "logs"), store)
        assert store.grouping_since() is not None
        assert grouping_v1_until(settings_for(old_database, tmp_path, days=0), journal) is None
    finally:
        store.close()


# -- end to end: a scanner's repeat of a bug opened before the upgrade ----

SCANNER = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)

    class ExportError(Exception):
        pass

    def write_csv(job):
        raise ExportError(f"export {job} failed")

    try:
        write_csv(int(os.environ["JOB"]))
    except ExportError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()
""")


def _send(dsn: str, major: str, job: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_script(SCANNER, dsn, env={"JOB": str(job)}, python=sdk_python(major), cwd=cwd)


def test_a_repeat_of_a_version_1_bug_still_counts_on_it(tmp_path: Path, sdk_major: str) -> None:
    cwd = tmp_path / "scanner"
    cwd.mkdir()
    # 1. What version 1 made of the scanner's event: a server in its transition (its database
    # has a bug of version 1, of another problem) writes both hashes into its backup log.
    other = before_v2(export_failed(1, with_v1=True))
    first = tmp_path / "first"
    first.mkdir()
    sqlite_v1(first / "shim.db", [other])
    with start_server(first, tmp_path / "first.log") as server:
        expect_ok(_send(server.dsn, sdk_major, 1, cwd))
    lines = [json.loads(line) for day in sorted((first / "bugs" / "logs").glob("*.jsonl"))
             for line in day.read_text().splitlines()]
    [line] = [line for line in lines if line["kind"] == "error_log"]
    v1_hash, v2_hash = line["row"]["fingerprint_v1"], line["row"]["fingerprint"]
    assert v1_hash and v2_hash and v1_hash != v2_hash

    # 2. A database from before the upgrade, where that event opened BUG-00001 by version 1.
    data = tmp_path / "data"
    data.mkdir()
    row = v1_row(v1_hash)
    sqlite_v1(data / "shim.db", [row])
    with start_server(data, tmp_path / "server.log", {"SHIM_BUG_LEVEL": "error"}) as server:
        expect_ok(_send(server.dsn, sdk_major, 2, cwd))
        expect_ok(_send(server.dsn, sdk_major, 3, cwd))
        [bug] = server.bugs()
        assert (bug["bug_number"], bug["fingerprint"], bug["occurrence_count"]) == (
            "BUG-00001", v1_hash, 3)
        hashes = server.query("SELECT hash, grouping_version FROM bug_hashes ORDER BY 2")
        assert [(h["hash"], h["grouping_version"]) for h in hashes] == [(v1_hash, 1),
                                                                        (v2_hash, 2)]
        logs = server.error_logs()
        assert len(logs) == 2 and {log["related_bug_id"] for log in logs} == {bug["id"]}
        assert json.loads(logs[0]["context"])["_grouping"]["variant"] == "exception"


def v1_row(fingerprint: str) -> ErrorLog:
    """A version 1 row whose fingerprint is ``fingerprint`` (only its bug matters here)."""
    return dataclasses.replace(before_v2(export_failed(1, with_v1=True)), fingerprint=fingerprint)
