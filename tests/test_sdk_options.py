"""sdk_config's options, checked without sending anything: the keyword arguments it gives
``sentry_sdk.init`` (in this process, on .venv's sentry-sdk 3.x; and in a child of each SDK
environment, where the two majors' shapes differ), the Sentry Logs switch, the log hook of
sentry-sdk 2.40-2.48 and the in-house levels.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import _clean_env, script, sdk_python
from sdk_scenarios import child_env
from sentry_sdk.integrations.atexit import AtexitIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.unraisablehook import UnraisablehookIntegration

from sdk_config._options import (
    NO_PII,
    SDK_MAJOR,
    SHUTDOWN_TIMEOUT,
    sdk_options,
    unknown_options,
    wants_logs,
)
from sdk_config._tags import LogHook, tagged_logs
from sdk_config.tracker import sentry_level

DSN = "http://key@127.0.0.1:9/1"


def test_this_process_runs_the_3x_sdk() -> None:
    assert SDK_MAJOR == 3  # the tables below are 3.x's options; 2.x's are checked in a child


@pytest.mark.parametrize(("environ", "overrides", "expected"), [
    ({}, {}, None),
    ({"SENTRY_DSN": ""}, {}, None),
    ({"SENTRY_DSN": DSN}, {"dsn": None}, None),
    ({}, {"dsn": DSN}, {"dsn": DSN}),
    ({"SENTRY_DSN": DSN}, {}, {"dsn": DSN, "environment": None, "release": None,
                              "shutdown_timeout": SHUTDOWN_TIMEOUT, "attach_stacktrace": False,
                              "data_collection": NO_PII,
                              "disabled_integrations": [UnraisablehookIntegration]}),
    ({"SENTRY_DSN": DSN, "SENTRY_ENVIRONMENT": "staging", "SENTRY_RELEASE": "r1"}, {},
     {"environment": "staging", "release": "r1"}),
    ({"SENTRY_DSN": DSN, "SENTRY_ENVIRONMENT": "staging"},
     {"environment": "dev", "shutdown_timeout": 5, "debug": True, "attach_stacktrace": True},
     {"environment": "dev", "shutdown_timeout": 5, "debug": True, "attach_stacktrace": True}),
    # 2.x's privacy and stack switches, as 3.x's data_collection
    ({"SENTRY_DSN": DSN}, {"send_default_pii": True}, {"data_collection": {}}),
    ({"SENTRY_DSN": DSN}, {"send_default_pii": False}, {"data_collection": NO_PII}),
    ({"SENTRY_DSN": DSN}, {"include_local_variables": False, "include_source_context": False},
     {"data_collection": {**NO_PII, "stack_frame_variables": False, "frame_context_lines": 0}}),
    ({"SENTRY_DSN": DSN}, {"send_default_pii": True, "include_local_variables": False},
     {"data_collection": {"stack_frame_variables": False}}),
    ({"SENTRY_DSN": DSN}, {"data_collection": {"cookies": {"mode": "off"}},
                           "send_default_pii": True},
     {"data_collection": {"cookies": {"mode": "off"}}}),  # the caller's own replaces ours whole
    ({"SENTRY_DSN": DSN}, {"disabled_integrations": [AtexitIntegration]},
     {"disabled_integrations": [AtexitIntegration, UnraisablehookIntegration]}),
    ({"SENTRY_DSN": DSN}, {"integrations": [UnraisablehookIntegration()]},
     {"disabled_integrations": None}),  # the caller asked for it
])
def test_sdk_options(environ: dict[str, str], overrides: dict[str, Any],
                     expected: dict[str, Any] | None) -> None:
    options = sdk_options(None, overrides, environ)
    if expected is None:
        assert options is None
        return
    assert options is not None
    assert {k: options.get(k) for k in expected} == expected
    # Nothing 3.x would refuse: 2.x's names are gone, whatever the caller passed.
    assert unknown_options(options) == []
    assert not {"send_default_pii", "enable_logs", "include_local_variables"} & set(options)


@pytest.mark.parametrize(("send_logs", "environ", "overrides", "expected"), [
    (None, {}, {}, False),
    (None, {"SHIM_SEND_LOGS": "yes"}, {}, True),
    (None, {"SHIM_SEND_LOGS": " TRUE "}, {}, True),
    (None, {"SHIM_SEND_LOGS": "0"}, {}, False),
    (None, {"SHIM_SEND_LOGS": "1"}, {"enable_logs": False}, False),
    (True, {}, {}, True),
    (False, {"SHIM_SEND_LOGS": "1"}, {}, False),
    (False, {}, {"enable_logs": True}, True),  # any option overrides our defaults
])
def test_wants_logs(send_logs: bool | None, environ: dict[str, str], overrides: dict[str, Any],
                    expected: bool) -> None:
    assert wants_logs(send_logs, overrides, environ) is expected


def test_unknown_options_names_what_the_installed_sdk_would_refuse() -> None:
    assert unknown_options({"dsn": DSN, "enable_tracing": True, "profiles_sample_rate": 1.0,
                            "data_collection": {}}) == ["enable_tracing", "profiles_sample_rate"]


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


def keep_body(log: dict[str, Any], hint: Any) -> dict[str, Any] | None:
    return {"body": log["body"], "attributes": dict(log["attributes"])}


@pytest.mark.parametrize(("attributes", "send_pii", "theirs", "log", "expected"), [
    ({"component": "ocr", "workspace_id": "ws-1"}, False, None,
     {"body": "b", "attributes": {"sentry.origin": "auto.log.stdlib"}},
     {"body": "b", "attributes": {"sentry.origin": "auto.log.stdlib", "component": "ocr",
                                  "workspace_id": "ws-1"}}),
    ({"component": "ocr"}, False, None, {"body": "b"},
     {"body": "b", "attributes": {"component": "ocr"}}),
    ({"component": "ocr"}, False, None, {"body": "b", "attributes": {"component": "own"}},
     {"body": "b", "attributes": {"component": "own"}}),  # the log's own attribute wins
    ({}, False, None, {"body": "b", "attributes": {"user.id": "u", "user.email": "e", "u": 1}},
     {"body": "b", "attributes": {"u": 1}}),  # 2.40-2.48 add the user whatever the PII option
    ({}, True, None, {"body": "b", "attributes": {"user.id": "u"}},
     {"body": "b", "attributes": {"user.id": "u"}}),
    ({"component": "ocr"}, False, keep_body, {"body": "b", "attributes": {}, "level": "info"},
     {"body": "b", "attributes": {"component": "ocr"}}),  # the caller's hook sees our attributes
    ({"component": "ocr"}, False, lambda log, hint: None, {"body": "b"}, None),
])
def test_tagged_logs(attributes: dict[str, str], send_pii: bool, theirs: LogHook | None,
                     log: dict[str, Any], expected: dict[str, Any] | None) -> None:
    """The before_send_log of sentry-sdk 2.40-2.48, which hold no attributes on the scope."""
    assert tagged_logs(theirs, send_pii=send_pii, attributes=attributes)(log, {}) == expected


OPTIONS_OF_THIS_MAJOR = """
    import json, sys
    from sdk_config._options import sdk_options, unknown_options
    for overrides in ({}, {"send_default_pii": True, "include_local_variables": False,
                           "enable_logs": True}):
        options = sdk_options(None, overrides, {"SENTRY_DSN": "http://key@127.0.0.1:9/1"})
        print(json.dumps({
            "names": sorted(options),
            "unknown": unknown_options(options),
            "integrations": [type(i).__name__ for i in options["integrations"]],
            "disabled": [i.__name__ for i in options.get("disabled_integrations") or ()],
            "enable_logs": options.get("enable_logs"),
            "send_default_pii": options.get("send_default_pii"),
            "include_local_variables": options.get("include_local_variables"),
            "data_collection": options.get("data_collection"),
        }))
