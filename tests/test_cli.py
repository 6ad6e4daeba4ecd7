"""The operator's commands, run for real (``python -m shim ...``) against a live server's database.

The database is filled by real ``sentry_sdk`` clients through the running server, and every command
runs while that server is still up, as an operator would use them.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from conftest import LiveServer, expect_ok, run_script, run_shim, script, shim_env

WORKLOAD = script("""
    import os
    from datetime import datetime, timedelta, timezone

    import sentry_sdk

    def before_send(event, hint):
        if event.get("tags", {}).get("old") == "yes":  # seen three days ago
            event["timestamp"] = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()
        return event

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, before_send=before_send)

    def read_page(number):
        raise ValueError(f"page {number} is empty")

    for number in range(3):
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("component", "ocr")
            scope.set_tag("workspace_id", "ws-1")
            scope.set_level("fatal")
            try:
                read_page(number)
            except ValueError as exc:
                sentry_sdk.capture_exception(exc)

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("component", "uploader")
        scope.set_tag("workspace_id", "ws-2")
        sentry_sdk.capture_message("disk full on /dev/sda1", level="fatal")

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("component", "ocr")
        scope.set_tag("old", "yes")
        sentry_sdk.capture_message("legacy parser crashed", level="fatal")

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("component", "ocr")
        sentry_sdk.capture_message("scan started", level="info")
        sentry_sdk.capture_message("page is blurry", level="warning")
        try:
            {}["missing"]
        except KeyError as exc:
            sentry_sdk.capture_exception(exc)  # level error: logged, no bug
""")

OCR_BUG = ("BUG-00001", "Critical: ocr - ValueError")
DISK_BUG = ("BUG-00002", "Critical: uploader - disk full on /dev/sda1")
OLD_BUG = ("BUG-00003", "Critical: ocr - legacy parser crashed")

RECURRENCE = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.set_tag("component", "ocr")
    sentry_sdk.set_tag("workspace_id", "ws-1")
    sentry_sdk.set_level("fatal")

    def read_page(number):
        raise ValueError(f"page {number} is empty")

    try:
        read_page(7)
    except ValueError as exc:
        sentry_sdk.capture_exception(exc)
""")


def fill(server: LiveServer) -> None:
    expect_ok(run_script(WORKLOAD, server.dsn))
    assert [(b["bug_number"], b["title"]) for b in server.bugs()] == [OCR_BUG, DISK_BUG, OLD_BUG]


def shim(server: LiveServer, *args: str, code: int = 0) -> str:
    """Run ``shim ARGS``; check its exit status and that it did not crash; its output."""
    result = run_shim(server, *args)
    assert result.returncode == code, f"shim {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout if code == 0 else result.stderr


def shim_json(server: LiveServer, *args: str) -> Any:
    return json.loads(shim(server, *args, "--json"))


