"""End to end: real ``sentry_sdk`` clients, in child processes, sending to a real ``shim serve``.

Each script is what a user would write: ``sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], ...)`` and
ordinary SDK calls. ``debug=True`` makes the SDK report refused or lost envelopes on stderr, which
every test checks is silent; ``probe`` (tests/scripts) records the answers where a test needs them.

Every test runs once per sentry-sdk major (``sdk_major``), its script in that major's environment
and from a directory outside the checkout. Where 3.x changed an API the script branches on
``sentry_sdk.VERSION``; where 3.x sends something else, the test says what, for each major.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    SCRIPTS,
    SDK_MAJORS,
    LiveServer,
    answers_of,
    expect_ok,
    run_script,
    script,
    script_stderr,
    sdk_python,
)

Run = Callable[..., subprocess.CompletedProcess[str]]

DURING_HANDLING = "During handling of the above exception, another exception occurred:"
DIRECT_CAUSE = "The above exception was the direct cause of the following exception:"


def recent(timestamp: str, within: timedelta = timedelta(minutes=1)) -> bool:
    moment = datetime.fromisoformat(timestamp)
    return moment.tzinfo is not None and abs(datetime.now(UTC) - moment) < within


@pytest.fixture
def run(sdk_major: str, tmp_path: Path) -> Run:
    """``run_script`` in the environment of ``sdk_major`` (sentry-sdk and sdk_config installed on
    their own), from a directory outside the checkout."""
    cwd = tmp_path / "scanner"
    cwd.mkdir()
    return functools.partial(run_script, python=sdk_python(sdk_major), cwd=cwd)


@pytest.fixture(scope="session")
def brotli_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory holding only this environment's brotli module: on a child's PYTHONPATH it
    stands for a scanner machine with brotli installed (the SDK environments hold sentry-sdk and
    its dependencies alone, so their SDK compresses with gzip)."""
    import _brotli
    import brotli

    directory = tmp_path_factory.mktemp("brotli")
    for module in (brotli, _brotli):
        assert module.__file__ is not None
        (directory / Path(module.__file__).name).symlink_to(module.__file__)
    return str(directory)


def test_unhandled_exception_becomes_a_log_and_a_critical_bug(
    live_server: LiveServer, run: Run,
) -> None:
    result = run(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)

        def read_page(number):
            raise ValueError(f"page {number} is empty")

        def scan_document():
            read_page(3)

        scan_document()
    """), live_server.dsn)
    expect_ok(result, returncode=1)  # the excepthook reports, then Python exits as usual
    assert "ValueError: page 3 is empty" in script_stderr(result)

    [log] = live_server.error_logs()
    [bug] = live_server.bugs()
    assert log["item_type"] == "event"
    assert log["error_type"] == "ValueError"
    assert log["error_message"] == "page 3 is empty"
    trace = log["stack_trace"]
    assert trace.startswith("Traceback (most recent call last):")
    assert trace.index("in <module>") < trace.index("in scan_document") < trace.index(
        "in read_page")
    assert trace.rstrip().endswith("ValueError: page 3 is empty")
    assert recent(log["created_at"])
    assert log["component"] == "unknown"
    assert log["related_bug_id"] == bug["id"]

    assert re.fullmatch(r"BUG-\d{5}", bug["bug_number"])
    assert bug["bug_number"] == "BUG-00001"  # a fresh database
    assert bug["severity"] == "critical"
    assert bug["priority"] == "urgent"
    assert bug["status"] == "open"
    assert bug["occurrence_count"] == 1
    assert bug["title"] == "Critical: unknown - ValueError"
    assert bug["error_type"] == "ValueError"
    assert bug["fingerprint"] == log["fingerprint"]
    assert bug["first_occurred_at"] == bug["last_occurred_at"] == log["created_at"]
    assert json.loads(bug["related_log_ids"]) == [log["id"]]
    assert bug["is_regression"] == 0


def test_handled_exception_is_logged_and_opens_a_bug_only_when_fatal(
    live_server: LiveServer, run: Run,
) -> None:
    result = run(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        sentry_sdk.set_tag("component", "ocr")

        def recognise(kind):
            raise kind("no text found")

        try:
            recognise(LookupError)
        except LookupError as exc:
            sentry_sdk.capture_exception(exc)  # level error

        try:
            recognise(RuntimeError)
        except RuntimeError as exc:
            with sentry_sdk.new_scope() as scope:
                scope.set_level("fatal")
                sentry_sdk.capture_exception(exc)

        try:
            recognise(OSError)
        except OSError as exc:
            sentry_sdk.set_level("fatal")
            sentry_sdk.capture_exception(exc)
    """), live_server.dsn)
    expect_ok(result)

    by_type = {row["error_type"]: row for row in live_server.error_logs()}
    assert set(by_type) == {"LookupError", "RuntimeError", "OSError"}
    assert by_type["LookupError"]["log_level"] == "error"
    assert by_type["LookupError"]["related_bug_id"] is None
    for fatal in ("RuntimeError", "OSError"):
        assert by_type[fatal]["log_level"] == "critical"
        assert by_type[fatal]["related_bug_id"] is not None

    found = live_server.bugs()
    assert [(b["title"], b["severity"], b["occurrence_count"]) for b in found] == [
        ("Critical: ocr - RuntimeError", "critical", 1),
        ("Critical: ocr - OSError", "critical", 1),
    ]
    assert {b["id"] for b in found} == {by_type["RuntimeError"]["related_bug_id"],
                                        by_type["OSError"]["related_bug_id"]}


