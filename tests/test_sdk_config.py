"""sdk_config end to end: real scanner scripts, in child processes, sending through ``sdk_config``
to a real ``shim serve``; then the rows DESIGN.md promises (critical → a bug, lower levels → a log
only). Also what a script looks like when reporting cannot work: no DSN, a refused connection, a
server that never answers: the same exit code and output as without sdk_config, one warning aside.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    LiveServer,
    _clean_env,
    expect_ok,
    free_port,
    run_script,
    script,
    script_stderr,
)
from sdk_scenarios import (
    DECORATOR_ASYNC,
    DECORATOR_SYNC,
    LOGGING,
    SENTRY_LOGS,
    TRACKER,
    UNHANDLED,
    Scenario,
    child_env,
)
from sentry_sdk.integrations.atexit import AtexitIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from sdk_config._init import SHUTDOWN_TIMEOUT, sdk_options
from sdk_config.tracker import sentry_level

LEVELS = ("debug", "info", "warning", "error", "critical")


def run(scenario: Scenario, server: LiveServer,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = run_script(scenario.code, server.dsn, env=child_env({**scenario.env, **(env or {})}))
    expect_ok(result, returncode=scenario.returncode)
    return result


def context(row: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(row["context"])
    return value


# --- end to end through shim ----------------------------------------------------------------------

def test_unhandled_exception_in_a_scanner_opens_a_bug_with_its_component(
    live_server: LiveServer,
) -> None:
    result = run(UNHANDLED, live_server,
                 env={"SENTRY_ENVIRONMENT": "staging", "SENTRY_RELEASE": "scanner@1.2.3"})
    assert result.stdout == "scanning\n"
    assert "ValueError: page 3 is empty" in script_stderr(result)  # Python's own traceback, as before

    [log] = live_server.error_logs()
    [bug] = live_server.bugs()
    assert (log["log_level"], log["component"], log["workspace_id"]) == ("error", "ocr-scanner",
                                                                         "ws-7")
    assert (log["error_type"], log["error_message"]) == ("ValueError", "page 3 is empty")
    assert log["related_bug_id"] == bug["id"]
    assert bug["title"] == "Critical: ocr-scanner - ValueError"
    assert (bug["component"], bug["workspace_id"], bug["severity"]) == ("ocr-scanner", "ws-7",
                                                                        "critical")
    assert "in scan_document" in bug["stack_trace"]
    ctx = context(log)
    assert (ctx["environment"], ctx["release"]) == ("staging", "scanner@1.2.3")
    assert ctx["server_name"] == socket.gethostname()
    assert ctx["tags"] == {"component": "ocr-scanner", "workspace_id": "ws-7"}
    assert "user" not in ctx  # send_default_pii=False


def test_bug_tracker_levels_make_the_documented_rows(live_server: LiveServer) -> None:
    result = run(TRACKER, live_server)  # no init call: BugTracker() sets the SDK up
    assert result.stdout == "logged\n"

    logs = live_server.error_logs()
    assert [row["log_level"] for row in logs] == [level for level in LEVELS for _ in (1, 2)]
    for level, (message, error) in zip(LEVELS, zip(logs[::2], logs[1::2], strict=True),
                                       strict=True):
        assert message["message"] == f"{level}: page 7 unreadable"
        assert message["error_type"] is None
        assert message["workspace_id"] == f"ws-{level}"
        assert context(message)["extra"] == {"page": 7, "level": level, "sys.argv": ["-c"]}

        assert error["message"] == f"{level}: lookup failed"
        assert (error["error_type"], error["error_message"]) == ("KeyError", "'page'")
        # Each call has its own scope: the previous call's workspace and details are gone.
        assert error["workspace_id"] is None
        assert context(error)["extra"] == {"sys.argv": ["-c"]}
        for row in (message, error):
            assert row["component"] == "ocr-analyser"
            assert (row["related_bug_id"] is not None) == (level == "critical"), row

    bugs = live_server.bugs()
    assert [bug["title"] for bug in bugs] == [
        "Critical: ocr-analyser - critical: page 7 unreadable",
        "Critical: ocr-analyser - KeyError",
    ]
    assert {bug["severity"] for bug in bugs} == {"critical"}


@pytest.mark.parametrize(("scenario", "component", "workspace", "error_type", "function"), [
    (DECORATOR_SYNC, "billing", "ws-2", "ZeroDivisionError", "charge"),
    (DECORATOR_ASYNC, "telegram-bot", "ws-3", "KeyError", "reply"),
], ids=["sync", "async"])
def test_track_errors_reports_critical_and_reraises(
    live_server: LiveServer, scenario: Scenario, component: str, workspace: str, error_type: str,
    function: str,
) -> None:
    result = run(scenario, live_server)
    if scenario is DECORATOR_SYNC:  # re-raised to the top: Python's traceback and exit code 1
        assert result.stdout == "total 3\n"
        assert "ZeroDivisionError: division by zero" in script_stderr(result)
    else:
        assert result.stdout == "chat 42\nre-raised KeyError\n"

    # One event, though the sync one also reached sys.excepthook: the SDK dedupes it.
    [log] = live_server.error_logs()
    [bug] = live_server.bugs()
    assert (log["log_level"], log["component"], log["workspace_id"]) == ("critical", component,
                                                                         workspace)
    assert log["error_type"] == error_type
    assert context(log)["extra"]["function"] == function
    assert log["related_bug_id"] == bug["id"]
    assert bug["title"] == f"Critical: {component} - {error_type}"


def test_logging_error_is_a_log_and_logging_critical_a_bug(live_server: LiveServer) -> None:
    result = run(LOGGING, live_server)
    assert result.stdout == "done\n"

    error, critical = live_server.error_logs()
    [bug] = live_server.bugs()
    assert (error["log_level"], error["message"], error["related_bug_id"]) == (
        "error", "could not delete /tmp/x", None)
    assert (critical["log_level"], critical["message"]) == ("critical", "database unreachable")
    assert critical["related_bug_id"] == bug["id"]
    # The component tag of init wins over the logger's name.
    assert error["component"] == critical["component"] == bug["component"] == "cron-cleanup"
    crumbs = [c.get("message") for c in context(critical)["breadcrumbs"]]
    assert crumbs[:2] == ["slow disk", "could not delete /tmp/x"]


def test_sentry_logs_are_opt_in_and_carry_the_component(live_server: LiveServer) -> None:
    run(SENTRY_LOGS, live_server)

    rows = live_server.error_logs()
    assert sorted((r["item_type"], r["log_level"], r["message"]) for r in rows) == [
        ("event", "error", "could not delete /tmp/x"),
        ("log", "error", "could not delete /tmp/x"),
        ("log", "info", "scanned 12 files"),
    ]
    assert {(r["component"], r["workspace_id"]) for r in rows} == {("cron-cleanup", "ws-9")}
    assert live_server.bugs() == []


# --- reporting cannot work: the script is unchanged -----------------------------------------------

QUIET = """
    import logging, os, sys
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("USE_SDK_CONFIG"):
        import sdk_config
        tracker = sdk_config.BugTracker()  # before init, as a legacy module would
        sdk_config.init("quiet-scanner")
        tracker.log("critical", "reported", "quiet-scanner")
    print("scanned 3 pages")
    logging.error("page %d unreadable", 2)
    logging.critical("giving up")
