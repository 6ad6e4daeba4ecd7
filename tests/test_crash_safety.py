"""A 2xx means the event is on disk: through SIGKILLs under load, and while the backup log cannot
be written (then nothing is acknowledged, and the server recovers by itself).

The crash test runs the crash loop bench (``bench/crash_loop.py``) with a few kills; the bench with
``--kills 20`` is the longer version of the same check.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from conftest import PUBLIC_KEY, LiveServer
from sentry_sdk.envelope import Envelope

ROOT = Path(__file__).resolve().parent.parent


def test_nothing_acknowledged_is_lost_across_sigkills(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.crash_loop", "--kills", "4", "--senders", "6",
         "--seed", "20261128", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    # Every kind of kill point ran: right away, after some acks, in the middle of a burst.
    assert [p.split(":")[0] for p in report["kill_points"]] == [
        "immediate", "after_acks", "mid_burst", "immediate"]
    assert report["acked"] > 0
    assert report["problems"] == []
    assert result.returncode == 0


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def _send(server: LiveServer, event_id: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_event({"event_id": event_id, "level": "error", "message": f"disk test {event_id}",
                        "extra": {"padding": "x" * 1000}})
    request = urllib.request.Request(
        f"{server.url}/api/1/envelope/", data=envelope.serialize(), method="POST",
        headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={PUBLIC_KEY}",
                 "Content-Type": "application/x-sentry-envelope"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _lower(response.headers.items()), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers.items()), json.loads(error.read())


def _health(server: LiveServer, status: int = 200) -> dict[str, Any]:
    """/healthz, which answers 503 while events cannot be kept (the backup log is unwritable)."""
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as response:
            answered, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        answered, body = error.code, error.read()
    assert answered == status
    health: dict[str, Any] = json.loads(body)
    return health


def test_an_unwritable_backup_log_answers_503_and_recovers_by_itself(
        live_server: LiveServer) -> None:
    """Disk full, simulated in a way root cannot bypass: the file size limit (RLIMIT_FSIZE, set
    from outside with prlimit) of the process that appends to the log, the server's journal
    process, stops the day file from growing, so its write fails with EFBIG, as ENOSPC would;
    part of the line may be written first, as on a full disk."""
    first = [uuid.uuid4().hex for _ in range(10)]
    assert all(_send(live_server, e)[0] == 200 for e in first)
    (day_file,) = (live_server.data_dir / "bugs" / "logs").glob("*.jsonl")
    size = day_file.stat().st_size
    assert live_server.log_path.stat().st_size < size  # its own log must still be writable
    pid = live_server.journal_pid()
    assert pid is not None
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    try:  # only the soft limit, so that it can be raised again without privileges
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (size + 100, hard))
    except (PermissionError, OSError) as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):  # CI must not go green without this path having run
            pytest.fail(f"cannot set the server's file size limit: {exc}")
        pytest.skip(f"cannot set the server's file size limit: {exc}")

    refused = uuid.uuid4().hex
    try:
        for _ in range(2):  # the second append finds the torn first attempt and cuts it
            status, headers, body = _send(live_server, refused)
            assert status == 503, body
            assert int(headers["retry-after"]) > 0
            assert body["code"] and "backup log" in body["detail"]
            torn = day_file.read_bytes()[size:]  # what got in before the disk was "full"
            assert len(torn) == 100 and not torn.endswith(b"\n")
        health = _health(live_server, status=503)
        assert health["status"] == "degraded"
        assert health["backup_log"]["state"] == "error"
        assert not live_server.error_logs("event_id = ?", (refused,))  # nothing acknowledged
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))

    # Writable again: the same event (an SDK would retry it) is taken, nothing else is needed.
    assert _send(live_server, refused)[:1] == (200,)
    later = uuid.uuid4().hex
    assert _send(live_server, later)[0] == 200
    health = _health(live_server)
    assert health["status"] == "ok" and health["backup_log"]["state"] == "ok"
    stored = {r["event_id"] for r in live_server.error_logs()}
    assert stored == {*first, refused, later}
    # The torn attempt was cut off: every line of the day file is whole JSON, each event once.
    lines = day_file.read_bytes().splitlines(keepends=True)
    assert all(line.endswith(b"\n") for line in lines)
    logged = [json.loads(line)["row"]["event_id"] for line in lines
              if json.loads(line)["kind"] == "error_log"]
    assert sorted(logged) == sorted([*first, refused, later])
    assert "cannot write the backup log" in live_server.log()


FULL_DISK = """
import resource, sys, uuid
from datetime import UTC, datetime
from pathlib import Path
from shim.writer.log import BackupLog
from shim.writer.journal import Journal
from shim.core.event import normalize_event
from shim.core.records import Batch
from shim.store.sqlite import SQLiteStore

root = Path(sys.argv[1])
store = SQLiteStore(str(root / "shim.db"))
journal = Journal(BackupLog(root / "logs"), store)
now = datetime.now(UTC)

def batch(n):
    rows = [normalize_event({"level": "error", "message": f"event {uuid.uuid4()}"},
                            event_id=uuid.uuid4().hex, project_id="1", received=now,
                            bug_level="critical") for _ in range(n)]
    return Batch(error_logs=rows, received_at=now.isoformat())

assert journal.commit([batch(200)]) is not None
wal = (root / "shim.db-wal").stat().st_size
assert (root / "logs" / f"{now:%Y-%m-%d}.jsonl").stat().st_size < wal // 2
# The database's disk is full (its WAL cannot grow); the log still has room.
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (wal, hard))
kept = journal.commit([batch(20)])
print("kept", "log-only" if kept is None else "applied")
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
while not journal.catch_up():
    pass
print("stored", store.db.execute("SELECT count(*) FROM error_logs").fetchone()[0])
print("rejected", (root / "logs" / "rejected.jsonl").exists())
"""


def test_a_full_database_disk_keeps_events_in_the_log_not_rejected(tmp_path: Path) -> None:
    """The store failing to write (SQLITE_IOERR / SQLITE_FULL, an OperationalError) is the store
    being down, not the events being poison: they wait in the log and are applied once it can
    write again, instead of being set aside in rejected.jsonl for ever."""
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["kept log-only", "stored 220", "rejected False"], (
        result.stdout + result.stderr)