def test_chained_exception_keeps_both_tracebacks_in_order(live_server: LiveServer, run: Run,
                                                          sdk_major: str) -> None:
    result = run(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)

        def open_database():
            raise ConnectionError("database is down")

        def load_user():
            try:
                open_database()
            except ConnectionError as exc:
                raise LookupError("user 42 could not be loaded") from exc

        def handle_during():
            try:
                open_database()
            except ConnectionError:
                raise KeyError("cache")

        for fn in (load_user, handle_during):
            try:
                fn()
            except Exception:
                sentry_sdk.capture_exception()
    """), live_server.dsn)
    expect_ok(result)

    by_type = {row["error_type"]: row for row in live_server.error_logs()}
    assert set(by_type) == {"LookupError", "KeyError"}

    caused = by_type["LookupError"]
    assert caused["error_message"] == "user 42 could not be loaded"
    trace = caused["stack_trace"]
    assert trace.count("Traceback (most recent call last):") == 2
    cause_at = trace.index("ConnectionError: database is down")
    # 2.x sends a plain chain without saying cause or context, so either wording is fair; 3.x
    # says `raise ... from` (mechanism.source "__cause__"), so Python's own wording is due.
    if sdk_major == "3":
        assert DIRECT_CAUSE in trace and DURING_HANDLING not in trace
    link_at = max(trace.find(DIRECT_CAUSE), trace.find(DURING_HANDLING))
    assert 0 < cause_at < link_at < trace.index("LookupError: user 42 could not be loaded")
    assert trace.index("in open_database") < link_at < trace.rindex("in load_user")

    during = by_type["KeyError"]["stack_trace"]
    assert during.index("ConnectionError: database is down") < during.index(DURING_HANDLING) \
        < during.index("KeyError: 'cache'")
    # The chains group by both of their exceptions: two different chains, two fingerprints.
    assert caused["fingerprint"] != by_type["KeyError"]["fingerprint"]


def test_messages_at_every_level(live_server: LiveServer, run: Run, sdk_major: str) -> None:
    result = run(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        sentry_sdk.set_tag("component", "bot")
        for level in ("debug", "info", "warning", "error", "fatal"):
            sentry_sdk.capture_message(f"{level} message\\nsecond line", level=level)
    """), live_server.dsn)
    expect_ok(result)

    rows = live_server.error_logs()
    assert {r["message"].split()[0]: r["log_level"] for r in rows} == {
        "debug": "debug", "info": "info", "warning": "warning", "error": "error",
        "fatal": "critical",
    }
    assert all(r["error_type"] is None and r["component"] == "bot" for r in rows)
    [bug] = live_server.bugs()
    assert bug["title"] == "Critical: bot - fatal message"
    assert bug["severity"] == "critical"
    [critical] = [r for r in rows if r["log_level"] == "critical"]
    assert critical["message"] == "fatal message\nsecond line"
    assert [r["id"] for r in rows if r["related_bug_id"] == bug["id"]] == [critical["id"]]
    # 3.x attaches the calling thread's stack to a message (attach_stacktrace is on by default);
    # 2.x sends none.
    if sdk_major == "3":
        for row in rows:
            assert row["stack_trace"].startswith("Traceback (most recent call last):"), row
            assert row["stack_trace"].splitlines()[-3].endswith(
                '<string>", line 7, in <module>')  # the capture_message call
    else:
        assert [r["stack_trace"] for r in rows] == [None] * 5


