"""The journal process (``shim.writer.process``): the same log and rows as the journal in the server
process, failures reported as the writer expects them, and a child that never outlives its server
nor takes a signal meant for the server's group."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shim.core.event import normalize_event
from shim.core.items import log_record
from shim.core.records import Batch, CheckIn, ErrorLog, StatusChange
from shim.store import StoreUnavailable
from shim.store.sqlite import SQLiteStore
from shim.writer.journal import Journal
from shim.writer.log import BackupLog
from shim.writer.process import Config, JournalProcess, pack, unpack

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def event(message: str, level: str = "fatal", **extra: Any) -> ErrorLog:
    return normalize_event(
        {"message": message, "level": level, "breadcrumbs": {"values": [
            {"message": "before ünïcode", "data": {"n": 1, 2: "non-string key"}}]}, **extra},
        event_id=uuid.uuid4().hex, project_id="1", received=RECEIVED, bug_level="critical")


def batches() -> list[Batch]:
    """Events that open bugs and that do not, a repeat, a log record, a check-in, a status change."""
    envelope = type("E", (), {"headers": {"sdk": {"name": "sentry.python"}}})()
    record = log_record({"body": "queue drained", "level": "info", "attributes": {
        "logger.name": {"value": "worker", "type": "string"}}, "timestamp": 1764331200.5},
        Counter(), envelope, "1", RECEIVED)  # type: ignore[arg-type]
    crash = event("disk full on /data")
    return [
        Batch(error_logs=[crash, event("disk full on /data"), event("just so", level="info")],
              item_counts={"event": 3}, received_at=RECEIVED.isoformat()),
        Batch(error_logs=[record], item_counts={"log": 1}, received_at=RECEIVED.isoformat()),
        Batch(error_logs=[crash], received_at=RECEIVED.isoformat()),  # a retried envelope
        Batch(check_ins=[CheckIn(check_in_id=uuid.uuid4().hex, project_id="1",
                                 monitor_slug="nightly", status="ok", duration=1.5,
                                 environment=None, release=None, monitor_config=None,
                                 created_at=RECEIVED.isoformat())],
              item_counts={"check_in": 1}, received_at=RECEIVED.isoformat()),
        Batch(status_changes=[StatusChange(change_id=uuid.uuid4().hex, bug_number="BUG-00001",
                                           status="resolved", assignee="ana",
                                           at=RECEIVED.isoformat())],
              received_at=RECEIVED.isoformat()),
    ]


def config(root: Path, **changes: Any) -> Config:
    return dataclasses.replace(Config(log_dir=str(root / "logs"),
                                      database_url=f"sqlite:///{root / 'shim.db'}"), **changes)


def table(path: Path, name: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()
    finally:
        db.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended; only its parent has not collected it yet.
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_rows_cross_as_tuples_and_come_back_whole() -> None:
    sent = batches()
    back = unpack(pack(sent))
    for before, after in zip(sent, back, strict=True):
        assert [r.context for r in after.error_logs] == [r.context
                                                             for r in before.error_logs]
        assert [dataclasses.replace(r, context=b"") for r in after.error_logs] == [
            dataclasses.replace(r, context=b"") for r in before.error_logs]
        assert (after.check_ins, after.item_counts, after.status_changes, after.received_at) == (
            before.check_ins, before.item_counts, before.status_changes, before.received_at)
    assert sent[0].error_logs[0].bug is not None  # the bug signal crossed too
    assert back[0].error_logs[0].bug == sent[0].error_logs[0].bug


def test_same_results_log_and_rows_as_the_journal_in_the_server_process(tmp_path: Path) -> None:
    sent = batches()
    local = Journal(BackupLog(tmp_path / "a" / "logs"), SQLiteStore(str(tmp_path / "a" / "shim.db")))
    expected = [local.commit(sent[:2]), local.commit(sent[2:])]
    local.close()

    remote = JournalProcess(config(tmp_path / "b"))
    try:
        got = [remote.commit(sent[:2]), remote.commit(sent[2:])]
        assert remote.lag() == (False, 0)
        assert remote.summary() == {"backend": "sqlite", "path": str(tmp_path / "b" / "shim.db")}
    finally:
        remote.close()

    assert got == expected
    assert expected[1] is not None and expected[1][0][0].duplicate  # the retried envelope
    (a_day,) = (tmp_path / "a" / "logs").glob("*.jsonl")
    (b_day,) = (tmp_path / "b" / "logs").glob("*.jsonl")
    assert b_day.read_bytes() == a_day.read_bytes()  # byte for byte the same backup log
    for name in ("error_logs", "bugs", "check_ins", "item_counts", "status_changes"):
        rows = table(tmp_path / "b" / "shim.db", name)
        assert rows == table(tmp_path / "a" / "shim.db", name), name
        assert rows, f"{name} is empty"


def test_a_log_that_cannot_be_written_is_an_oserror_and_the_next_commit_works(
        tmp_path: Path) -> None:
    remote = JournalProcess(config(tmp_path))
    try:
        assert remote.commit(batches()[:1])
        logs = tmp_path / "logs"
        (day,) = logs.glob("*.jsonl")
        moved = logs.rename(tmp_path / "logs-aside")
        logs.write_bytes(b"")  # the log's directory is now a file: appending fails, even as root
        with pytest.raises(OSError):
            remote.commit([Batch(error_logs=[event("not kept")], received_at=RECEIVED.isoformat())])
        logs.unlink()
        moved.rename(logs)
        kept = event("kept")
        assert remote.commit([Batch(error_logs=[kept], received_at=RECEIVED.isoformat())])
        assert kept.event_id.encode() in day.read_bytes()
    finally:
        remote.close()
    assert len(table(tmp_path / "shim.db", "error_logs")) == 4


def test_a_store_that_cannot_take_writes_leaves_the_events_in_the_log(tmp_path: Path) -> None:
    remote = JournalProcess(config(tmp_path))
    blocker = sqlite3.connect(tmp_path / "shim.db", timeout=0)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        assert remote.commit(batches()[:1]) is None  # logged only: the store is behind
        assert remote.lag()[0]
        with pytest.raises(StoreUnavailable):
            remote.catch_up()
        blocker.rollback()
        assert remote.catch_up() is True
        assert remote.lag() == (False, 0)
    finally:
        blocker.close()
        remote.close()
    assert len(table(tmp_path / "shim.db", "error_logs")) == 3


def test_a_child_killed_during_a_call_fails_it_and_the_next_call_starts_another(
        tmp_path: Path) -> None:
    sent = batches()
    remote = JournalProcess(config(tmp_path))
    blocker = sqlite3.connect(tmp_path / "shim.db", timeout=0)
    try:
        assert remote.commit(sent[:1])
        first = remote.pid
        assert first is not None
        # The next commit is logged, then waits for the store's write lock (up to its 5 s busy
        # timeout): the child is killed in the middle of that call, whatever the timing.
        blocker.execute("BEGIN IMMEDIATE")
        killer = threading.Timer(0.3, os.kill, (first, signal.SIGKILL))
        killer.start()
        with pytest.raises(OSError, match="journal process ended"):
            remote.commit(sent[1:2])  # the client is not answered 2xx
        killer.join()
        assert remote.pid is None and not alive(first)
        blocker.rollback()
        # A new child; the store is behind the log (the killed call's batch is in it), so this
        # batch is only logged, and catching up applies both, in log order.
        assert remote.commit(sent[2:3]) is None
        assert remote.pid not in (None, first)
        assert remote.catch_up() is True
    finally:
        blocker.close()
        remote.close()
    stored = {row[1] for row in table(tmp_path / "shim.db", "error_logs")}
    assert stored == {r.event_id for b in sent[:3] for r in b.error_logs}


def test_a_child_that_died_between_calls_is_replaced_without_failing_one(
        tmp_path: Path) -> None:
    remote = JournalProcess(config(tmp_path))
    try:
        first = remote.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # Ended, every thread of it, but not yet collected (the next call's check does that).
        assert os.waitid(os.P_PID, first, os.WEXITED | os.WNOWAIT) is not None
        assert remote.commit(batches()[:1])  # not an error: a new child took it
        assert remote.pid not in (None, first)
    finally:
        remote.close()
    assert len(table(tmp_path / "shim.db", "error_logs")) == 3


def test_a_store_that_cannot_be_opened_stops_the_start_and_leaves_no_child(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    before = set(_children())
    with pytest.raises(Exception, match=r"(?i)unable to open|not a directory|file exists"):
        JournalProcess(config(tmp_path, database_url=f"sqlite:///{tmp_path / 'file' / 'shim.db'}"))
    assert set(_children()) <= before


def _children() -> list[int]:
    pid = os.getpid()
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_the_child_ignores_group_signals_and_ends_when_closed(tmp_path: Path) -> None:
    remote = JournalProcess(config(tmp_path))
    pid = remote.pid
    assert pid is not None
    try:
        os.kill(pid, signal.SIGTERM)  # what a service manager sends the whole group
        os.kill(pid, signal.SIGINT)  # Ctrl-C in a terminal
        time.sleep(0.2)  # long enough for a signal that stops it to have done so
        assert alive(pid)
        assert remote.commit(batches()[:1])  # still there, still answering
        assert remote.pid == pid  # the same child, not a replacement
    finally:
        remote.close()
    assert not alive(pid)
    remote.close()  # closing twice is harmless


SERVER = """
import os, sys
from pathlib import Path
from shim.writer.process import Config, JournalProcess
root = Path(sys.argv[1])
remote = JournalProcess(Config(log_dir=str(root / "logs"), database_url=f"sqlite:///{root}/s.db"))
print(remote.pid, flush=True)
sys.stdin.read()  # until the test kills us
"""


def test_the_child_ends_when_its_server_is_killed(tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SERVER), str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        assert alive(child)
        server.kill()  # no shutdown: the child only sees its request pipe close
        server.wait()
        assert wait_gone(child), "the journal process outlived its killed server"
    finally:
        server.kill()
        server.wait()
