"""Backups end to end: real ``sentry_sdk`` clients, a real ``shim serve``, the real commands.

- the day file holds a child's events by the time the child has its answers;
- ``shim restore`` rebuilds every row of a mixed workload, and a second restore changes nothing;
- a store that cannot take writes (another process holds SQLite's write lock) costs nothing: the
  events are acknowledged, logged, and applied exactly once when the store is back, or at the next
  start when the server was stopped first;
- the bugs snapshot follows its cadence: soon after a change with a short interval, not before
  shutdown with a long one, and never rewritten when nothing changed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import signal
import sqlite3
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import (
    LiveServer,
    answers_of,
    expect_ok,
    run_script,
    run_scripts,
    run_shim,
    script,
    sdk_python,
    start_server,
)

T = TypeVar("T")
TABLES = {"bugs": "bug_number", "error_logs": "event_id", "check_ins": "check_in_id",
          "status_changes": "change_id"}


def eventually(check: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last: {value!r})")
        time.sleep(0.1)


def healthz(server: LiveServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def shim(server: LiveServer, *args: str) -> str:
    result = run_shim(server, *args)
    assert result.returncode == 0, f"shim {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def day_lines(data_dir: Path) -> list[dict[str, Any]]:
    """Every line of every day file, in order."""
    return [json.loads(line) for path in sorted((data_dir / "bugs" / "logs").glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def logged_event_ids(data_dir: Path) -> list[str]:
    return [line["row"]["event_id"] for line in day_lines(data_dir) if line["kind"] == "error_log"]


def table_rows(db_path: Path, table: str) -> list[dict[str, Any]]:
    """Every column of every row, in primary-key order."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY {TABLES[table]}")]
    finally:
        db.close()


@contextlib.contextmanager
def write_lock(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Hold the database's write lock from another process's point of view (the store is "down"
    for the server once it has waited its busy timeout)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()


def another_server(data_dir: Path, log_path: Path) -> contextlib.AbstractContextManager[LiveServer]:
    """A second ``shim serve`` on an existing data dir (the ``live_server`` fixture makes fresh ones)."""
    return start_server(data_dir, log_path)


def stop(server: LiveServer) -> str:
    """SIGTERM the server (as the fixture would at the end), wait for it; its log."""
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)
    output = server.log()
    assert "Application shutdown complete" in output, output
    return output


# Events sent while the store is down: several per child, one of them a repeated bug. The first
# answer waits for the server's busy timeout (5 s), so the SDK is given time to flush.
OUTAGE = script("""
    import os
    import sentry_sdk
    import probe

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, shutdown_timeout=20)
    probe.record_answers()
    sentry_sdk.set_tag("component", "CHILD_NAME")
    for number in range(3):
        sentry_sdk.capture_message(f"note {number} from CHILD_NAME", level="info")
    with sentry_sdk.new_scope() as scope:
        scope.set_level("fatal")
        sentry_sdk.capture_message("store outage crash")
    probe.print_answers()
""")


def run_outage_children(server: LiveServer, names: list[str]) -> list[str]:
    """Run the OUTAGE script once per name, all at once; the event ids the server answered."""
    results = run_scripts([OUTAGE.replace("CHILD_NAME", name) for name in names], server.dsn)
    ids = []
    for result in results:
        expect_ok(result)
        answers = answers_of(result)
        assert [a["status"] for a in answers] == [200] * 4, answers
        ids += [json.loads(a["body"])["id"] for a in answers]
    return ids


def assert_stored_once(server: LiveServer, event_ids: list[str]) -> None:
    counts = Counter(r["event_id"] for r in server.query("SELECT event_id FROM error_logs"))
    assert {i: counts[i] for i in event_ids} == dict.fromkeys(event_ids, 1)
    crashes = [i for i in event_ids if server.query(
        "SELECT 1 FROM error_logs WHERE event_id = ? AND message = 'store outage crash'", (i,))]
    [bug] = server.query("SELECT * FROM bugs WHERE title LIKE '%store outage crash%'")
    assert bug["occurrence_count"] == len(crashes)
    related = json.loads(bug["related_log_ids"])
    assert len(related) == len(set(related)) == len(crashes)