def test_logging_integration(live_server: LiveServer, run: Run) -> None:
    result = run(script("""
        import logging
        import os
        import sentry_sdk

        if int(sentry_sdk.VERSION.split(".")[0]) >= 3:
            # 3.x turns records into events only when asked (event_level); its level is the one
            # for Sentry Logs, off here as on 2.x by default.
            from sentry_sdk.integrations.logging import LoggingIntegration
            options = {"integrations": [LoggingIntegration(level=None, event_level=logging.ERROR)]}
        else:
            options = {}
        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, **options)
        log = logging.getLogger("scanner.telegram")
        log.warning("only a breadcrumb")
        log.error("chat %s did not answer", 1234)
        log.critical("token for chat %s was revoked", 1234)
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("component", "poller")
            logging.getLogger("scanner.poller").error("poll failed")
    """), live_server.dsn)
    expect_ok(result)

    rows = {r["message"]: r for r in live_server.error_logs()}
    assert "only a breadcrumb" not in rows  # below ERROR: a breadcrumb, not an event
    error = rows["chat 1234 did not answer"]
    assert (error["log_level"], error["component"], error["related_bug_id"]) == (
        "error", "scanner.telegram", None)
    critical = rows["token for chat 1234 was revoked"]
    assert (critical["log_level"], critical["component"]) == ("critical", "scanner.telegram")
    assert rows["poll failed"]["component"] == "poller"  # the tag wins over the logger name
    assert "only a breadcrumb" in json.dumps(json.loads(error["context"])["breadcrumbs"])

    titles = {b["title"]: b for b in live_server.bugs()}
    assert set(titles) == {"Critical: scanner.telegram - token for chat 1234 was revoked"}
    assert critical["related_bug_id"] == titles[
        "Critical: scanner.telegram - token for chat 1234 was revoked"]["id"]


def test_custom_fingerprint_with_default_is_its_own_bug(live_server: LiveServer, run: Run) -> None:
    result = run(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)

        def charge(card):
            raise RuntimeError(f"card {card} declined")

        for card, custom in ((1, False), (2, True), (3, True)):
            try:
                charge(card)
            except RuntimeError as exc:
                with sentry_sdk.new_scope() as scope:
                    scope.set_level("fatal")
                    if custom:
                        scope.fingerprint = ["{{ default }}", "x"]
                    sentry_sdk.capture_exception(exc)
    """), live_server.dsn)
    expect_ok(result)

    rows = live_server.error_logs()
    assert len(rows) == 3
    plain, custom1, custom2 = rows
    assert custom1["fingerprint"] == custom2["fingerprint"] != plain["fingerprint"]
    by_fp = {b["fingerprint"]: b for b in live_server.bugs()}
    assert set(by_fp) == {plain["fingerprint"], custom1["fingerprint"]}
    assert by_fp[plain["fingerprint"]]["occurrence_count"] == 1
    assert by_fp[custom1["fingerprint"]]["occurrence_count"] == 2
    assert custom1["related_bug_id"] == custom2["related_bug_id"] != plain["related_bug_id"]


def test_tags_fill_component_workspace_and_request_id(live_server: LiveServer, run: Run) -> None:
    result = run(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("component", "ocr-analyser")
            scope.set_tag("workspace_id", "ws-7f3a")
            scope.set_tag("request_id", "req-0042")
            sentry_sdk.capture_message("tagged")
        sentry_sdk.capture_message("untagged")
    """), live_server.dsn)
    expect_ok(result)

    rows = {r["message"]: r for r in live_server.error_logs()}
    tagged, untagged = rows["tagged"], rows["untagged"]
    assert (tagged["component"], tagged["workspace_id"], tagged["request_id"]) == (
        "ocr-analyser", "ws-7f3a", "req-0042")
    context = json.loads(tagged["context"])
    assert context["tags"]["workspace_id"] == "ws-7f3a"
    assert (untagged["component"], untagged["workspace_id"]) == ("unknown", None)
    # Without a request_id tag the trace id stands in.
    trace_id = json.loads(untagged["context"])["contexts"]["trace"]["trace_id"]
    assert untagged["request_id"] == trace_id
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)


