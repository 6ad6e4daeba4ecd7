"""``shim.core.event.normalize_event`` and ``shim.core.policy``: one Sentry event to one error_logs row
(and its bug signal), per DESIGN.md's mapping.

Realistic events come from a real ``sentry_sdk`` client whose ``before_send`` keeps the event and
drops it; the shapes older or other SDKs send (legacy keys, numeric levels, tag pairs, JavaScript's
synthetic exceptions) are written as tables.
"""

from __future__ import annotations

import copy
import logging
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import sentry_sdk
from conftest import sdk_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.integrations.logging import LoggingIntegration

from shim.core import levels, policy
from shim.core.envelope import Envelope
from shim.core.errors import InvalidEvent
from shim.core.event import iso_utc, moment_of, normalize_event
from shim.core.grouping_v2 import GROUPING_VERSION
from shim.core.items import log_record
from shim.core.records import ErrorLog, new_row_id

Event = dict[str, Any]
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
RECEIVED_ISO = "2024-05-01T12:00:00.123456+00:00"
EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"


def normalize(event: object, *, event_id: str | None = None, bug_level: str = "critical"
              ) -> ErrorLog:
    return normalize_event(event, event_id=event_id, project_id="1", received=RECEIVED,
                           bug_level=bug_level)


@pytest.fixture
def captured() -> Iterator[list[Event]]:
    with sdk_events(release="scanner@1.2.0", environment="staging",
                    server_name="scan-box") as events:
        yield events


class ScanError(Exception):
    pass


def read_page(page: int) -> None:
    raise ScanError(f"page {page} is blank")


def capture_scan_error(events: list[Event], page: int = 3, **tags: str) -> Event:
    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        try:
            read_page(page)
        except ScanError:
            sentry_sdk.capture_exception()
    return events[-1]


# --- levels ----------------------------------------------------------------------------------

LEVEL_CASES: list[tuple[object, str]] = [
    ("fatal", "critical"), ("FATAL", "critical"), ("critical", "critical"), ("error", "error"),
    ("err", "error"), ("warning", "warning"), ("warn", "warning"), (" Warning ", "warning"),
    ("info", "info"), ("log", "info"), ("notice", "info"), ("debug", "debug"), ("trace", "debug"),
    (50, "critical"), (40, "error"), (30, "warning"), (20, "info"), (10, "debug"), (0, "debug"),
    (45, "error"), (100, "critical"), (35.5, "warning"), (49.99, "error"),
    ("50", "critical"), ("40", "error"), ("30", "warning"), ("20", "info"), ("10", "debug"),
    ("0040", "error"), ("9" * 5000, "critical"),
    # malformed: the default
    (None, "error"), ("", "error"), ("bogus", "error"), (True, "error"), (False, "error"),
    (-1, "error"), ("-10", "error"), ("4.5", "error"), ("²", "error"), ("٤٠", "error"),
    (float("nan"), "error"), ([40], "error"), ({"level": 40}, "error"),
]


@pytest.mark.parametrize(("raw", "level"), LEVEL_CASES, ids=[repr(r)[:20] for r, _ in LEVEL_CASES])
def test_normalize_level(raw: object, level: str) -> None:
    assert levels.normalize_level(raw) == level


def test_normalize_level_default_is_the_callers() -> None:
    assert levels.normalize_level("bogus", default="info") == "info"
    assert levels.normalize_level(-5, default="info") == "info"


@pytest.mark.parametrize(("raw", "level"), [("fatal", "critical"), ("warn", "warning"),
                                            (40, "error"), ("10", "debug"), (None, "error")])
def test_event_level(raw: object, level: str) -> None:
    assert normalize({"level": raw, "message": "m"}).log_level == level


# --- tags, component, ids ----------------------------------------------------------------------

