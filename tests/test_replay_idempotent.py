"""A replay of the backup log into the server that wrote it changes nothing: no row, no line.

A real sentry-sdk script sends events (two of them bugs), a batch of Sentry Logs records, and a
monitored job's check-ins; a legacy store event and an operator's status change join them. Then
``shim replay`` (the real command, as the operator runs it) sends one day file, and then the whole
backup directory, back to the same running server.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from conftest import PUBLIC_KEY, LiveServer, expect_ok, run_script, run_shim, script

SCANNER = script("""
    import os
    import sentry_sdk
    from sentry_sdk.crons import MonitorStatus, capture_checkin

    options = dict(dsn=os.environ["SENTRY_DSN"], debug=True)
    try:  # sentry-sdk 2.x sends Sentry Logs only when asked; 3.x has no such option
        sentry_sdk.init(enable_logs=True, **options)
    except TypeError:
        sentry_sdk.init(**options)
    sentry_sdk.set_tag("component", "scanner")

    for page in range(3):  # one bug, three times
        with sentry_sdk.new_scope() as scope:
            scope.set_level("fatal")
            try:
                raise ValueError(f"page {page} is empty")
            except ValueError as exc:
                sentry_sdk.capture_exception(exc)
    sentry_sdk.capture_message("disk almost full", level="warning")
    # Seven records in one envelope: each must be recognised when it comes back alone.
    for n in range(7):
        sentry_sdk.logger.info("page {n} scanned", n=n)
    run = capture_checkin(monitor_slug="nightly-scan", status=MonitorStatus.IN_PROGRESS)
    capture_checkin(monitor_slug="nightly-scan", check_in_id=run, status=MonitorStatus.OK,
                    duration=1.5)
    capture_checkin(monitor_slug="hourly-sync", status=MonitorStatus.ERROR)
    sentry_sdk.flush()
""")


def store_event(server: LiveServer) -> None:
    """A legacy ``/store/`` event (its row is replayed to ``/store/``)."""
    body = json.dumps({"event_id": uuid.uuid4().hex, "level": "error", "logger": "legacy-job",
                       "message": "old client failed"}).encode()
    request = urllib.request.Request(
        f"{server.url}/api/1/store/", data=body, method="POST",
        headers={"Content-Type": "application/json",
                 "X-Sentry-Auth": f"Sentry sentry_key={PUBLIC_KEY}, sentry_version=7"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def state_of(server: LiveServer) -> dict[str, Any]:
    """Everything a replay could add to: the tables and the backup log's day files."""
    logs = server.data_dir / "bugs" / "logs"
    return {
        "error_logs": server.query("SELECT event_id, item_type, message, created_at FROM error_logs"
                                   " ORDER BY event_id"),
        "bugs": server.query("SELECT bug_number, status, occurrence_count, last_occurred_at,"
                             " updated_at FROM bugs ORDER BY bug_number"),
        "check_ins": server.query("SELECT * FROM check_ins ORDER BY check_in_id"),
        "status_changes": server.query("SELECT change_id FROM status_changes"),
        "item_counts": server.item_counts(),
        "day_files": {p.name: len(p.read_bytes().splitlines()) for p in logs.glob("*.jsonl")},
    }


def replay(server: LiveServer, path: Path) -> dict[str, Any]:
    result = run_shim(server, "replay", str(path), "--url", server.url, "--json", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_replaying_the_backup_log_into_its_own_server_adds_no_row_and_no_line(
        live_server: LiveServer) -> None:
    expect_ok(run_script(SCANNER, live_server.dsn))
    store_event(live_server)
    resolved = run_shim(live_server, "resolve", "BUG-00001")
    assert resolved.returncode == 0, resolved.stderr

    before = state_of(live_server)
    kinds = {r["item_type"] for r in before["error_logs"]}
    assert kinds == {"event", "log", "store"}
    assert sum(r["item_type"] == "log" for r in before["error_logs"]) == 7
    assert [(b["status"], b["occurrence_count"]) for b in before["bugs"]] == [("resolved", 3)]
    assert sorted(c["status"] for c in before["check_ins"]) == ["error", "ok"]
    assert len(before["status_changes"]) == 1
    [day_file] = (live_server.data_dir / "bugs" / "logs").glob("*.jsonl")

    summary = replay(live_server, day_file)
    # Every row and check-in line was sent (each answered 200), none was stored again.
    assert summary["sent"] == len(before["error_logs"]) + 3
    assert summary["statuses"] == {"200": summary["sent"]}
    assert summary["skipped"]["status lines"] == 1
    assert state_of(live_server) == before

    summary = replay(live_server, live_server.data_dir / "bugs" / "logs")
    assert summary["statuses"] == {"200": len(before["error_logs"]) + 3}
    assert state_of(live_server) == before