# (the SDK's _experiments, the Content-Encoding it then sends, whether brotli is installed)
COMPRESSIONS = [
    pytest.param({"transport_compression_algo": "gzip"}, "gzip", False, id="gzip"),
    pytest.param({"transport_compression_algo": "br"}, "br", True, id="br"),
    pytest.param({}, "br", True, id="default-br"),  # the SDK's default when brotli is installed
    pytest.param({}, "gzip", False, id="default-gzip"),  # and when it is not
    pytest.param({"transport_compression_level": 0}, None, False, id="uncompressed"),
]


def _brotli_env(with_brotli: bool, brotli_path: str) -> dict[str, str] | None:
    return {"PYTHONPATH": os.pathsep.join((str(SCRIPTS), brotli_path))} if with_brotli else None


@pytest.mark.parametrize(("experiments", "encoding", "with_brotli"), COMPRESSIONS)
def test_every_transport_compression_lands(
    live_server: LiveServer, run: Run, brotli_path: str, experiments: dict[str, Any],
    encoding: str | None, with_brotli: bool,
) -> None:
    # A large, compressible event so that decoding really matters.
    result = run(script(f"""
        import os
        import sentry_sdk
        import probe

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, _experiments={experiments!r})
        probe.record_answers()
        sentry_sdk.set_extra("padding", "abc " * 5000)
        event_id = sentry_sdk.capture_message("compressed {encoding}", level="fatal")
        print("EVENT", event_id)
        probe.print_answers()
    """), live_server.dsn, env=_brotli_env(with_brotli, brotli_path))
    expect_ok(result)
    [answer] = answers_of(result)
    assert answer["encoding"] == encoding
    assert answer["status"] == 200
    event_id = next(line.split()[1] for line in result.stdout.splitlines()
                    if line.startswith("EVENT "))
    assert json.loads(answer["body"]) == {"id": event_id}
    if encoding:
        assert answer["bytes"] < 5000  # it really was compressed
    [row] = live_server.error_logs()
    assert (row["event_id"], row["message"]) == (event_id, f"compressed {encoding}")
    assert json.loads(row["context"])["extra"]["padding"].startswith("abc abc")
    assert len(live_server.bugs()) == 1


# Larger than one output step of the decoders (64 kB): a brotli body like this used to be refused
# with 400 "br body is truncated" (shim/core/body.py did not drain the decoder's held-back output).
@pytest.mark.parametrize(("experiments", "encoding", "with_brotli"), COMPRESSIONS)
def test_large_event_lands_with_every_compression(
    live_server: LiveServer, run: Run, brotli_path: str, experiments: dict[str, Any],
    encoding: str | None, with_brotli: bool,
) -> None:
    """A RecursionError crash: about a thousand frames, a few hundred kB of JSON once decoded."""
    result = run(script(f"""
        import os
        import sentry_sdk
        import probe

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, _experiments={experiments!r})
        probe.record_answers()

        def walk(node):
            return walk(node + 1)

        try:
            walk(0)
        except RecursionError:
            sentry_sdk.capture_exception()
        probe.print_answers()
    """), live_server.dsn, env=_brotli_env(with_brotli, brotli_path))
    answers = answers_of(result)
    assert [(a["status"], a["encoding"]) for a in answers][:1] == [(200, encoding)], answers
    expect_ok(result)
    [row] = live_server.error_logs()
    assert row["error_type"] == "RecursionError"
    assert row["stack_trace"].count("in walk") > 500