TAG_CASES: dict[str, tuple[object, dict[str, str]]] = {
    "object": ({"component": "ocr", "n": 3, "none": None}, {"component": "ocr", "n": "3",
                                                            "none": ""}),
    "pairs": ([["component", "ocr"], ["workspace_id", "ws-1"]],
              {"component": "ocr", "workspace_id": "ws-1"}),
    "pairs with junk": ([["a", "1"], ["lonely"], "text", ["b", "2", "3"], ("c", "3")],
                        {"a": "1", "c": "3"}),
    "string": ("component=ocr", {}),
    "null": (None, {}),
}


@pytest.mark.parametrize(("tags", "expected"), TAG_CASES.values(), ids=TAG_CASES.keys())
def test_tags(tags: object, expected: dict[str, str]) -> None:
    row = normalize({"message": "m", "tags": tags})
    assert row.context_object().get("tags", {}) == expected


COMPONENT_CASES: dict[str, tuple[Event, str]] = {
    "tag wins": ({"tags": {"component": "ocr"}, "logger": "scanner.ocr"}, "ocr"),
    "tag as pair": ({"tags": [["component", "bot"]], "logger": "x"}, "bot"),
    "empty tag: logger": ({"tags": {"component": ""}, "logger": "scanner.ocr"}, "scanner.ocr"),
    "logger": ({"logger": " scanner.ocr "}, "scanner.ocr"),
    "nothing": ({}, "unknown"),
    "blank logger": ({"logger": "  "}, "unknown"),
}


@pytest.mark.parametrize(("event", "component"), COMPONENT_CASES.values(),
                         ids=COMPONENT_CASES.keys())
def test_component(event: Event, component: str) -> None:
    assert normalize({"message": "m", **event}).component == component


TRACE_ID = "771a43a4192642f0b136d5159a501700"
ID_CASES: dict[str, tuple[Event, str | None, str | None]] = {
    "tags": ({"tags": {"workspace_id": "ws-9", "request_id": "req-1"},
              "contexts": {"trace": {"trace_id": TRACE_ID}}}, "ws-9", "req-1"),
    "request_id falls back to the trace id": (
        {"tags": {"workspace_id": "ws-9"}, "contexts": {"trace": {"trace_id": TRACE_ID}}},
        "ws-9", TRACE_ID,
    ),
    "none": ({}, None, None),
    "empty tags": ({"tags": {"workspace_id": "", "request_id": ""}}, None, None),
    "malformed contexts": ({"contexts": "trace"}, None, None),
    "malformed trace": ({"contexts": {"trace": [TRACE_ID]}}, None, None),
}


@pytest.mark.parametrize(("event", "workspace_id", "request_id"), ID_CASES.values(),
                         ids=ID_CASES.keys())
def test_workspace_and_request_id(event: Event, workspace_id: str | None,
                                  request_id: str | None) -> None:
    row = normalize({"message": "m", **event})
    assert row.workspace_id == workspace_id
    assert row.request_id == request_id


def test_real_event_fields(captured: list[Event]) -> None:
    sentry_sdk.set_user({"id": "u-7", "email": "op@example.com"})
    sentry_sdk.set_extra("page_count", 12)
    sentry_sdk.set_context("scan", {"file": "batch.pdf"})
    sentry_sdk.add_breadcrumb(category="ocr", message="opened batch.pdf")
    try:
        event = capture_scan_error(captured, component="ocr", workspace_id="ws-1",
                                   request_id="req-42")
    finally:
        sentry_sdk.get_isolation_scope().clear()
    row = normalize(event)

    assert row.event_id == event["event_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", row.event_id)
    assert row.log_level == "error"
    assert (row.component, row.workspace_id, row.request_id) == ("ocr", "ws-1", "req-42")
    assert row.error_type == "ScanError"
    assert row.error_message == "page 3 is blank"
    assert row.message == f"{__name__}.ScanError: page 3 is blank"
    assert row.stack_trace is not None and "in read_page" in row.stack_trace
    assert row.item_type == "event"
    assert row.created_at.endswith("+00:00")

    context = row.context_object()
    for key in ("tags", "extra", "contexts", "user", "release", "environment", "server_name",
                "sdk", "breadcrumbs"):
        assert key in context, key
    assert context["tags"] == {"component": "ocr", "workspace_id": "ws-1", "request_id": "req-42"}
    assert context["extra"]["page_count"] == 12
    assert context["contexts"]["scan"] == {"file": "batch.pdf"}
    assert context["user"]["id"] == "u-7"
    assert (context["release"], context["environment"], context["server_name"]) == (
        "scanner@1.2.0", "staging", "scan-box")
    assert context["sdk"]["name"] == "sentry.python"
    assert isinstance(context["breadcrumbs"], list)
    assert any(crumb.get("message") == "opened batch.pdf" for crumb in context["breadcrumbs"])
    orjson.dumps(context)  # the column is JSON


