"""``shim bug N --grouping``: why the latest event of a bug grouped where it did, run for real
against a live server filled by a real ``sentry_sdk`` client."""

from __future__ import annotations

import json

from conftest import LiveServer, expect_ok, run_script, script
from test_cli import shim, shim_json

WORKLOAD = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.set_level("fatal")

    def read_page(number):
        raise ValueError(f"page {number} is empty")

    for number in range(2):
        try:
            read_page(number)
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
    sentry_sdk.capture_message("disk 93% full on /dev/sda1", level="fatal")
""")


def test_bug_grouping_shows_the_variant_components_and_hashes(live_server: LiveServer) -> None:
    expect_ok(run_script(WORKLOAD, live_server.dsn))
    exception_bug, message_bug = live_server.bugs()
    latest = live_server.error_logs("related_bug_id = ?", (exception_bug["id"],))[-1]

    shown = shim(live_server, "bug", "1", "--grouping")
    assert "Bug:         BUG-00001  Critical: unknown - ValueError\n" in shown
    assert f"Event:       {latest['event_id']} at " in shown
    assert "Grouped by:  exception (grouping v2)\n" in shown
    assert f"Hash:        {exception_bug['fingerprint']}\n" in shown
    components = shown.split("Components:\n", 1)[1].split("Hashes of this bug:\n")[0]
    assert "  exceptions:\n    - type: ValueError\n" in components
    assert "fn:read_page" in components and "page 1" not in components
    assert shown.endswith(f"Hashes of this bug:\n  {exception_bug['fingerprint']}  v2\n")

    detail = shim_json(live_server, "bug", "1", "--grouping")
    assert detail["event_id"] == latest["event_id"]
    assert detail["grouping"]["variant"] == "exception"
    assert detail["grouping"]["hash"] == exception_bug["fingerprint"]
    assert detail["hashes"] == [{"hash": exception_bug["fingerprint"], "grouping_version": 2}]

    message = shim_json(live_server, "bug", "BUG-00002", "--grouping")["grouping"]
    assert (message["variant"], message["components"]) == (
        "message", {"message": "disk <num>% full on /dev/sda<num>"})
    assert message["hash"] == message_bug["fingerprint"]


REPEAT = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.capture_message("disk 97% full on /dev/sda1", level="fatal")
""")


def test_merge_and_unmerge_from_the_command_line(live_server: LiveServer) -> None:
    expect_ok(run_script(WORKLOAD, live_server.dsn))
    exception_bug, message_bug = live_server.bugs()

    assert "name the bug to keep" in shim(live_server, "merge", "1", code=1)
    assert "no bug BUG-00009" in shim(live_server, "merge", "1", "9", code=1)
    merged = shim(live_server, "merge", "BUG-00001", "2", "--by", "ops")
    assert merged.splitlines() == ["BUG-00001: 3 occurrences  Critical: unknown - ValueError",
                                   "BUG-00002: merged into BUG-00001  "
                                   + message_bug["title"]]
    assert "is merged into BUG-00001 already" in shim(live_server, "merge", "1", "2", code=1)
    assert "Merged into: BUG-00001 (its events count there)\n" in shim(live_server, "bug", "2")
    assert [b["bug_number"] for b in shim_json(live_server, "bugs")] == ["BUG-00001"]
    expect_ok(run_script(REPEAT, live_server.dsn))  # a repeat of the merged bug counts on the first
    counts = {b["bug_number"]: b["occurrence_count"] for b in live_server.bugs()}
    assert counts == {"BUG-00001": 4, "BUG-00002": 0}

    own = exception_bug["fingerprint"]
    assert "own fingerprint" in shim(live_server, "unmerge", "1", own, code=1)
    assert "has no hash" in shim(live_server, "unmerge", "1", "0" * 32, code=1)
    split = shim_json(live_server, "unmerge", "1", message_bug["fingerprint"])
    assert [(b["bug_number"], b["occurrence_count"], b["merged_into"]) for b in split] == [
        ("BUG-00001", 2, None), ("BUG-00002", 2, None)]
    logged = [json.loads(line)["kind"] for day in (live_server.data_dir / "bugs" / "logs").glob(
        "*.jsonl") for line in day.read_text().splitlines()]
    assert logged.count("merge") == 2