def test_attachment_travels_with_its_event(live_server: LiveServer, run: Run) -> None:
    result = run(script("""
        import os
        import sentry_sdk
        import probe

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        probe.record_answers()
        with sentry_sdk.new_scope() as scope:
            # Binary, with newlines and bytes that are not UTF-8: framed by its length only.
            scope.add_attachment(bytes=b"\\n\\xff\\x00{not json}\\n" * 100,
                                 filename="page-3.bin")
            scope.add_attachment(bytes=b"", filename="empty.txt")
            scope.set_level("fatal")
            sentry_sdk.capture_message("scan failed with attachments")
        probe.print_answers()
    """), live_server.dsn)
    expect_ok(result)
    [answer] = answers_of(result)
    assert answer["status"] == 200
    [row] = live_server.error_logs()
    assert json.loads(answer["body"]) == {"id": row["event_id"]}
    assert row["message"] == "scan failed with attachments"
    assert len(live_server.bugs()) == 1
    counts = live_server.item_counts()
    assert counts == {"event": 1, "attachment": 2}


def test_sentry_logs_become_rows_without_bugs(live_server: LiveServer, run: Run) -> None:
    result = run(script("""
        import logging
        import os
        import sentry_sdk
        import probe

        if int(sentry_sdk.VERSION.split(".")[0]) >= 3:
            # 3.x sends Sentry Logs unasked; stdlib records only through the integration.
            from sentry_sdk.integrations.logging import LoggingIntegration
            options = {"integrations": [LoggingIntegration()]}
        else:
            options = {"enable_logs": True}
        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, **options)
        probe.record_answers()
        sentry_sdk.logger.info("scan of {count} pages started", count=12)
        sentry_sdk.logger.warning("page {page} is blurry", page=3)
        sentry_sdk.logger.error("upload failed",
                                attributes={"workspace_id": "ws-1", "component": "uploader"})
        logging.getLogger("scanner.pdf").warning("stdlib record %s", "forwarded")
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("component", "tag-only")
            sentry_sdk.logger.info("in a tagged scope")
            scope.set_attribute("component", "ocr")
            scope.set_attribute("workspace_id", "ws-2")
            sentry_sdk.logger.info("in a scope with attributes")
        probe.print_answers()
    """), live_server.dsn)
    expect_ok(result)
    assert [a["status"] for a in answers_of(result)] == [200]

    rows = live_server.error_logs()
    assert [(r["message"], r["log_level"], r["item_type"], r["component"]) for r in rows] == [
        ("scan of 12 pages started", "info", "log", "unknown"),
        ("page 3 is blurry", "warning", "log", "unknown"),
        ("upload failed", "error", "log", "uploader"),
        ("stdlib record forwarded", "warning", "log", "scanner.pdf"),
        # Neither major sends a scope's tags with a log record (they are for events); its
        # attributes travel with every record, so they name the component and workspace.
        ("in a tagged scope", "info", "log", "unknown"),
        ("in a scope with attributes", "info", "log", "ocr"),
    ]
    assert all(r["related_bug_id"] is None and r["error_type"] is None for r in rows)
    assert [r["workspace_id"] for r in rows] == [None, None, "ws-1", None, None, "ws-2"]
    assert "tag-only" not in json.dumps([json.loads(r["context"]) for r in rows])
    assert all(recent(r["created_at"]) for r in rows)
    assert json.loads(rows[0]["context"])["attributes"]["sentry.message.template"] == (
        "scan of {count} pages started")
    assert live_server.bugs() == []
    assert live_server.item_counts() == {"log": 1}