def test_context_request_and_breadcrumb_shapes() -> None:
    request = {"url": "https://scan.example.com/upload", "method": "POST"}
    row = normalize({"message": "m", "request": request,
                     "breadcrumbs": {"values": [{"message": "a"}]}})
    assert row.context_object()["request"] == request
    assert row.context_object()["breadcrumbs"] == [{"message": "a"}]
    row = normalize({"message": "m", "breadcrumbs": [{"message": "b"}]})  # old SDKs: a list
    assert row.context_object()["breadcrumbs"] == [{"message": "b"}]
    row = normalize({"message": "m", "tags": [["lonely"]], "extra": {}, "user": None})
    assert not {"tags", "extra", "user"} & row.context_object().keys()


# --- time ------------------------------------------------------------------------------------

TIME_CASES: dict[str, tuple[object, str]] = {
    "epoch float": (1714557600.5, "2024-05-01T10:00:00.500000+00:00"),
    "epoch int": (1714557600, "2024-05-01T10:00:00.000000+00:00"),
    "RFC 3339 Z": ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000000+00:00"),
    "RFC 3339 microseconds": ("2024-05-01T10:00:00.654321Z", "2024-05-01T10:00:00.654321+00:00"),
    "RFC 3339 offset": ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000000+00:00"),
    "naive means UTC": ("2024-05-01T10:00:00", "2024-05-01T10:00:00.000000+00:00"),
    "bad text": ("yesterday", RECEIVED_ISO),
    "empty": ("", RECEIVED_ISO),
    "missing": (None, RECEIVED_ISO),
    "boolean": (True, RECEIVED_ISO),
    "object": ({"ts": 1}, RECEIVED_ISO),
    "NaN": (float("nan"), RECEIVED_ISO),
    "far future": (1e20, RECEIVED_ISO),
    "year 1 with an offset": ("0001-01-01T00:00:00+01:00", RECEIVED_ISO),
    "year 9999 with an offset": ("9999-12-31T23:59:59-01:00", RECEIVED_ISO),
    "the SDK's form": ("2024-05-01T10:00:00.654321Z", "2024-05-01T10:00:00.654321+00:00"),
    "the SDK's form, invalid": ("2024-02-30T10:00:00.654321Z", RECEIVED_ISO),
    "the SDK's length, a week date": ("2024-W18-3T10:00:00.654321Z",
                                      "2024-05-01T10:00:00.654321+00:00"),
    "the SDK's length, a Unicode digit": ("2024-05-0\u0661T10:00:00.654321Z", RECEIVED_ISO),
    "epoch seconds, the second rounded up": (1714557599.9999996, "2024-05-01T10:00:00.000000+00:00"),
    "year 999": ("0999-05-01T10:00:00", "0999-05-01T10:00:00.000000+00:00"),
}


@pytest.mark.parametrize(("timestamp", "created_at"), TIME_CASES.values(), ids=TIME_CASES.keys())
def test_created_at(timestamp: object, created_at: str) -> None:
    assert normalize({"message": "m", "timestamp": timestamp}).created_at == created_at


def _reference_iso_utc(value: object, fallback: datetime) -> str:
    """What ``iso_utc`` must give: the parsed time written the plain way (it takes shortcuts)."""
    return moment_of(value, fallback).astimezone(UTC).isoformat(timespec="microseconds")


TIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                     timezones=st.timezones() | st.just(UTC))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.one_of(
    TIMES.map(lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    TIMES.map(lambda t: t.isoformat()),
    TIMES.map(lambda t: t.isoformat(timespec="seconds").replace("+00:00", "Z")),
    st.from_regex(r"\A[0-9W]{4}-[0-9W]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z"),
    st.floats(min_value=-1e11, max_value=1e11) | st.integers(-(10**11), 10**11),
    st.text(max_size=30),
), TIMES)
def test_created_at_is_what_the_plain_conversion_gives(value: object, received: datetime) -> None:
    assert iso_utc(value, received) == _reference_iso_utc(value, received)


def test_created_at_from_real_event(captured: list[Event]) -> None:
    event = capture_scan_error(captured)
    assert isinstance(event["timestamp"], str)  # the SDK sends RFC 3339 text
    sent = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(normalize(event).created_at) == sent


# --- messages ----------------------------------------------------------------------------------

MESSAGE_CASES: dict[str, tuple[Event, str]] = {
    "formatted wins": ({"logentry": {"message": "page %d of %s", "params": [3, "a.pdf"],
                                     "formatted": "page 3 of a.pdf"}}, "page 3 of a.pdf"),
    "template and list params": ({"logentry": {"message": "page %d of %s",
                                               "params": [3, "a.pdf"]}}, "page 3 of a.pdf"),
    "template and named params": ({"logentry": {"message": "page %(n)d", "params": {"n": 4}}},
                                  "page 4"),
    "template without params": ({"logentry": {"message": "disk full"}}, "disk full"),
    "formatted only": ({"logentry": {"formatted": "disk full"}}, "disk full"),
    "too few params": ({"logentry": {"message": "page %d of %s", "params": [3]}},
                       "page %d of %s"),
    "wrong param type": ({"logentry": {"message": "page %d", "params": ["x"]}}, "page %d"),
    "missing named param": ({"logentry": {"message": "%(a)s", "params": {"b": 1}}}, "%(a)s"),
    "%c out of range": ({"logentry": {"message": "%c", "params": [2**40]}}, "%c"),
    "huge precision is not formatted": (
        {"logentry": {"message": "%.2000000000f", "params": [1.0]}}, "%.2000000000f"),
    "huge width is not formatted": (
        {"logentry": {"message": "%(a)999999999s", "params": {"a": "x"}}}, "%(a)999999999s"),
    "star width is not formatted": ({"logentry": {"message": "%*s", "params": [10**9, "x"]}},
                                    "%*s"),
    "mapping value used many times is not formatted": (
        {"logentry": {"message": "%(a)s" * 1000, "params": {"a": "x" * 2000}}}, "%(a)s" * 1000),
    "many huge numbers are not formatted": (
        {"logentry": {"message": "%f" * 4000, "params": [1e308] * 4000}}, "%f" * 4000),
    "mapping value used twice is formatted": (
        {"logentry": {"message": "%(a)s-%(a)s", "params": {"a": "x"}}}, "x-x"),
    "small width is formatted": ({"logentry": {"message": "[%5s|%-3d]", "params": ["a", 7]}},
                                 "[    a|7  ]"),
    "message as a string": ({"message": "disk full"}, "disk full"),
    "message as an object": ({"message": {"message": "n=%s", "params": [1]}}, "n=1"),
    "logentry wins over message": ({"logentry": {"formatted": "a"}, "message": "b"}, "a"),
    "legacy interface": ({"sentry.interfaces.Message": {"message": "page %s",
                                                        "params": ["9"]}}, "page 9"),
    "nothing": ({}, ""),
}


@pytest.mark.parametrize(("event", "message"), MESSAGE_CASES.values(), ids=MESSAGE_CASES.keys())
def test_message(event: Event, message: str) -> None:
    row = normalize(event)
    assert row.message == message
    assert row.error_type is None and row.stack_trace is None


