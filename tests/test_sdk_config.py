"""sdk_config end to end: real scanner scripts, in child processes, sending through ``sdk_config``
to a real ``shim serve``; then the rows DESIGN.md promises (critical → a bug, lower levels → a log
only). Every script runs once per sentry-sdk major, by the Python of that major's environment with
the installed sdk_config, from outside the checkout; both majors must give the same rows. Also what
a script looks like when reporting cannot work: no DSN, a refused connection, a server that never
answers: the same exit code and output as without sdk_config, one warning aside. The options alone,
without sending, are test_sdk_options.py's.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ROOT,
    SDK_MAJORS,
    LiveServer,
    _clean_env,
    expect_ok,
    free_port,
    script,
    script_stderr,
    sdk_python,
    start_server,
)
from sdk_scenarios import (
    ALL,
    DECORATOR_ASYNC,
    DECORATOR_SYNC,
    LOGGING,
    SENTRY_LOGS,
    TRACKER,
    UNHANDLED,
    UNRAISABLE,
    Scenario,
    child_env,
    run_scenario,
)

from sdk_config._options import SHUTDOWN_TIMEOUT

LEVELS = ("debug", "info", "warning", "error", "critical")


def run(scenario: Scenario, server: LiveServer, major: str, cwd: Path,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = run_scenario(scenario, server.dsn, major, cwd, env)
    expect_ok(result, returncode=scenario.returncode)
    return result


def context(row: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(row["context"])
    return value


# --- end to end through shim ----------------------------------------------------------------------

def test_unhandled_exception_in_a_scanner_opens_a_bug_with_its_component(
    live_server: LiveServer, sdk_major: str, tmp_path: Path,
) -> None:
    result = run(UNHANDLED, live_server, sdk_major, tmp_path,
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
    assert "user" not in ctx  # no PII


def test_bug_tracker_levels_make_the_documented_rows(live_server: LiveServer, sdk_major: str,
                                                      tmp_path: Path) -> None:
    result = run(TRACKER, live_server, sdk_major, tmp_path)  # no init: BugTracker() sets it up
    assert result.stdout == "logged\n"

    logs = live_server.error_logs()
    assert [row["log_level"] for row in logs] == [level for level in LEVELS for _ in (1, 2)]
    for level, (message, error) in zip(LEVELS, zip(logs[::2], logs[1::2], strict=True),
                                       strict=True):
        assert message["message"] == f"{level}: page 7 unreadable"
        assert message["error_type"] is None
        # No stack for a message (3.x alone would attach the thread's, with its local variables).
        assert message["stack_trace"] is None
        assert "threads" not in context(message)
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
    live_server: LiveServer, sdk_major: str, tmp_path: Path, scenario: Scenario, component: str,
    workspace: str, error_type: str, function: str,
) -> None:
    result = run(scenario, live_server, sdk_major, tmp_path)
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


def test_logging_error_is_a_log_and_logging_critical_a_bug(live_server: LiveServer,
                                                           sdk_major: str, tmp_path: Path) -> None:
    # On 3.x the SDK alone would send nothing for either: sdk_config turns both into events.
    result = run(LOGGING, live_server, sdk_major, tmp_path)
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
    # Sentry Logs are opt-in: without SHIM_SEND_LOGS no record went out as a log.
    assert {row["item_type"] for row in live_server.error_logs()} == {"event"}


def test_sentry_logs_are_opt_in_and_carry_the_component(live_server: LiveServer, sdk_major: str,
                                                        tmp_path: Path) -> None:
    run(SENTRY_LOGS, live_server, sdk_major, tmp_path)

    rows = live_server.error_logs()
    assert sorted((r["item_type"], r["log_level"], r["message"]) for r in rows) == [
        ("event", "error", "could not delete /tmp/x"),
        ("log", "error", "could not delete /tmp/x"),
        ("log", "info", "scanned 12 files"),
    ]
    assert {(r["component"], r["workspace_id"]) for r in rows} == {("cron-cleanup", "ws-9")}
    assert live_server.bugs() == []
    # The user the script set is on its event; the logs carry no user (no PII), as on 2.x.
    [event] = [r for r in rows if r["item_type"] == "event"]
    assert context(event)["user"] == {"id": "operator-7"}
    for log in (r for r in rows if r["item_type"] == "log"):
        assert "component" in context(log)["attributes"]
        assert not [name for name in context(log)["attributes"] if name.startswith("user.")]


def test_an_unraisable_exception_is_printed_not_reported(live_server: LiveServer, sdk_major: str,
                                                         tmp_path: Path) -> None:
    result = run(UNRAISABLE, live_server, sdk_major, tmp_path)
    assert result.stdout == "read\n"
    assert "Exception ignored in" in script_stderr(result)  # Python's own report, as before
    assert "OSError: close failed" in script_stderr(result)
    [log] = live_server.error_logs()
    assert (log["log_level"], log["message"], log["component"]) == ("error", "page 4 skipped",
                                                                    "pdf-reader")
    assert live_server.bugs() == []


# --- the same rows on either major -----------------------------------------------------------------

# What a row says; not its ids, times, or the stack text (whose paths name the environment).
LOG_FIELDS = ("item_type", "log_level", "component", "workspace_id", "message", "error_type",
              "error_message", "fingerprint")
BUG_FIELDS = ("title", "severity", "priority", "component", "workspace_id", "error_type",
              "error_message", "fingerprint", "occurrence_count")


def rows_of(server: LiveServer) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The error_logs rows (with their bug's title) and the bugs, as comparable tuples."""
    titles = {bug["id"]: bug["title"] for bug in server.bugs()}
    logs = sorted(((*(row[f] for f in LOG_FIELDS), titles.get(row["related_bug_id"]))
                   for row in server.error_logs()), key=repr)
    bugs = sorted((tuple(bug[f] for f in BUG_FIELDS) for bug in server.bugs()), key=repr)
    return logs, bugs