"""

COMMON_NAMES = ["attach_stacktrace", "dsn", "environment", "integrations", "release",
                "server_name", "shutdown_timeout"]


def test_the_options_each_major_is_given(sdk_major: str, tmp_path: Path) -> None:
    result = subprocess.run([sdk_python(sdk_major), "-c", script(OPTIONS_OF_THIS_MAJOR)],
                            cwd=tmp_path, env={**_clean_env(), **child_env()}, text=True,
                            capture_output=True, check=True)
    defaults, translated = (json.loads(line) for line in result.stdout.splitlines())
    for options in (defaults, translated):
        assert options["unknown"] == []  # sentry_sdk.init takes every one of them
        assert options["integrations"] == ["LoggingIntegration", "AtexitIntegration"]
    if sdk_major == "2":  # 2.x's own options, as the callers wrote them
        assert defaults["names"] == sorted([*COMMON_NAMES, "enable_logs"])
        assert defaults["enable_logs"] is False
        assert defaults["disabled"] == []
        assert defaults["send_default_pii"] is None  # 2.x's default: no PII
        assert (translated["enable_logs"], translated["send_default_pii"],
                translated["include_local_variables"]) == (True, True, False)
        assert translated["data_collection"] is None
    else:  # the same wishes in 3.x's terms
        assert defaults["names"] == sorted([*COMMON_NAMES, "data_collection",
                                            "disabled_integrations"])
        assert defaults["disabled"] == ["UnraisablehookIntegration"]
        assert defaults["data_collection"] == json.loads(json.dumps(NO_PII))
        assert translated["data_collection"] == {"stack_frame_variables": False}
        assert translated["enable_logs"] is None  # it went to the LoggingIntegration


@pytest.mark.parametrize(("level", "expected"), [
    ("debug", "debug"), ("info", "info"), ("warning", "warning"), ("error", "error"),
    ("critical", "fatal"), ("CRITICAL", "fatal"), (" warn ", "warning"), ("fatal", "fatal"),
    ("verbose", "error"), ("", "error"),
])
def test_sentry_level(level: str, expected: str) -> None:
    assert sentry_level(level) == expected