def test_template_groups_before_formatting() -> None:
    first = normalize({"logentry": {"message": "page %d of %s", "params": [3, "a.pdf"],
                                    "formatted": "page 3 of a.pdf"}})
    second = normalize({"logentry": {"message": "page %d of %s", "params": [9, "b.pdf"],
                                     "formatted": "page 9 of b.pdf"}})
    other = normalize({"logentry": {"message": "scan %d of %s", "params": [3, "a.pdf"]}})
    assert first.fingerprint == second.fingerprint != other.fingerprint


def test_real_logging_event() -> None:
    # sentry-sdk 3.x turns stdlib records into events only when the logging integration is added
    # with an event level (2.x did by default); level=None: no Sentry Logs from these records.
    with sdk_events(integrations=[LoggingIntegration(level=None, event_level=logging.ERROR)]
                    ) as captured:
        log = logging.getLogger("scanner.ocr")
        log.error("failed page %d of %s", 3, "x.pdf")
        log.error("failed page %d of %s", 8, "y.pdf")
    assert len(captured) == 2
    first, second = (normalize(event) for event in captured)
    assert first.message == "failed page 3 of x.pdf"
    assert first.component == "scanner.ocr"
    assert first.log_level == "error"
    assert first.error_type is None
    assert first.bug is None
    assert first.fingerprint == second.fingerprint


def test_real_capture_message(captured: list[Event]) -> None:
    sentry_sdk.capture_message("queue 12 is stuck", level="fatal")
    row = normalize(captured[-1])
    assert row.message == "queue 12 is stuck"
    assert row.log_level == "critical"
    assert row.bug is not None
    assert row.bug.title == "Critical: unknown - queue 12 is stuck"


JS_MESSAGE: Event = {
    "platform": "javascript",
    "level": "info",
    "message": "",
    "exception": {"values": [{
        "value": "Upload 42 retried",
        "stacktrace": {"frames": [{"filename": "https://app.example.com/main.js",
                                   "function": "upload", "lineno": 10, "in_app": True}]},
        "mechanism": {"type": "generic", "handled": True, "synthetic": True},
    }]},
}


def test_javascript_synthetic_exception_is_a_message() -> None:
    row = normalize(JS_MESSAGE, bug_level="error")
    assert row.message == "Upload 42 retried"
    assert row.error_type is None and row.error_message is None
    assert row.log_level == "info"
    assert row.bug is None  # info is under the error policy, and a synthetic error is no crash
    assert row.stack_trace is not None
    assert row.stack_trace.splitlines()[-1] == "Message: Upload 42 retried"
    assert 'File "https://app.example.com/main.js", line 10, in upload' in row.stack_trace
    other = copy.deepcopy(JS_MESSAGE)
    other["exception"]["values"][0]["value"] = "Upload 43 retried"
    assert normalize(other).fingerprint == row.fingerprint


def test_javascript_synthetic_exception_at_error_is_no_bug_under_critical_policy() -> None:
    event = copy.deepcopy(JS_MESSAGE)
    event["level"] = "error"
    assert normalize(event).bug is None
    assert normalize(event, bug_level="error").bug is not None


def test_thread_stacktrace_of_a_message_is_rendered() -> None:
    event = {"message": "slow", "threads": {"values": [
        {"stacktrace": {"frames": [{"abs_path": "/a.py", "lineno": 2, "function": "f"}]}}]}}
    assert normalize(event).stack_trace == (
        'Traceback (most recent call last):\n  File "/a.py", line 2, in f\nMessage: slow')


# --- exceptions, legacy shapes ---------------------------------------------------------------

EXCEPTION_SHAPES: dict[str, Event] = {
    "modern": {"exception": {"values": [{"type": "ValueError", "value": "bad 1"}]}},
    "bare list": {"exception": [{"type": "ValueError", "value": "bad 1"}]},
    "one object": {"exception": {"type": "ValueError", "value": "bad 1"}},
    "legacy interface": {"sentry.interfaces.Exception": {"values": [
        {"type": "ValueError", "value": "bad 1"}]}},
    "legacy single": {"sentry.interfaces.Exception": {"type": "ValueError", "value": "bad 1"}},
}