"""


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (into the backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("ending", ["raise ValueError('boom')", "sys.exit(3)"])
def test_no_dsn_or_no_server_leaves_the_script_unchanged(silent_port: int, ending: str) -> None:
    code = script(QUIET) + ending + "\n"
    variants = {
        "without sdk_config": {},
        "no SENTRY_DSN": {"USE_SDK_CONFIG": "1"},
        "connection refused": {"USE_SDK_CONFIG": "1",
                               "SENTRY_DSN": f"http://{'a' * 32}@127.0.0.1:{free_port()}/1"},
        "server never answers": {"USE_SDK_CONFIG": "1",
                                 "SENTRY_DSN": f"http://{'a' * 32}@127.0.0.1:{silent_port}/1"},
    }
    started = time.monotonic()
    children = {
        name: subprocess.Popen([sys.executable, "-c", code], text=True,
                               env={**_clean_env(), **child_env(env), "SENTRY_DEBUG": ""},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, env in variants.items()
    }
    results = {}
    for name, child in children.items():
        out, err = child.communicate(timeout=30)
        results[name] = (child.returncode, out, err, time.monotonic() - started)

    code_before, out_before, err_before, _ = results["without sdk_config"]
    assert code_before == (1 if ending.startswith("raise") else 3)
    assert out_before == "scanned 3 pages\n"
    assert "ERROR root: page 2 unreadable" in err_before
    for name in ("connection refused", "server never answers"):
        assert results[name][:3] == results["without sdk_config"][:3], name
        # The queue is given SHUTDOWN_TIMEOUT at exit, then the script exits regardless.
        assert results[name][3] < SHUTDOWN_TIMEOUT + 5.0, name

    returncode, out, err, _ = results["no SENTRY_DSN"]
    assert (returncode, out) == (code_before, out_before)
    [warning] = [line for line in err.splitlines() if line not in err_before.splitlines()]
    # One warning, though both BugTracker() and init looked for a DSN.
    assert warning == ("WARNING sdk_config: SENTRY_DSN is not set: errors of this script are "
                       "not reported (sdk_config)")
    assert err.replace(warning + "\n", "", 1) == err_before


# --- the options, in process (no sentry_sdk.init here) --------------------------------------------

DSN = "http://key@127.0.0.1:9/1"


@pytest.mark.parametrize(("environ", "overrides", "expected"), [
    ({}, {}, None),
    ({"SENTRY_DSN": ""}, {}, None),
    ({"SENTRY_DSN": DSN}, {"dsn": None}, None),
    ({}, {"dsn": DSN}, {"dsn": DSN}),
    ({"SENTRY_DSN": DSN}, {}, {"dsn": DSN, "environment": None, "release": None,
                              "send_default_pii": False, "shutdown_timeout": SHUTDOWN_TIMEOUT,
                              "enable_logs": False}),
    ({"SENTRY_DSN": DSN, "SENTRY_ENVIRONMENT": "staging", "SENTRY_RELEASE": "r1"}, {},
     {"environment": "staging", "release": "r1"}),
    ({"SENTRY_DSN": DSN, "SENTRY_ENVIRONMENT": "staging"},
     {"environment": "dev", "shutdown_timeout": 5, "send_default_pii": True, "debug": True},
     {"environment": "dev", "shutdown_timeout": 5, "send_default_pii": True, "debug": True}),
    ({"SENTRY_DSN": DSN, "SHIM_SEND_LOGS": "yes"}, {}, {"enable_logs": True}),
    ({"SENTRY_DSN": DSN, "SHIM_SEND_LOGS": "TRUE"}, {}, {"enable_logs": True}),
    ({"SENTRY_DSN": DSN, "SHIM_SEND_LOGS": "0"}, {}, {"enable_logs": False}),
    ({"SENTRY_DSN": DSN, "SHIM_SEND_LOGS": "1"}, {"enable_logs": False}, {"enable_logs": False}),
])
def test_sdk_options(environ: dict[str, str], overrides: dict[str, Any],
                     expected: dict[str, Any] | None) -> None:
    options = sdk_options(None, overrides, environ)
    if expected is None:
        assert options is None
        return
    assert options is not None
    assert {k: options[k] for k in expected} == expected


def test_send_logs_argument_wins_over_the_environment() -> None:
    on = sdk_options(True, {}, {"SENTRY_DSN": DSN})
    off = sdk_options(False, {}, {"SENTRY_DSN": DSN, "SHIM_SEND_LOGS": "1"})
    assert on is not None and on["enable_logs"] is True
    assert off is not None and off["enable_logs"] is False


def test_callers_integrations_are_added_and_replace_ours_of_the_same_kind() -> None:
    options = sdk_options(None, {}, {"SENTRY_DSN": DSN})
    assert options is not None
    logging_integration, atexit_integration = options["integrations"]
    assert isinstance(logging_integration, LoggingIntegration)
    assert isinstance(atexit_integration, AtexitIntegration)

    theirs = LoggingIntegration(event_level=logging.WARNING)
    options = sdk_options(None, {"integrations": [theirs]}, {"SENTRY_DSN": DSN})
    assert options is not None
    assert [type(i) for i in options["integrations"]] == [AtexitIntegration, LoggingIntegration]
    assert options["integrations"][-1] is theirs


@pytest.mark.parametrize(("level", "expected"), [
    ("debug", "debug"), ("info", "info"), ("warning", "warning"), ("error", "error"),
    ("critical", "fatal"), ("CRITICAL", "fatal"), (" warn ", "warning"), ("fatal", "fatal"),
    ("verbose", "error"), ("", "error"),
])
def test_sentry_level(level: str, expected: str) -> None:
    assert sentry_level(level) == expected


def test_sdk_config_does_not_import_shim() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys, sdk_config; print('shim' in sys.modules)"],
        env={**_clean_env(), **child_env()}, capture_output=True, text=True, check=True,
        cwd=os.sep)
    assert result.stdout == "False\n"
