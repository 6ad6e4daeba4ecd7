"""Grouping end to end: repeats of one problem, sent by the real SDK, share one bug.

What decides "the same problem" is the fingerprint the server computes from what the SDK sends, so
these tests vary only what a user's code would vary: the numbers in a message, the line a function
sits on, the exception type, the function.
"""

from __future__ import annotations

import json

import pytest
from conftest import LiveServer, expect_ok, run_script, run_scripts, script

REPEAT = """
import os
import sentry_sdk

sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
sentry_sdk.set_tag("component", "invoices")

def parse_invoice(number):
    raise ValueError(f"invoice {number} has no total")

for number in range(int(os.environ["TIMES"])):
    try:
        parse_invoice(number)
    except ValueError as exc:
        with sentry_sdk.new_scope() as scope:
            scope.set_level("fatal")
            sentry_sdk.capture_exception(exc)
"""


@pytest.mark.parametrize(("live_server", "times", "kept"), [
    ({}, 50, 20),                          # SHIM_RELATED_LOGS defaults to 20
    ({"SHIM_RELATED_LOGS": "3"}, 10, 3),
], indirect=["live_server"], ids=["default", "related_logs_3"])
def test_one_error_repeated_is_one_bug(live_server: LiveServer, times: int, kept: int) -> None:
    expect_ok(run_script(REPEAT, live_server.dsn, env={"TIMES": str(times)}))

    rows = live_server.error_logs()
    [bug] = live_server.bugs()
    assert len(rows) == times
    assert bug["occurrence_count"] == times
    assert bug["title"] == "Critical: invoices - ValueError"
    assert {r["related_bug_id"] for r in rows} == {bug["id"]}
    assert {r["fingerprint"] for r in rows} == {bug["fingerprint"]}
    # The SDK sends one at a time, so the most recent ids are the last rows by event time.
    assert json.loads(bug["related_log_ids"]) == [r["id"] for r in rows][-kept:]
    assert bug["first_occurred_at"] == rows[0]["created_at"]
    assert bug["last_occurred_at"] == rows[-1]["created_at"]
    assert bug["first_occurred_at"] < bug["last_occurred_at"]
    assert bug["error_message"] == "invoice 0 has no total"  # the first occurrence describes it


def test_concurrent_clients_share_one_bug(live_server: LiveServer) -> None:
    """Five processes at once: the writer puts concurrent requests in one transaction, several of
    the same fingerprint among them; none is lost or counted twice."""
    results = run_scripts([REPEAT] * 5, live_server.dsn, env={"TIMES": "10"})
    for result in results:
        expect_ok(result)

    rows = live_server.error_logs()
    [bug] = live_server.bugs()
    assert len(rows) == 50
    assert bug["occurrence_count"] == 50
    assert {r["related_bug_id"] for r in rows} == {bug["id"]}
    related = json.loads(bug["related_log_ids"])
    assert len(related) == len(set(related)) == 20
    assert set(related) <= {r["id"] for r in rows}
    assert bug["first_occurred_at"] == rows[0]["created_at"]
    assert bug["last_occurred_at"] == rows[-1]["created_at"]
    assert bug["bug_number"] == "BUG-00001"