@pytest.mark.parametrize("event", EXCEPTION_SHAPES.values(), ids=EXCEPTION_SHAPES.keys())
def test_exception_shapes(event: Event) -> None:
    original = copy.deepcopy(event)
    row = normalize(event)
    assert (row.error_type, row.error_message) == ("ValueError", "bad 1")
    assert row.message == "ValueError: bad 1"
    assert row.stack_trace == "ValueError: bad 1"
    assert event == original  # the caller's dict is not rewritten


def test_last_exception_of_a_chain_is_the_error() -> None:
    row = normalize({"exception": {"values": [{"type": "KeyError", "value": "'a'"},
                                              {"type": "ScanError", "value": " page gone ",
                                               "module": "scanner.errors"}]}})
    assert (row.error_type, row.error_message) == ("ScanError", "page gone")
    assert row.message == "scanner.errors.ScanError:  page gone "
    assert row.stack_trace is not None and row.stack_trace.startswith("KeyError: 'a'")


def test_message_kept_next_to_an_exception() -> None:
    row = normalize({"message": "while scanning", "exception": [{"type": "E", "value": "x"}]})
    assert (row.message, row.error_type) == ("while scanning", "E")


# --- bug policy ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("level", "bug_level", "severity"),
    [
        ("fatal", "critical", "critical"),
        ("critical", "critical", "critical"),
        ("error", "critical", None),
        ("warning", "critical", None),
        ("info", "critical", None),
        ("debug", "critical", None),
        ("error", "error", "high"),
        ("fatal", "error", "critical"),
        ("warning", "error", None),
        ("warning", "warning", "medium"),
        ("info", "warning", None),
        ("debug", "debug", "low"),
    ],
)
def test_bug_level(level: str, bug_level: str, severity: str | None) -> None:
    row = normalize({"level": level, "tags": {"component": "ocr"},
                     "exception": [{"type": "ScanError", "value": "x"}]}, bug_level=bug_level)
    if severity is None:
        assert row.bug is None
        return
    assert row.bug is not None
    assert row.bug.severity == severity
    assert row.bug.priority == {"critical": "urgent", "high": "high", "medium": "medium",
                                "low": "low"}[severity]
    assert row.bug.grouping_version == GROUPING_VERSION
    prefix = "Critical" if severity == "critical" else levels.normalize_level(level).capitalize()
    assert row.bug.title == f"{prefix}: ocr - ScanError"


def test_real_critical_event_opens_a_bug(captured: list[Event]) -> None:
    with sentry_sdk.new_scope() as scope:
        scope.set_level("fatal")
        event = capture_scan_error(captured, component="ocr")
    row = normalize(event)
    assert row.log_level == "critical"
    assert row.bug is not None
    assert row.bug.title == "Critical: ocr - ScanError"
    assert row.bug.severity == "critical" and row.bug.priority == "urgent"
    assert row.bug.description.splitlines() == ["page 3 is blank", "Component: ocr",
                                                "Environment: staging"]


def test_real_handled_error_is_logged_only(captured: list[Event]) -> None:
    row = normalize(capture_scan_error(captured, component="ocr"))
    assert row.log_level == "error"
    assert row.bug is None


def test_real_unhandled_exception_is_always_a_critical_bug(captured: list[Event]) -> None:
    try:
        read_page(5)
    except ScanError:
        # The SDK's excepthook integration, as for an exception that ended the process (it then
        # prints the traceback, as Python's own hook does).
        sys.excepthook(*sys.exc_info())
    sent = captured[-1]
    assert sent["exception"]["values"][-1]["mechanism"]["type"] == "excepthook"
    assert sent["exception"]["values"][-1]["mechanism"]["handled"] is False
    row = normalize(sent)
    assert row.log_level == "error"
    assert row.bug is not None
    assert row.bug.severity == "critical"
    assert row.bug.title == "Critical: unknown - ScanError"
    assert normalize({**sent, "level": "debug"}).bug is not None