def test_cron_check_ins(live_server: LiveServer, run: Run) -> None:
    result = run(script("""
        import os
        import sentry_sdk
        from sentry_sdk.crons import MonitorStatus, capture_checkin, monitor

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, environment="staging",
                        release="scanner@2.1")

        capture_checkin(monitor_slug="nightly-scan", status=MonitorStatus.OK, duration=12.5)

        @monitor(monitor_slug="hourly-sync")
        def sync():
            pass

        @monitor(monitor_slug="weekly-report")
        def report():
            raise RuntimeError("no data")

        sync()
        try:
            report()
        except RuntimeError:
            pass
    """), live_server.dsn)
    expect_ok(result)

    rows = {r["monitor_slug"]: r for r in live_server.query("SELECT * FROM check_ins")}
    assert set(rows) == {"nightly-scan", "hourly-sync", "weekly-report"}
    assert rows["nightly-scan"]["status"] == "ok"
    assert rows["nightly-scan"]["duration"] == 12.5
    # The decorator sends in_progress, then the outcome with the same id: one row, updated.
    assert rows["hourly-sync"]["status"] == "ok"
    assert rows["weekly-report"]["status"] == "error"
    for row in rows.values():
        assert row["duration"] is not None and row["duration"] >= 0
        assert (row["environment"], row["release"]) == ("staging", "scanner@2.1")
        assert recent(row["created_at"])
    counts = live_server.item_counts()
    assert counts == {"check_in": 5}


def test_other_item_types_are_accepted_and_counted(live_server: LiveServer, run: Run,
                                                   sdk_major: str) -> None:
    result = run(script("""
        import os
        import sentry_sdk
        import probe
        from sentry_sdk.sessions import track_session

        major = int(sentry_sdk.VERSION.split(".")[0])
        options = {}
        if major >= 3:
            # 3.0.1 also traces its own requests to a DSN with a port (it looks for "host:port"
            # in the host alone), so how many span envelopes it sends depends on timing.
            from sentry_sdk.integrations.stdlib import StdlibIntegration
            options["disabled_integrations"] = [StdlibIntegration]
        # sample_rate=0 drops every error event, which the SDK reports in a client report.
        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, release="scanner@1.0",
                        traces_sample_rate=1.0, sample_rate=0.0, **options)
        probe.record_answers()
        if major >= 3:  # no transactions: spans, streamed in `span` items
            with sentry_sdk.start_span(name="scan-batch", attributes={"sentry.op": "task"}):
                with sentry_sdk.start_span(name="page 1", attributes={"sentry.op": "ocr"}):
                    pass
        else:
            with sentry_sdk.start_transaction(name="scan-batch", op="task"):
                with sentry_sdk.start_span(op="ocr", name="page 1"):
                    pass
        scope = sentry_sdk.get_isolation_scope()
        with track_session(scope, session_mode="application"):
            pass
        with track_session(scope, session_mode="request"):
            pass
        sentry_sdk.capture_message("dropped by the sample rate")
        sentry_sdk.metrics.count("pages.scanned", 3)
        probe.print_answers()
    """), live_server.dsn)
    expect_ok(result)
    answers = answers_of(result)
    assert len(answers) >= 3
    assert all(a["status"] == 200 for a in answers), answers

    counts = live_server.item_counts()
    # 2.x sends the transaction as one `transaction` item; 3.x both spans in one `span` item.
    traced = {"span": 1} if sdk_major == "3" else {"transaction": 1}
    assert counts == {**traced, "session": 1, "sessions": 1, "client_report": 1,
                      "trace_metric": 1}
    assert live_server.error_logs() == []
    assert live_server.bugs() == []