def test_every_scenario_gives_the_same_rows_on_both_majors(tmp_path: Path) -> None:
    rows = {}
    for major in SDK_MAJORS:
        with start_server(tmp_path / major / "data", tmp_path / major / "server.log") as server:
            for scenario in ALL:
                run(scenario, server, major, tmp_path)
            rows[major] = rows_of(server)
    logs, bugs = rows["2"]
    assert len(logs) == sum(s.events + s.logs for s in ALL)  # the scenarios' every event and log
    assert len(bugs) == 6  # unhandled, tracker (2), decorator (2), logging.critical
    assert not [log for log in logs if log[LOG_FIELDS.index("error_type")] == "OSError"]
    assert rows["3"] == rows["2"]


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
def test_no_dsn_or_no_server_leaves_the_script_unchanged(silent_port: int, ending: str,
                                                         sdk_major: str, tmp_path: Path) -> None:
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
        name: subprocess.Popen([sdk_python(sdk_major), "-c", code], text=True, cwd=tmp_path,
                               env={**_clean_env(), **child_env(env), "SENTRY_DEBUG": ""},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, env in variants.items()
    }
    took: dict[str, float] = {}  # each child's run time (their output is far below a pipe's size)
    while len(took) < len(children) and time.monotonic() - started < 30:
        for name, child in children.items():
            if name not in took and child.poll() is not None:
                took[name] = time.monotonic() - started
        time.sleep(0.01)
    results = {}
    for name, child in children.items():
        out, err = child.communicate(timeout=1)
        results[name] = (child.returncode, out, err, took[name])

    code_before, out_before, err_before, _ = results["without sdk_config"]
    assert code_before == (1 if ending.startswith("raise") else 3)
    assert out_before == "scanned 3 pages\n"
    assert "ERROR root: page 2 unreadable" in err_before
    for name in ("connection refused", "server never answers"):
        assert results[name][:3] == results["without sdk_config"][:3], name
        # The queue is given SHUTDOWN_TIMEOUT at exit, then the script exits regardless: beside
        # the same script with sdk_config and no DSN, at most that (and a margin for a busy
        # machine) longer.
        delay = results[name][3] - results["no SENTRY_DSN"][3]
        assert delay < SHUTDOWN_TIMEOUT + 1.5, (name, delay)

    returncode, out, err, _ = results["no SENTRY_DSN"]
    assert (returncode, out) == (code_before, out_before)
    [warning] = [line for line in err.splitlines() if line not in err_before.splitlines()]
    # One warning, though both BugTracker() and init looked for a DSN.
    assert warning == ("WARNING sdk_config: SENTRY_DSN is not set: errors of this script are "
                       "not reported (sdk_config)")
    assert err.replace(warning + "\n", "", 1) == err_before