# Durability ordering.

def test_acknowledged_events_are_already_in_the_day_file(live_server: LiveServer) -> None:
    result = run_script(script("""
        import os
        import sentry_sdk
        import probe

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        probe.record_answers()
        for number in range(5):
            sentry_sdk.capture_message(f"durable {number}", level="error")
        probe.print_answers()
    """), live_server.dsn)
    expect_ok(result)
    acknowledged = [json.loads(a["body"])["id"] for a in answers_of(result)]
    assert len(acknowledged) == 5
    # Read right after the child exits: every acknowledged event is already a line on disk.
    lines = [line for line in day_lines(live_server.data_dir) if line["kind"] == "error_log"]
    assert [line["row"]["event_id"] for line in lines] == acknowledged
    assert [line["row"]["message"] for line in lines] == [f"durable {n}" for n in range(5)]
    assert {r["event_id"] for r in live_server.error_logs()} == set(acknowledged)
    logs = live_server.data_dir / "bugs" / "logs"
    marker = json.loads((logs / ".applied").read_text())
    assert (logs / marker["file"]).stat().st_size == marker["offset"]  # the store caught up


# Restore.

MIXED = script("""
    import logging
    import os
    import sentry_sdk
    from sentry_sdk.crons import MonitorStatus, capture_checkin, monitor

    if int(sentry_sdk.VERSION.split(".")[0]) >= 3:
        # 3.x sends Sentry Logs unasked; stdlib records need the integration, events its level.
        from sentry_sdk.integrations.logging import LoggingIntegration
        options = {"integrations": [LoggingIntegration(event_level=logging.ERROR)]}
    else:
        options = {"enable_logs": True}
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, environment="prod",
                    release="scanner@3", **options)
    sentry_sdk.set_tag("component", "scanner")
    sentry_sdk.set_tag("workspace_id", "ws-9")

    def parse(kind, text):
        raise kind(text)

    for page in range(3):  # one bug, three occurrences
        with sentry_sdk.new_scope() as scope:
            scope.set_level("fatal")
            try:
                parse(ValueError, f"page {page} is empty")
            except ValueError as exc:
                sentry_sdk.capture_exception(exc)
    with sentry_sdk.new_scope() as scope:
        scope.set_level("fatal")
        try:
            parse(KeyError, "token")
        except KeyError as exc:
            sentry_sdk.capture_exception(exc)
    try:
        parse(LookupError, "handled, level error: no bug")
    except LookupError as exc:
        sentry_sdk.capture_exception(exc)
    for level in ("debug", "info", "warning", "error", "fatal"):
        sentry_sdk.capture_message(f"a {level} message", level=level)
    sentry_sdk.logger.info("scan of {count} pages started", count=12)
    sentry_sdk.logger.warning("page {page} is blurry", page=3)
    logging.getLogger("scanner.pdf").error("stdlib record %s", "forwarded")
    capture_checkin(monitor_slug="nightly-scan", status=MonitorStatus.OK, duration=2.5)

    @monitor(monitor_slug="hourly-sync")
    def sync():
        pass

    sync()
    parse(ZeroDivisionError, "unhandled: the excepthook reports it")
""")

