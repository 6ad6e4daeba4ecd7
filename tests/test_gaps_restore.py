"""``shim restore`` on backup day files whose last one ends in a torn line, as a crash in the middle
of an append leaves it: the real server writes the log from a real SDK's events, the test tears the
last write, and the real command (a subprocess) rebuilds everything before the tear and names it.

The torn write was never acknowledged (the writer answers only after the append's fsync), so
leaving it out loses nothing a client was told was kept; saying so lets an operator tell a crash
from a log cut short by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import LiveServer, expect_ok, run_script, run_shim, script
from test_backup import DAY1, DAY2, event_row, events
from test_recovery import table_rows

from shim.store.sqlite import SQLiteStore
from shim.writer.log import BackupLog
from shim.writer.restore import restore

WORKLOAD = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.set_tag("component", "scanner")

    def parse(page):
        raise ValueError(f"page {page} is empty")

    for page in range(3):  # one bug, three occurrences
        try:
            parse(page)
        except ValueError as exc:
            with sentry_sdk.new_scope() as scope:
                scope.set_level("fatal")
                sentry_sdk.capture_exception(exc)
    sentry_sdk.capture_message("disk 91% full", level="warning")
""")
LAST = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.capture_message("the write a crash cut short", level="info")
""")


def lines_with_ends(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Each line of a day file with the byte offset where it starts."""
    found, offset = [], 0
    for raw in path.read_bytes().splitlines(keepends=True):
        found.append((offset, json.loads(raw)))
        offset += len(raw)
    return found


def test_restore_leaves_out_a_torn_last_line_names_it_and_restores_everything_before(
        live_server: LiveServer, tmp_path: Path) -> None:
    def whole_log() -> bytes:  # (the day files in order: a run may cross midnight UTC)
        return b"".join(f.read_bytes() for f in sorted(
            (live_server.data_dir / "bugs" / "logs").glob("*.jsonl")))

    expect_ok(run_script(WORKLOAD, live_server.dsn))
    first_run = whole_log()
    expect_ok(run_script(LAST, live_server.dsn))
    [last] = live_server.error_logs("message = ?", ("the write a crash cut short",))
    live = {table: table_rows(live_server.db_path, table) for table in ("bugs", "error_logs")}
    assert [b["occurrence_count"] for b in live["bugs"]] == [3]
    assert len(live["error_logs"]) == 5

    # A copy of the log as a crash would leave it: the first run in an earlier day file, then the
    # last write torn halfway through its event line (its item counts line never written).
    logs = tmp_path / "crashed-logs"
    logs.mkdir()
    earlier = logs / "2026-01-01.jsonl"
    earlier.write_bytes(first_run)
    whole = whole_log()[len(first_run):]
    later = logs / "2026-01-02.jsonl"
    later.write_bytes(whole)
    [(start, line)] = [(offset, line) for offset, line in lines_with_ends(later)
                       if line["kind"] == "error_log"]
    assert line["row"]["event_id"] == last["event_id"]
    line_length = whole.index(b"\n", start) + 1 - start
    torn = line_length // 2
    later.write_bytes(whole[:start + torn])

    fresh = tmp_path / "restored.db"
    done = run_shim(live_server, "restore", "--from", str(logs), "--database", f"sqlite:///{fresh}")
    assert done.returncode == 0, done.stderr
    whole_lines = first_run.count(b"\n") + whole[:start].count(b"\n")
    assert done.stdout.startswith(f"read {whole_lines} lines: 4 events stored, 0 already present")
    assert (f"left out a torn last line (a write cut short by a crash, or still being written): "
            f"{later.name} from byte {start}: {torn} bytes without a newline") in done.stderr
    assert earlier.name not in done.stderr  # the whole file is not reported
    assert table_rows(fresh, "bugs") == live["bugs"]
    assert table_rows(fresh, "error_logs") == [
        row for row in live["error_logs"] if row["event_id"] != last["event_id"]]

    as_json = run_shim(live_server, "restore", "--from", str(logs), "--database",
                       f"sqlite:///{fresh}", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["events"], report["duplicates"], report["unreadable"]) == (0, 4, [])
    assert report["torn"] == [f"{later.name} from byte {start}: {torn} bytes without a newline"]


def test_restore_of_whole_files_reports_no_torn_line(live_server: LiveServer,
                                                     tmp_path: Path) -> None:
    expect_ok(run_script(WORKLOAD, live_server.dsn))
    done = run_shim(live_server, "restore", "--database", f"sqlite:///{tmp_path / 'fresh.db'}",
                    "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["events"], report["torn"]) == (4, [])
    assert done.stderr == ""


def test_a_torn_line_is_named_in_whichever_day_file_it_ends(tmp_path: Path) -> None:
    """A crash on one day, then a new day's file: the older file keeps its torn tail (appends
    cut a torn line only in the file they append to), and restore names it too."""
    log = BackupLog(tmp_path / "logs")
    log.append_batches([events(event_row("first day", DAY1), received=DAY1)])
    [first] = log.files()
    whole = log.path(first).stat().st_size
    torn = b'{"v":1,"kind":"error_log","row":{"event_id":"'
    with open(log.path(first), "ab") as f:
        f.write(torn)
    log.append_batches([events(event_row("second day", DAY2), received=DAY2)])
    assert log.files() == [first, log.files()[1]]
    assert log.torn_tail(first) == (whole, whole + len(torn))
    assert log.torn_tail(log.files()[1]) is None
    store = SQLiteStore(str(tmp_path / "restored.db"))
    try:
        report = restore(log.directory, store)
    finally:
        store.close()
    assert (report.events, report.unreadable) == (2, [])
    assert report.torn == [f"{first} from byte {whole}: {len(torn)} bytes without a newline"]