OTHER_MAJORS_OPTIONS = """
    import sdk_config
    sdk_config.init("mixed", {options})
    raise KeyError("page")
"""


@pytest.mark.parametrize(("major", "options", "unknown"), [
    # A script written for 2.x, on 3.x: the renamed options are translated, removed ones dropped.
    ("3", "send_default_pii=False, include_local_variables=False, enable_logs=False, "
          "profiles_sample_rate=1.0, enable_tracing=False",
     "enable_tracing, profiles_sample_rate"),
    # A script written for 3.x, on 2.x: data_collection is 2.x's too (from 2.7x).
    ("2", "data_collection={'user_info': False}, send_default_pii=False", None),
    ("3", "data_collection={'user_info': False}", None),
])
def test_options_of_the_other_major_never_break_the_script(
    live_server: LiveServer, tmp_path: Path, major: str, options: str, unknown: str | None,
) -> None:
    code = script(OTHER_MAJORS_OPTIONS).replace("{options}", options)
    result = run(Scenario("mixed", code, returncode=1), live_server, major, tmp_path)
    warnings = [line for line in script_stderr(result).splitlines() if "(sdk_config)" in line]
    if unknown is None:
        assert warnings == []
    else:
        assert warnings == [f"sentry-sdk 3.0.1 has no option {unknown}: ignored (sdk_config)"]
    [log] = live_server.error_logs()
    assert (log["component"], log["error_type"]) == ("mixed", "KeyError")
    [bug] = live_server.bugs()
    assert bug["title"] == "Critical: mixed - KeyError"


# --- the SDK environments: a scanner machine, not the server's ------------------------------------

NO_SERVER = """
    import importlib, json, sys
    import sdk_config, sentry_sdk
    missing = []
    for name in ("shim", "starlette", "uvicorn", "msgspec", "orjson"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    print(json.dumps({"sdk_config": sdk_config.__file__, "sentry_sdk": sentry_sdk.VERSION,
                      "missing": missing}))
    sdk_config.init("env-check", workspace_id="ws-env")
    sdk_config.BugTracker().log("error", "sent from a scanner environment", "env-check")
"""


def test_the_sdk_environments_hold_sdk_config_and_no_server(live_server: LiveServer,
                                                             sdk_major: str,
                                                             tmp_path: Path) -> None:
    result = run(Scenario("no_server", script(NO_SERVER)), live_server, sdk_major, tmp_path)
    found = json.loads(result.stdout)
    assert found["missing"] == ["shim", "starlette", "uvicorn", "msgspec", "orjson"]
    assert found["sentry_sdk"].split(".")[0] == sdk_major
    # The installed copy, in the environment's site-packages, not the checkout's.
    installed = Path(found["sdk_config"]).resolve()
    assert installed.is_relative_to((ROOT / ".venvs" / f"sdk{sdk_major}").resolve()), installed
    assert "site-packages" in installed.parts
    # ... and a scanner reports from it.
    [log] = live_server.error_logs()
    assert (log["component"], log["workspace_id"], log["message"]) == (
        "env-check", "ws-env", "sent from a scanner environment")