RECUR = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, environment="prod")
    sentry_sdk.set_tag("component", "scanner")
    sentry_sdk.set_tag("workspace_id", "ws-9")

    def parse(kind, text):
        raise kind(text)

    with sentry_sdk.new_scope() as scope:
        scope.set_level("fatal")
        try:
            parse(ValueError, "page 11 is empty")
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
""")


def test_restore_rebuilds_every_row_and_restoring_twice_changes_nothing(
    live_server: LiveServer, tmp_path: Path, sdk_major: str,
) -> None:
    python = sdk_python(sdk_major)
    expect_ok(run_script(MIXED, live_server.dsn, python=python, cwd=tmp_path), returncode=1)
    bugs = {b["title"]: b["bug_number"] for b in live_server.bugs()}
    value_bug = bugs["Critical: scanner - ValueError"]
    key_bug = bugs["Critical: scanner - KeyError"]
    shim(live_server, "resolve", value_bug)
    expect_ok(run_script(RECUR, live_server.dsn, python=python, cwd=tmp_path))  # a regression
    shim(live_server, "assign", key_bug, "--to", "bob")
    shim(live_server, "close", bugs["Critical: scanner - a fatal message"])

    live = {table: table_rows(live_server.db_path, table) for table in TABLES}
    # The workload is what it claims to be.
    assert len(live["bugs"]) == 4
    value = next(b for b in live["bugs"] if b["bug_number"] == value_bug)
    assert (value["status"], value["is_regression"], value["occurrence_count"]) == ("open", 1, 4)
    assert {r["item_type"] for r in live["error_logs"]} == {"event", "log"}
    assert {r["log_level"] for r in live["error_logs"]} == {
        "debug", "info", "warning", "error", "critical"}
    assert len(live["check_ins"]) == 2 and len(live["status_changes"]) == 3

    fresh = tmp_path / "restored" / "fresh.db"
    url = f"sqlite:///{fresh}"
    first = json.loads(shim(live_server, "restore", "--database", url, "--json"))
    assert first["events"] == len(live["error_logs"]) and first["duplicates"] == 0
    assert first["status_changes"] == 3 and first["unreadable"] == []
    for table, expected in live.items():
        assert table_rows(fresh, table) == expected, table

    second = shim(live_server, "restore", "--database", url)
    assert f"0 events stored, {len(live['error_logs'])} already present" in second
    for table, expected in live.items():
        assert table_rows(fresh, table) == expected, table


def test_restore_from_another_directory(live_server: LiveServer, tmp_path: Path) -> None:
    expect_ok(run_script(RECUR, live_server.dsn))
    copy = tmp_path / "copied-logs"
    copy.mkdir()
    for path in (live_server.data_dir / "bugs" / "logs").glob("*.jsonl"):
        (copy / path.name).write_bytes(path.read_bytes())
    fresh = tmp_path / "other.db"
    out = shim(live_server, "restore", "--from", str(copy), "--database", f"sqlite:///{fresh}")
    assert out.startswith("read 2 lines: 1 events stored")  # the event and its item counts
    assert table_rows(fresh, "bugs") == table_rows(live_server.db_path, "bugs")
    missing = run_shim(live_server, "restore", "--from", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "is not a directory of backup logs" in missing.stderr


# The store down, then back.

def test_events_sent_while_the_store_is_locked_are_acknowledged_and_applied_once_it_is_free(
    live_server: LiveServer,
) -> None:
    with write_lock(live_server.db_path):
        event_ids = run_outage_children(live_server, ["alpha", "beta"])
        assert len(event_ids) == len(set(event_ids)) == 8
        # Acknowledged, logged, and not in the store yet.
        assert sorted(logged_event_ids(live_server.data_dir)) == sorted(event_ids)
        assert live_server.query("SELECT count(*) AS n FROM error_logs") == [{"n": 0}]
        health = healthz(live_server)
        assert health["status"] == "degraded"
        assert health["store"]["state"] in ("down", "catching_up")
        assert health["store"]["lag_bytes"] > 0
        assert health["backup_log"]["state"] == "ok"

    eventually(lambda: healthz(live_server)["status"] == "ok", 40, "/healthz back to ok")
    health = healthz(live_server)
    assert health["store"]["state"] == "ok" and health["store"]["lag_bytes"] == 0
    assert_stored_once(live_server, event_ids)
    assert len(live_server.error_logs()) == 8
    # New events go straight through again.
    after = run_outage_children(live_server, ["gamma"])
    assert_stored_once(live_server, [*event_ids, *after])
    assert healthz(live_server)["status"] == "ok"


def test_a_server_stopped_while_behind_applies_the_rest_at_its_next_start(
    live_server: LiveServer, tmp_path: Path,
) -> None:
    with write_lock(live_server.db_path):
        event_ids = run_outage_children(live_server, ["alpha"])
        assert healthz(live_server)["status"] == "degraded"
        stop(live_server)  # still locked: the last catch-up at shutdown fails too
    assert live_server.query("SELECT count(*) AS n FROM error_logs") == [{"n": 0}]
    assert sorted(logged_event_ids(live_server.data_dir)) == sorted(event_ids)

    with another_server(live_server.data_dir, tmp_path / "second.log") as second:
        eventually(lambda: len(second.error_logs()) == 4, 20, "the logged events applied")
        eventually(lambda: healthz(second)["status"] == "ok", 20, "/healthz ok")
        assert_stored_once(second, event_ids)
        logs = second.data_dir / "bugs" / "logs"
        marker = json.loads((logs / ".applied").read_text())
        assert (logs / marker["file"]).stat().st_size == marker["offset"]
    # A third start finds nothing left to apply.
    with another_server(live_server.data_dir, tmp_path / "third.log") as third:
        assert healthz(third)["status"] == "ok"
        assert_stored_once(third, event_ids)


# The bugs snapshot.

FATAL = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.capture_message(os.environ.get("MESSAGE", "the snapshot bug"),
                               level=os.environ.get("LEVEL", "fatal"))
""")