def rows(table: str) -> list[list[str]]:
    """A printed table as lists of cells (split on runs of two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.strip().splitlines()]


def numbers(server: LiveServer, *args: str) -> list[str]:
    return [b["bug_number"] for b in shim_json(server, "bugs", *args)]


def test_bugs_lists_every_bug_and_each_filter_filters(live_server: LiveServer) -> None:
    fill(live_server)

    table = rows(shim(live_server, "bugs"))
    assert table[0] == ["NUMBER", "STATUS", "SEVERITY", "COUNT", "LAST SEEN", "TITLE"]
    by_number = {r[0]: r for r in table[1:]}
    assert set(by_number) == {"BUG-00001", "BUG-00002", "BUG-00003"}
    assert by_number["BUG-00001"][1:4] == ["open", "critical", "3"]
    assert by_number["BUG-00001"][-1] == OCR_BUG[1]
    assert by_number["BUG-00002"][-1] == DISK_BUG[1]
    assert by_number["BUG-00003"][4] == "3d ago"

    listed = shim_json(live_server, "bugs")
    assert [b["bug_number"] for b in listed] == ["BUG-00002", "BUG-00001", "BUG-00003"]  # last
    first = {b["bug_number"]: b for b in listed}["BUG-00001"]
    assert (first["title"], first["status"], first["occurrence_count"]) == (OCR_BUG[1], "open", 3)
    assert (first["component"], first["workspace_id"], first["error_type"]) == (
        "ocr", "ws-1", "ValueError")
    assert len(first["related_log_ids"]) == 3 and first["is_regression"] == 0

    assert numbers(live_server, "--sort", "count") == ["BUG-00001", "BUG-00002", "BUG-00003"]
    assert numbers(live_server, "--component", "uploader") == ["BUG-00002"]
    assert numbers(live_server, "--component", "ocr") == ["BUG-00001", "BUG-00003"]
    assert numbers(live_server, "--workspace", "ws-1") == ["BUG-00001"]
    assert numbers(live_server, "--since", "24h") == ["BUG-00002", "BUG-00001"]
    assert numbers(live_server, "--since", "7d") == ["BUG-00002", "BUG-00001", "BUG-00003"]
    assert numbers(live_server, "--status", "resolved") == []
    assert shim(live_server, "bugs", "--status", "resolved").strip() == "no bugs match"
    assert "not a duration" in shim(live_server, "bugs", "--since", "soon", code=1)


def test_bug_shows_every_field_the_stack_trace_and_recent_logs(live_server: LiveServer) -> None:
    fill(live_server)

    shown = shim(live_server, "bug", "BUG-00001")
    assert f"Bug:         BUG-00001  {OCR_BUG[1]}" in shown
    assert "Status:      open\n" in shown
    assert "Occurrences: 3\n" in shown
    assert "Component:   ocr\n" in shown and "Workspace:   ws-1\n" in shown
    trace = shown.split("Stack trace:\n", 1)[1]
    assert trace.startswith("Traceback (most recent call last):")
    assert "in read_page" in trace and "ValueError: page 0 is empty" in trace
    recent = shown.split("Recent logs (3):\n", 1)[1]
    assert rows(recent)[0] == ["TIME", "LEVEL", "EVENT", "MESSAGE"]
    assert [r[1] for r in rows(recent)[1:]] == ["critical"] * 3

    detail = shim_json(live_server, "bug", "bug-1")  # the short forms name the same bug
    assert detail["bug_number"] == "BUG-00001" and detail["status_history"] == []
    assert [log["error_message"] for log in detail["recent_logs"]] == [
        "page 0 is empty", "page 1 is empty", "page 2 is empty"]
    assert {log["event_id"] for log in detail["recent_logs"]} == {
        r["event_id"] for r in live_server.error_logs("error_type = 'ValueError'")}
    assert shim_json(live_server, "bug", "2")["title"] == DISK_BUG[1]

    assert shim(live_server, "bug", "BUG-00099", code=1).strip() == "shim: no such bug: BUG-00099"
    assert "shim: no such bug: BUG-00099" in shim(live_server, "logs", "--bug", "99", code=1)
    message_bug = shim(live_server, "bug", DISK_BUG[0])  # a message: no empty error line
    assert "Bug:" in message_bug and "Error:" not in message_bug
    assert "is not a bug number" in shim(live_server, "bug", "nonsense", code=1)


def test_resolve_then_a_recurrence_reopens_as_a_regression(live_server: LiveServer) -> None:
    fill(live_server)

    done = shim(live_server, "resolve", "BUG-00001", "--by", "ops")
    assert done.strip() == f"BUG-00001: resolved  {OCR_BUG[1]}"
    assert numbers(live_server, "--status", "resolved") == ["BUG-00001"]
    assert numbers(live_server, "--status", "open") == ["BUG-00002", "BUG-00003"]
    [change] = shim_json(live_server, "bug", "1")["status_history"]
    assert (change["status"], change["changed_by"]) == ("resolved", "ops")

    expect_ok(run_script(RECURRENCE, live_server.dsn))
    assert "Status:      open (regression)\n" in shim(live_server, "bug", "1")
    table = {r[0]: r for r in rows(shim(live_server, "bugs"))[1:]}
    assert table["BUG-00001"][1:4] == ["open (regression)", "critical", "4"]
    again = shim_json(live_server, "bug", "1")
    assert (again["status"], again["is_regression"], again["occurrence_count"]) == ("open", 1, 4)

    # The other status commands, and the change is logged like an event (so restore replays it).
    assert shim_json(live_server, "close", "2")[0]["status"] == "closed"
    assert shim_json(live_server, "start", "3")[0]["status"] == "in_progress"
    assert shim_json(live_server, "reopen", "2")[0]["status"] == "open"
    logged = [json.loads(line) for path in sorted(live_server.data_dir.glob("bugs/logs/*.jsonl"))
              for line in path.read_text().splitlines()]
    assert [(x["change"]["bug_number"], x["change"]["status"])
            for x in logged if x["kind"] == "status"] == [
        ("BUG-00001", "resolved"), ("BUG-00002", "closed"), ("BUG-00003", "in_progress"),
        ("BUG-00002", "open")]

    assert shim(live_server, "resolve", "1", "99", code=1).strip() == (
        "shim: no such bug: BUG-00099")
    assert live_server.query("SELECT status FROM bugs WHERE bug_number = 'BUG-00001'") == [
        {"status": "open"}]  # nothing of a refused command was applied


def test_assign_and_unassign(live_server: LiveServer) -> None:
    fill(live_server)

    out = shim(live_server, "assign", "BUG-00002", "3", "--to", "alice", "--by", "ops")
    assert out.splitlines() == [f"BUG-00002: open, assigned to alice  {DISK_BUG[1]}",
                                f"BUG-00003: open, assigned to alice  {OLD_BUG[1]}"]
    detail = shim(live_server, "bug", "2")
    assert "Assignee:    alice\n" in detail
    assert "assignee alice  by ops" in detail.split("Status changes:\n", 1)[1]
    assert [b["assignee"] for b in live_server.bugs()] == [None, "alice", "alice"]

    [bug] = shim_json(live_server, "assign", "2", "--to", "")
    assert bug["assignee"] is None and bug["status"] == "open"
    assert "Assignee:    -\n" in shim(live_server, "bug", "2")
    assert "no such bug: BUG-00042" in shim(live_server, "assign", "42", "--to", "x", code=1)


def test_logs_filters_by_level_component_and_bug(live_server: LiveServer) -> None:
    fill(live_server)

    table = rows(shim(live_server, "logs"))
    assert table[0] == ["TIME (UTC)", "LEVEL", "COMPONENT", "BUG", "MESSAGE"]
    assert len(table) == 1 + 8
    assert [table[-3][1], table[-3][2], table[-3][-1]] == ["info", "ocr", "scan started"]

    every = shim_json(live_server, "logs")
    assert [log["cursor"] for log in every] == sorted(log["cursor"] for log in every)  # oldest 1st
    assert {log["event_id"] for log in every} == {r["event_id"] for r in live_server.error_logs()}
    by_message = {log["message"]: log for log in every}
    assert by_message["disk full on /dev/sda1"]["bug_number"] == "BUG-00002"
    assert by_message["scan started"]["bug_number"] is None

    def messages(*args: str) -> list[str]:
        return [log["message"] for log in shim_json(live_server, "logs", *args)]

    errors = messages("--level", "error")
    assert len(errors) == 6 and "scan started" not in errors and "page is blurry" not in errors
    assert "page is blurry" in messages("--level", "warning")
    assert messages("--component", "uploader") == ["disk full on /dev/sda1"]
    assert {log["bug_number"] for log in shim_json(live_server, "logs", "--bug", "BUG-00001")} == {
        "BUG-00001"}
    assert len(messages("--bug", "1")) == 3
    assert len(messages("--limit", "2")) == 2
    assert "no such bug: BUG-00009" in shim(live_server, "logs", "--bug", "9", code=1)


def test_logs_tail_prints_new_events_as_they_arrive(live_server: LiveServer) -> None:
    expect_ok(run_script(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        sentry_sdk.capture_message("before the tail", level="warning")
    """), live_server.dsn))
    tail = subprocess.Popen(
        [sys.executable, "-m", "shim", "logs", "--tail", "--interval", "0.2"],
        env=shim_env(live_server, {"PYTHONFAULTHANDLER": "1"}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As in a terminal: the test run itself may have been started with SIGINT ignored (a
        # background job of a script), which a child inherits, and Python then keeps it ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in tail.stdout or ()],
                              daemon=True)
    reader.start()

    def wait_for(text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise AssertionError(f"`shim logs --tail` did not print {text!r} within {timeout}s")

    try:
        assert wait_for("before the tail").split()[2] == "warning"
        expect_ok(run_script(script("""
            import os
            import sentry_sdk

            sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
            sentry_sdk.set_tag("component", "tailed")
            sentry_sdk.capture_message("sent while tailing", level="error")
        """), live_server.dsn))
        line = wait_for("sent while tailing")
        assert line.split()[2:4] == ["error", "tailed"]
        assert not line.startswith("TIME")  # no second header
    finally:
        tail.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = tail.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # With PYTHONFAULTHANDLER set, SIGABRT makes it print where every thread is.
            tail.send_signal(signal.SIGABRT)
            _, stderr = tail.communicate(timeout=10)
            raise AssertionError(f"`shim logs --tail` did not stop on Ctrl-C:\n{stderr}") from None
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.wait()
    assert code == 0
    assert "Traceback" not in (tail.stderr.read() if tail.stderr else "")


def test_stats(live_server: LiveServer) -> None:
    fill(live_server)

    stats = shim_json(live_server, "stats")
    # The old bug's event happened three days ago: in neither window (it was received now).
    assert stats["levels"]["hour"] == {"critical": 4, "error": 1, "warning": 1, "info": 1}
    assert stats["levels"]["day"] == stats["levels"]["hour"]
    assert stats["items"]["hour"] == {"event": 8}
    assert stats["bugs_by_status"] == {"open": 3}
    assert [(b["bug_number"], b["occurrence_count"]) for b in stats["busiest"]] == [
        ("BUG-00001", 3), ("BUG-00002", 1)]

    text = shim(live_server, "stats")
    sections = text.split("\n\n")
    assert sections[0].startswith("Events by level")
    assert ["critical", "4", "4"] in rows(sections[0].split("\n", 1)[1])
    assert ["event", "8", "8"] in rows(sections[1].split("\n", 1)[1])
    assert ["open", "3"] in rows(sections[2].split("\n", 1)[1])
    assert rows(sections[3].split("\n", 1)[1])[1][:3] == ["BUG-00001", "3", "open"]


def test_export_to_a_file_and_to_standard_output(live_server: LiveServer, tmp_path: Path) -> None:
    fill(live_server)
    expect_ok(run_script(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        sentry_sdk.set_tag("component", "@macro")
        sentry_sdk.set_level("fatal")
        try:
            raise RuntimeError("=HYPERLINK(\\"http://evil\\", \\"click\\")")
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)
    """), live_server.dsn))

    out = tmp_path / "export" / "all-bugs.csv"
    assert shim(live_server, "export", "--format", "csv", "--out", str(out)).strip() == (
        f"wrote {out}")
    written = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert [r["bug_number"] for r in written] == ["BUG-00001", "BUG-00002", "BUG-00003",
                                                  "BUG-00004"]
    assert written[0]["occurrence_count"] == "3" and written[0]["title"] == OCR_BUG[1]
    evil = written[3]
    assert evil["component"] == "'@macro"
    assert evil["error_message"] == "'=HYPERLINK(\"http://evil\", \"click\")"
    assert evil["title"] == "Critical: @macro - RuntimeError"  # does not start with a trigger

    stdout = shim(live_server, "export", "--out", "-")
    assert stdout.replace("\r\n", "\n") == out.read_text(encoding="utf-8").replace("\r\n", "\n")
    exported = json.loads(shim(live_server, "export", "--format", "json", "--out", "-"))
    assert [b["bug_number"] for b in exported] == [r["bug_number"] for r in written]
    assert exported[3]["error_message"].startswith("=HYPERLINK")  # JSON is not neutralised

    named = tmp_path / "bugs-copy.json"  # the format follows the file name
    shim(live_server, "export", "--out", str(named))
    assert json.loads(named.read_bytes()) == exported

    both = shim(live_server, "export").splitlines()
    snapshot = live_server.data_dir / "bugs"
    assert both == [f"wrote {snapshot / 'bugs.csv'}", f"wrote {snapshot / 'bugs.json'}"]
    assert shim_json(live_server, "export") == {
        "wrote": [str(snapshot / "bugs.csv"), str(snapshot / "bugs.json")]}
    assert (snapshot / "bugs.csv").read_bytes() == out.read_bytes()


def test_dsn_prints_what_the_sdk_needs(live_server: LiveServer) -> None:
    port = live_server.url.rsplit(":", 1)[1]
    printed = run_shim(live_server, "dsn", env={"SHIM_PORT": port})
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == f"DSN: {live_server.dsn}"
    as_json = run_shim(live_server, "dsn", "--json", env={"SHIM_PORT": port})
    assert json.loads(as_json.stdout) == [
        {"dsn": live_server.dsn, "project": None, "expires_at": None, "expired": False}]