def test_handled_none_is_not_unhandled() -> None:
    event = {"exception": [{"type": "E", "value": "x", "mechanism": {"type": "generic"}}]}
    assert normalize(event).bug is None


BUG_TITLES: dict[str, tuple[Event, str]] = {
    "exception": ({"exception": [{"type": "KeyError", "value": "'a'"}], "logger": "bot"},
                  "Critical: bot - KeyError"),
    "message: first line": ({"message": "\n  queue stuck\nretrying in 5 s"},
                            "Critical: unknown - queue stuck"),
    "no message": ({}, "Critical: unknown - (no message)"),
    "long title is cut": ({"message": "x" * 500}, "Critical: unknown - " + "x" * 179 + "…"),
}


@pytest.mark.parametrize(("event", "title"), BUG_TITLES.values(), ids=BUG_TITLES.keys())
def test_bug_title(event: Event, title: str) -> None:
    row = normalize({"level": "fatal", **event})
    assert row.bug is not None
    assert row.bug.title == title
    assert len(row.bug.title) <= policy.TITLE_MAX


# --- invalid events and ids ------------------------------------------------------------------

@pytest.mark.parametrize("event", [[], ["message"], "message", None, 42, True])
def test_non_object_event_is_invalid(event: object) -> None:
    with pytest.raises(InvalidEvent) as raised:
        normalize(event)
    assert raised.value.status == 400


@pytest.mark.parametrize("event_id", ["not-a-uuid", EVENT_ID[:-1], "0x" + EVENT_ID[2:], 12,
                                      {"id": EVENT_ID}, EVENT_ID + "00"])
def test_bad_event_id_is_invalid(event_id: object) -> None:
    with pytest.raises(InvalidEvent):
        normalize({"event_id": event_id, "message": "m"})


@pytest.mark.parametrize("event_id", [EVENT_ID, EVENT_ID.upper(),
                                      "9ec79c33-ec99-42ab-8353-589fcb2e04dc"])
def test_event_id_is_normalised(event_id: str) -> None:
    assert normalize({"event_id": event_id, "message": "m"}).event_id == EVENT_ID


def test_event_id_from_the_envelope_wins() -> None:
    other = "0" * 32
    assert normalize({"event_id": EVENT_ID}, event_id=other).event_id == other
    assert normalize({"event_id": "junk"}, event_id=other).event_id == other


def test_missing_event_id_gets_a_fresh_one() -> None:
    first, second = normalize({"message": "m"}), normalize({"message": "m", "event_id": ""})
    assert re.fullmatch(r"[0-9a-f]{32}", first.event_id)
    assert first.event_id != second.event_id
    assert first.id != second.id


# --- property: any JSON object gives a row or InvalidEvent -----------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
           | st.sampled_from(["fatal", "40", "%s %d", "%(a)s", "Z", "__cause__", "2024-05-01"]))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["values", "type", "value", "stacktrace", "frames", "mechanism",
                         "handled", "in_app", "module", "function", "message", "params",
                         "formatted", "trace", "trace_id", "source", "x"]), inner, max_size=5),
    max_leaves=12,
)
KEYS = ["event_id", "level", "logger", "message", "logentry", "exception", "tags", "contexts",
        "timestamp", "breadcrumbs", "fingerprint", "threads", "stacktrace", "environment",
        "transaction", "sentry.interfaces.Exception", "sentry.interfaces.Message"]


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={key: JSON for key in KEYS}),
       st.sampled_from(levels.LEVELS))