def snapshot(server: LiveServer) -> list[dict[str, str]]:
    path = server.data_dir / "bugs" / "bugs.csv"
    if not path.exists():
        return []
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def snapshot_counts(server: LiveServer) -> dict[str, str]:
    return {r["bug_number"]: r["occurrence_count"] for r in snapshot(server)}


# The exporter waits at least the interval, and ten times the last export's duration: on a busy
# machine an export (a new Python process) can take a second, so the next one comes 10 s later.
SNAPSHOT_WAIT = 30


@pytest.mark.parametrize("live_server", [{"SHIM_EXPORT_INTERVAL": "1"}], indirect=True)
def test_the_snapshot_follows_bug_changes_every_interval(live_server: LiveServer) -> None:
    csv_path = live_server.data_dir / "bugs" / "bugs.csv"
    json_path = live_server.data_dir / "bugs" / "bugs.json"
    expect_ok(run_script(FATAL, live_server.dsn))
    eventually(lambda: snapshot_counts(live_server) == {"BUG-00001": "1"}, SNAPSHOT_WAIT, "BUG-00001 in csv")
    [row] = snapshot(live_server)
    assert row["title"] == live_server.bugs()[0]["title"]
    expect_ok(run_script(FATAL, live_server.dsn))
    eventually(lambda: snapshot_counts(live_server) == {"BUG-00001": "2"}, SNAPSHOT_WAIT,
               "the new count")
    eventually(lambda: [b["occurrence_count"] for b in json.loads(json_path.read_bytes())] == [2],
               SNAPSHOT_WAIT, "the new count in bugs.json")

    # Events that touch no bug do not rewrite it: the same file across several intervals.
    expect_ok(run_script(FATAL, live_server.dsn, env={"LEVEL": "info", "MESSAGE": "just info"}))
    mtimes = (csv_path.stat().st_mtime_ns, json_path.stat().st_mtime_ns)
    inode = csv_path.stat().st_ino
    time.sleep(2.5)  # more than two intervals
    assert (csv_path.stat().st_mtime_ns, json_path.stat().st_mtime_ns) == mtimes
    assert csv_path.stat().st_ino == inode

    # An operator's status change shows in the snapshot too.
    shim(live_server, "resolve", "1")
    eventually(lambda: [r["status"] for r in snapshot(live_server)] == ["resolved"],
               SNAPSHOT_WAIT, "the resolved status in bugs.csv")


@pytest.mark.parametrize("live_server", [{"SHIM_EXPORT_INTERVAL": "3600"}], indirect=True)
def test_with_a_long_interval_the_snapshot_is_written_at_shutdown(live_server: LiveServer) -> None:
    expect_ok(run_script(FATAL, live_server.dsn))
    expect_ok(run_script(FATAL, live_server.dsn))
    assert live_server.bugs()[0]["occurrence_count"] == 2
    time.sleep(1.5)  # what a short interval would have written by now
    assert not (live_server.data_dir / "bugs" / "bugs.csv").exists()
    assert not (live_server.data_dir / "bugs" / "bugs.json").exists()
    stop(live_server)
    assert snapshot_counts(live_server) == {"BUG-00001": "2"}
    [bug] = json.loads((live_server.data_dir / "bugs" / "bugs.json").read_bytes())
    assert (bug["bug_number"], bug["occurrence_count"]) == ("BUG-00001", 2)