def test_same_event_id_twice_is_stored_once(live_server: LiveServer, run: Run) -> None:
    event_id = uuid.uuid4().hex
    code = script(f"""
        import os
        import sentry_sdk
        import probe

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        probe.record_answers()
        for attempt in range(2):
            sentry_sdk.capture_event({{"event_id": "{event_id}", "level": "fatal",
                                       "message": "sent twice"}})
            sentry_sdk.flush()
        probe.print_answers()
    """)
    first = run(code, live_server.dsn)
    second = run(code, live_server.dsn)  # and once more from another process
    for result in (first, second):
        expect_ok(result)
        assert [(a["status"], json.loads(a["body"])) for a in answers_of(result)] == [
            (200, {"id": event_id})] * 2

    [row] = live_server.error_logs()
    assert row["event_id"] == event_id
    [bug] = live_server.bugs()
    assert bug["occurrence_count"] == 1
    assert json.loads(bug["related_log_ids"]) == [row["id"]]
    with urllib.request.urlopen(f"{live_server.url}/healthz") as response:
        health = json.loads(response.read())
    assert (health["events_stored"], health["duplicates"]) == (1, 3)


def test_profile_chunks_are_accepted_and_counted(live_server: LiveServer, run: Run) -> None:
    result = run(script("""
        import os
        import time
        import sentry_sdk
        import probe

        # Continuous profiling, on both majors: the samples travel in `profile_chunk` items, in
        # envelopes without an event (3.x has no transaction-bound `profile` items any more).
        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, profile_session_sample_rate=1.0)
        probe.record_answers()
        sentry_sdk.profiler.start_profiler()
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            sum(range(1000))
        sentry_sdk.profiler.stop_profiler()
        probe.print_answers()
    """), live_server.dsn)
    expect_ok(result)
    assert [(a["status"], a["body"]) for a in answers_of(result)] == [(200, "{}")]
    assert live_server.item_counts() == {"profile_chunk": 1}
    assert live_server.error_logs() == []


UPGRADED = script("""
    import logging
    import os
    import sentry_sdk

    if int(sentry_sdk.VERSION.split(".")[0]) >= 3:  # records as events, as on 2.x by default
        from sentry_sdk.integrations.logging import LoggingIntegration
        options = {"integrations": [LoggingIntegration(level=None, event_level=logging.ERROR)]}
    else:
        options = {}
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, **options)
    sentry_sdk.set_tag("component", "ocr")

    def open_page(number):
        raise ConnectionError(f"page {number} is offline")

    def load(number):
        try:
            open_page(number)
        except ConnectionError as exc:
            raise LookupError(f"page {number} could not be loaded") from exc

    try:
        load(7)
    except LookupError:
        with sentry_sdk.new_scope() as scope:
            scope.set_level("fatal")
            sentry_sdk.capture_exception()
    sentry_sdk.capture_message("queue 12 is stuck", level="fatal")
    logging.getLogger("scanner.ocr").critical("page %d is blank", 9)
""")


def test_a_scanner_moved_to_3x_lands_on_the_same_bugs(live_server: LiveServer,
                                                      tmp_path: Path) -> None:
    """The same failures sent by 2.x, then by 3.x (chains with links, messages with a thread
    stack): the same rows' columns and fingerprints, so the same bugs, now seen twice."""
    for major in SDK_MAJORS:
        expect_ok(run_script(UPGRADED, live_server.dsn, python=sdk_python(major), cwd=tmp_path))

    assert sorted((b["title"], b["occurrence_count"]) for b in live_server.bugs()) == [
        ("Critical: ocr - LookupError", 2),
        ("Critical: ocr - page 9 is blank", 2),
        ("Critical: ocr - queue 12 is stuck", 2),
    ]
    rows = live_server.error_logs()
    assert len(rows) == 6
    columns = ("log_level", "component", "message", "error_type", "error_message", "fingerprint",
               "related_bug_id")
    on_2x, on_3x = ([{c: r[c] for c in columns} for r in half] for half in (rows[:3], rows[3:]))
    assert on_2x == on_3x
    assert [json.loads(r["context"])["sdk"]["version"].split(".")[0] for r in rows] == [
        "2", "2", "2", "3", "3", "3"]