def test_what_groups_together_and_what_does_not(live_server: LiveServer) -> None:
    result = run_script(script("""
        import os
        import uuid
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)

        def fatal(case, capture, *args):
            with sentry_sdk.new_scope() as scope:
                scope.set_level("fatal")
                scope.set_tag("case", case)
                capture(*args)

        def fetch(user_id, kind=ValueError):
            raise kind(f"user {user_id} ({uuid.uuid4()}) not found at 10.0.0.{user_id}")

        def fetch_other(user_id):
            raise ValueError(f"user {user_id} not found")

        for user_id in (7, 1234):  # same call site, different ids in the message
            try:
                fetch(user_id)
            except ValueError as exc:
                fatal("same-site", sentry_sdk.capture_exception, exc)

        try:
            fetch(7, kind=KeyError)
        except KeyError as exc:
            fatal("other-type", sentry_sdk.capture_exception, exc)

        try:
            fetch_other(7)
        except ValueError as exc:
            fatal("other-function", sentry_sdk.capture_exception, exc)

        for n in (3, 250):  # messages: the variable parts do not count
            fatal("message", sentry_sdk.capture_message,
                  f"quota of workspace {uuid.uuid4()} exceeded: {n} pages, "
                  f"contact ops+{n}@example.com")
        fatal("other-message", sentry_sdk.capture_message, "quota of workspace reset")
    """), live_server.dsn)
    expect_ok(result)

    rows = live_server.error_logs()
    case_of = {r["id"]: json.loads(r["context"])["tags"]["case"] for r in rows}
    bug_cases: dict[str, set[str]] = {}
    for row in rows:
        assert row["related_bug_id"] is not None
        bug_cases.setdefault(row["related_bug_id"], set()).add(case_of[row["id"]])
    assert sorted(sorted(cases) for cases in bug_cases.values()) == [
        ["message"], ["other-function"], ["other-message"], ["other-type"], ["same-site"]]

    counts = {b["id"]: b["occurrence_count"] for b in live_server.bugs()}
    by_case = {next(iter(cases)): counts[bug_id] for bug_id, cases in bug_cases.items()}
    assert by_case == {"same-site": 2, "other-type": 1, "other-function": 1, "message": 2,
                       "other-message": 1}
    assert [b["bug_number"] for b in live_server.bugs()] == [
        f"BUG-{n:05d}" for n in range(1, 6)]


CRASH = """
import os
import sentry_sdk

sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)

def load_config(path):
{padding}    raise FileNotFoundError(f"{{path}} is missing")

load_config("/etc/scanner/{name}.toml")
"""


def test_line_numbers_do_not_split_a_bug(live_server: LiveServer) -> None:
    """The same crash from two versions of a script that differ only by blank lines."""
    variants = [CRASH.format(padding="", name="a"), CRASH.format(padding="\n" * 5, name="b")]
    results = run_scripts(variants, live_server.dsn)
    for result in results:
        expect_ok(result, returncode=1)

    rows = live_server.error_logs()
    assert len(rows) == 2
    line_of = [r["stack_trace"].split("in load_config")[0].rsplit("line ", 1)[1] for r in rows]
    assert len(set(line_of)) == 2  # the raise really is on different lines
    [bug] = live_server.bugs()
    assert bug["occurrence_count"] == 2
    assert bug["severity"] == "critical"
    assert bug["title"] == "Critical: unknown - FileNotFoundError"
    assert {r["related_bug_id"] for r in rows} == {bug["id"]}


def test_resolved_bug_that_recurs_is_reopened_as_a_regression(live_server: LiveServer) -> None:
    code = script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)

        def send_report():
            raise ConnectionResetError("smtp closed the connection")

        for _ in range(int(os.environ["TIMES"])):
            try:
                send_report()
            except ConnectionResetError as exc:
                with sentry_sdk.new_scope() as scope:
                    scope.set_level("fatal")
                    sentry_sdk.capture_exception(exc)
    """)
    expect_ok(run_script(code, live_server.dsn, env={"TIMES": "2"}))
    [bug] = live_server.bugs()
    assert (bug["status"], bug["is_regression"], bug["occurrence_count"]) == ("open", 0, 2)

    live_server.execute("UPDATE bugs SET status = 'resolved' WHERE id = ?", (bug["id"],))
    expect_ok(run_script(code, live_server.dsn, env={"TIMES": "1"}))

    [again] = live_server.bugs()
    assert again["id"] == bug["id"]
    assert again["bug_number"] == bug["bug_number"]
    assert (again["status"], again["is_regression"], again["occurrence_count"]) == ("open", 1, 3)
    assert again["last_occurred_at"] > bug["last_occurred_at"]
    assert again["first_occurred_at"] == bug["first_occurred_at"]
    latest = live_server.error_logs()[-1]
    assert latest["related_bug_id"] == bug["id"]
    assert json.loads(again["related_log_ids"])[-1] == latest["id"]