def test_any_json_object_normalises_or_is_invalid(event: Event, bug_level: str) -> None:
    try:
        row = normalize(event, bug_level=bug_level)
    except InvalidEvent:
        return
    assert row.log_level in levels.LEVELS
    assert re.fullmatch(r"[0-9a-f]{32}", row.fingerprint)
    assert re.fullmatch(r"[0-9a-f]{32}", row.event_id)
    assert datetime.fromisoformat(row.created_at).tzinfo is not None
    assert isinstance(row.message, str) and isinstance(row.component, str) and row.component
    assert isinstance(orjson.loads(row.context), dict)  # the column is JSON text
    if row.bug is not None:
        assert row.bug.severity in levels.PRIORITY
        assert len(row.bug.title) <= policy.TITLE_MAX


def test_row_ids_are_version_7_uuids_in_the_order_rows_are_made() -> None:
    """Time-ordered ids keep inserts into the primary key's index on its last pages."""
    received = datetime.now(UTC)
    event_row = normalize_event({"message": "m"}, event_id=None, project_id="1",
                                received=received, bug_level="error")
    time.sleep(0.002)
    record_row = log_record({"body": "b", "level": "info"}, Counter(), Envelope({}), "1",
                            received)
    time.sleep(0.002)
    ids = [event_row.id, record_row.id, new_row_id()]
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in parsed] == ids  # the canonical text: lower-case, dashed
    assert [u.version for u in parsed] == [7, 7, 7]
    assert all(u.variant == uuid.RFC_4122 for u in parsed)
    assert ids == sorted(ids) and len(set(ids)) == 3
    millis = parsed[0].int >> 80  # the first 48 bits: Unix time in milliseconds
    assert abs(millis / 1000 - received.timestamp()) < 5
    # Within one millisecond the 74 random bits keep them apart.
    assert len({new_row_id() for _ in range(20_000)}) == 20_000


def test_escalation_keeps_the_most_severe_signal_with_its_own_priority() -> None:
    from shim.core.policy import escalated
    from shim.core.records import BugSignal

    def signal(severity: str, priority: str) -> BugSignal:
        return BugSignal(title="t", description="d", severity=severity, priority=priority,
                         grouping_version=1)

    assert escalated([signal("low", "low")]) == ("low", "low")
    assert escalated([signal("medium", "x"), signal("high", "y"), signal("high", "z")]) == (
        "high", "y")
    assert escalated([signal("high", "y")], ("critical", "urgent")) == ("critical", "urgent")
    assert escalated([signal("high", "y")], ("high", "kept")) == ("high", "kept")
    assert escalated([signal("critical", "urgent")], ("high", "high")) == ("critical", "urgent")


@pytest.mark.parametrize("payload_is_text", [True, False])
def test_a_row_groups_by_what_grouping_v2_reads(payload_is_text: bool) -> None:
    """The projection keeps every key grouping version 2 reads: raw security reports, threads'
    flags, a template; the row's fingerprint and why-grouped record are v2's of the event."""
    from shim.core.grouping_v2 import group

    events = [
        {"hpkp": {"hostname": "www.example.com", "port": 443}},
        {"expect-ct-report": {"hostname": "shop.example.com"}},
        {"csp": {"effective_directive": "script-src", "blocked_uri": "https://cdn.example/x.js"}},
        {"template": {"filename": "page.html", "context_line": "{{ user.name }}", "lineno": 3}},
        {"threads": {"values": [
            {"id": 1, "current": True, "stacktrace": {"frames": [
                {"function": "idle", "module": "app.loop"}]}},
            {"id": 2, "crashed": True, "stacktrace": {"frames": [
                {"function": "parse", "module": "app.pdf", "raw_function": "parse(char*)",
                 "symbol": "_Z5parsePc", "package": "/usr/lib/app", "platform": "native"}]}}]}},
    ]
    for body in events:
        body = {**body, "level": "fatal", "event_id": "e" * 32}
        payload = orjson.dumps(body) if payload_is_text else body
        row = normalize_event(payload, event_id=None, project_id="1", received=RECEIVED,
                              bug_level="warning")
        expected = group(body)
        assert row.fingerprint == expected.hash
        assert row.context_object()["_grouping"] == expected.info()
        assert expected.variant != "fallback", body
