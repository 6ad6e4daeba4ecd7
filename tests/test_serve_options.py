"""Server settings that change where an event goes, tried on a real ``shim serve`` with real
``sentry_sdk`` clients: ``SHIM_JOURNAL_PROCESS=0`` (the backup log and the store written from the
server process itself, not from its journal child) and ``SHIM_SCRUB_KEYS`` (an operator's own
secret key names, scrubbed like the built-in ones in the database and in the backup log).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LiveServer, expect_ok, run_script, script, sdk_python
from test_recovery import day_lines, healthz

from shim.core.scrub import FILTERED

LICENSE = "LIC-7731-ab12cd34"  # the custom secret: under the key ocr_license
PIN = "pin-5521"  # another configured key, in the message's text
KEPT = "batch-42-kept"  # under ocr_batch, which is not configured: stored as sent

LICENSED = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
    sentry_sdk.set_tag("component", "ocr")
    sentry_sdk.set_tag("ocr_license", os.environ["LICENSE"])
    sentry_sdk.set_tag("ocr_batch", os.environ["KEPT"])
    sentry_sdk.set_extra("ocr_license", os.environ["LICENSE"])
    sentry_sdk.set_extra("ocr_batch", os.environ["KEPT"])

    def activate(page):
        raise PermissionError(f"page {page}: licence refused")

    for page in (1, 2):  # one bug, two occurrences
        try:
            activate(page)
        except PermissionError as exc:
            with sentry_sdk.new_scope() as scope:
                scope.set_level("fatal")
                sentry_sdk.capture_exception(exc)
    sentry_sdk.capture_event({
        "message": f"licence check failed: employee_pin={os.environ['PIN']}",
        "level": "warning",
        "request": {"url": "http://scanner.local/activate", "method": "POST",
                    "data": {"ocr_license": os.environ["LICENSE"],
                             "ocr_batch": os.environ["KEPT"]}},
    })
""")


def every_byte_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


@pytest.mark.parametrize("live_server", [{"SHIM_JOURNAL_PROCESS": "0",
                                          "SHIM_SCRUB_KEYS": "ocr_license,employee_pin"}],
                         indirect=True)
def test_in_process_journal_stores_sdk_events_with_custom_keys_scrubbed_everywhere(
        live_server: LiveServer, sdk_major: str, tmp_path: Path) -> None:
    assert live_server.journal_pid() is None  # no journal child: the server writes itself
    env = {"LICENSE": LICENSE, "PIN": PIN, "KEPT": KEPT}
    expect_ok(run_script(LICENSED, live_server.dsn, env=env, python=sdk_python(sdk_major),
                         cwd=tmp_path))
    assert healthz(live_server)["status"] == "ok"

    rows = live_server.error_logs("item_type = 'event'")
    assert [r["log_level"] for r in rows] == ["critical", "critical", "warning"]
    [bug] = live_server.bugs()
    assert (bug["title"], bug["occurrence_count"]) == ("Critical: ocr - PermissionError", 2)
    assert {r["related_bug_id"] for r in rows[:2]} == {bug["id"]}

    for row in rows:
        context = json.loads(row["context"])
        assert context["tags"]["ocr_license"] == FILTERED
        assert context["tags"]["ocr_batch"] == KEPT
        assert context["extra"]["ocr_license"] == FILTERED
        assert context["extra"]["ocr_batch"] == KEPT
    request = json.loads(rows[2]["context"])["request"]
    assert request["data"] == {"ocr_license": FILTERED, "ocr_batch": KEPT}
    assert rows[2]["message"] == f"licence check failed: employee_pin={FILTERED}"

    # The backup log holds the same scrubbed rows (it is what a restore rebuilds from).
    logged = [line["row"] for line in day_lines(live_server.data_dir)
              if line["kind"] == "error_log"]
    assert sorted(r["event_id"] for r in logged) == sorted(r["event_id"] for r in rows)
    for row in logged:
        assert row["context"]["tags"]["ocr_license"] == FILTERED
        assert row["context"]["extra"]["ocr_license"] == FILTERED
    [noted] = [r for r in logged if r["log_level"] == "warning"]
    assert noted["context"]["request"]["data"]["ocr_license"] == FILTERED
    assert noted["message"] == f"licence check failed: employee_pin={FILTERED}"

    # Not a byte of the secrets anywhere: database, its WAL, day files, snapshot.
    stored = every_byte_under(live_server.data_dir)
    assert KEPT.encode() in stored
    for secret in (LICENSE, PIN):
        assert secret.encode() not in stored, secret
