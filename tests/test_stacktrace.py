"""Traceback text rebuilt from a Sentry event must read like Python's own.

The oracle is Python: real exceptions are raised, captured by a real ``sentry_sdk`` client (whose
``before_send`` keeps the event and drops it), and the text ``shim.core.stacktrace.render`` builds from
the event is compared line by line with ``traceback.format_exception`` for the same exception,
minus the ``^^^^`` marker lines Python 3.11 adds under a frame's source line.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from conftest import sdk_events

from shim.core.stacktrace import DIRECT_CAUSE, DURING_HANDLING, exception_line, render

Event = dict[str, Any]


@pytest.fixture
def captured() -> Iterator[list[Event]]:
    with sdk_events() as events:
        yield events


def python_lines(exc: BaseException) -> list[str]:
    """``traceback.format_exception`` as lines, without the position marker lines of 3.11+."""
    lines = "".join(traceback.format_exception(exc)).splitlines()
    return [line for line in lines if not (line.strip() and set(line.strip()) <= set("^~"))]


def capture(events: list[Event], exc: BaseException) -> list[dict[str, Any]]:
    sentry_sdk.capture_exception(exc)
    assert events, "the SDK dropped the event"
    values: list[dict[str, Any]] = events[-1]["exception"]["values"]
    return values


class ScanError(Exception):
    """Not a builtin: Python prints it with its module."""


class Scanner:
    class PageMissing(LookupError):
        """Nested: the SDK sends its qualified name, Python prints module + qualified name."""


def read_page(pages: dict[str, str], name: str) -> str:
    return pages[name]


def parse(text: str) -> int:
    return int(text)


def ocr(page: str) -> None:
    raise ScanError(f"cannot read {page!r}:\nsecond line of the message")


def test_single_exception_matches_python(captured: list[Event]) -> None:
    try:
        read_page({"a": "1"}, "missing")
    except KeyError as exc:
        values = capture(captured, exc)
        expected = python_lines(exc)
    assert len(values) == 1
    assert render(values).splitlines() == expected
    assert expected[0] == "Traceback (most recent call last):"
    assert expected[-1] == "KeyError: 'missing'"


@pytest.mark.parametrize(
    "raise_it",
    [
        lambda: parse("twelve"),  # ValueError from a builtin, frames in two functions
        lambda: ocr("scan 7"),  # non-builtin type, message over two lines
        lambda: (_ for _ in ()).throw(Scanner.PageMissing("page 3")),  # nested class
        lambda: read_page({}, "x"),
    ],
    ids=["builtin", "module-qualified", "nested class", "KeyError"],
)
def test_exception_types_match_python(captured: list[Event], raise_it: Any) -> None:
    try:
        raise_it()
    except Exception as exc:
        values = capture(captured, exc)
        expected = python_lines(exc)
    assert render(values).splitlines() == expected


def test_module_qualified_type(captured: list[Event]) -> None:
    try:
        ocr("p")
    except ScanError as exc:
        values = capture(captured, exc)
    assert values[0]["module"] == __name__
    assert render(values).splitlines()[-2] == f"{__name__}.ScanError: cannot read 'p':"


def test_implicit_chain_matches_python(captured: list[Event]) -> None:
    try:
        try:
            try:
                read_page({}, "cover")
            except KeyError:
                parse("none")
        except ValueError:
            ocr("cover")
    except ScanError as exc:
        values = capture(captured, exc)
        expected = python_lines(exc)
    assert [v["type"] for v in values] == ["KeyError", "ValueError", "ScanError"]  # oldest first
    assert render(values).splitlines() == expected
    assert render(values).count(DURING_HANDLING) == 2


def test_direct_cause_with_mechanism_source(captured: list[Event]) -> None:
    try:
        try:
            parse("x")
        except ValueError as cause:
            raise ScanError("page unreadable") from cause
    except ScanError as exc:
        values = capture(captured, exc)
        expected = python_lines(exc)
    assert DIRECT_CAUSE in expected
    # sentry-sdk 3.x says how each link was made (``mechanism.source``) and links the values by
    # ``exception_id`` / ``parent_id``: Python's text exactly.
    assert [v["mechanism"].get("source") for v in values] == ["__cause__", None]
    assert values[0]["mechanism"]["parent_id"] == values[1]["mechanism"]["exception_id"]
    assert render(values).splitlines() == expected
    # 2.x sent the same chain plain, without the source or the links: Python's implicit wording.
    plain = [{**v, "mechanism": {"type": "generic", "handled": True}} for v in values]
    assert render(plain).splitlines() == [
        DURING_HANDLING if line == DIRECT_CAUSE else line for line in expected]


def test_cause_and_context_in_one_chain_match_python(captured: list[Event]) -> None:
    try:
        try:
            try:
                parse("x")
            except ValueError as cause:
                raise LookupError("page 3") from cause
        except LookupError:
            ocr("page 3")
    except ScanError as exc:
        values = capture(captured, exc)
        expected = python_lines(exc)
    assert [v["type"] for v in values] == ["ValueError", "LookupError", "ScanError"]
    assert expected.count(DIRECT_CAUSE) == expected.count(DURING_HANDLING) == 1
    assert render(values).splitlines() == expected


def test_suppressed_context_matches_python(captured: list[Event]) -> None:
    try:
        try:
            parse("x")
        except ValueError:
            raise ScanError("clean") from None
    except ScanError as exc:
        values = capture(captured, exc)
        expected = python_lines(exc)
    assert len(values) == 1
    assert render(values).splitlines() == expected


# --- pure tables ---------------------------------------------------------------------------

LINES = {
    "builtin": ({"type": "ValueError", "value": "bad", "module": "builtins"}, "ValueError: bad"),
    "__main__": ({"type": "Boom", "value": "x", "module": "__main__"}, "Boom: x"),
    "no module": ({"type": "Boom", "value": "x"}, "Boom: x"),
    "module": ({"type": "ScanError", "value": "x", "module": "scanner.errors"},
               "scanner.errors.ScanError: x"),
    "nested class": ({"type": "Outer.Error", "value": "x", "module": "scanner"},
                     "scanner.Outer.Error: x"),
    "already qualified": ({"type": "scanner.Error", "value": "x", "module": "scanner"},
                          "scanner.Error: x"),
    "Java": ({"type": "IllegalStateException", "value": "x", "module": "java.lang"},
             "java.lang.IllegalStateException: x"),
    ".NET assembly": ({"type": "System.InvalidOperationException", "value": "x",
                       "module": "System.Private.CoreLib, Version=8.0.0.0, Culture=neutral"},
                      "System.InvalidOperationException: x"),
    "empty value": ({"type": "StopIteration", "value": ""}, "StopIteration"),
    "no value": ({"type": "KeyboardInterrupt", "value": None}, "KeyboardInterrupt"),
    "no type": ({"value": "x"}, "Error: x"),
}


@pytest.mark.parametrize(("value", "line"), LINES.values(), ids=LINES.keys())
def test_exception_line(value: dict[str, Any], line: str) -> None:
    assert exception_line(value) == line


def test_exception_without_frames_is_one_line() -> None:
    assert render([{"type": "ValueError", "value": "bad input"}]) == "ValueError: bad input"
    assert render([{"type": "ValueError", "value": "x", "stacktrace": {"frames": []}}]) \
        == "ValueError: x"
    assert render([{"type": "ValueError", "value": "x", "stacktrace": None}]) == "ValueError: x"


def test_chain_without_frames() -> None:
    text = render([
        {"type": "KeyError", "value": "'a'"},
        {"type": "ValueError", "value": "b", "mechanism": {"source": "__context__"}},
        {"type": "TypeError", "value": "c"},
    ])
    assert text.split("\n\n") == ["KeyError: 'a'", DURING_HANDLING, "ValueError: b",
                                  DURING_HANDLING, "TypeError: c"]
    text = render([{"type": "KeyError", "value": "'a'", "mechanism": {"source": "cause"}},
                   {"type": "ValueError", "value": "b"}])
    assert text.split("\n\n") == ["KeyError: 'a'", DIRECT_CAUSE, "ValueError: b"]


FRAMES = {
    "full": ({"abs_path": "/srv/app.py", "filename": "app.py", "lineno": 3, "function": "main",
              "context_line": "    run()  "},
             ['  File "/srv/app.py", line 3, in main', "    run()"]),
    "no source line": ({"abs_path": "/srv/app.py", "lineno": 3, "function": "main"},
                       ['  File "/srv/app.py", line 3, in main']),
    "blank source line": ({"abs_path": "/srv/app.py", "lineno": 3, "function": "main",
                           "context_line": "   "}, ['  File "/srv/app.py", line 3, in main']),
    "filename only, no line number": ({"filename": "app.js", "function": "render"},
                                      ['  File "app.js", in render']),
    "module only, no function": ({"module": "scanner.main", "lineno": 1},
                                 ['  File "scanner.main", line 1, in <module>']),
    "nothing": ({}, ['  File "<unknown>", in <module>']),
}


@pytest.mark.parametrize(("frame", "lines"), FRAMES.values(), ids=FRAMES.keys())
def test_frame_lines(frame: dict[str, Any], lines: list[str]) -> None:
    text = render([{"type": "E", "value": "x", "stacktrace": {"frames": [frame]}}])
    assert text.splitlines() == ["Traceback (most recent call last):", *lines, "E: x"]


def test_malformed_frames_are_skipped() -> None:
    value = {"type": "E", "value": "x", "stacktrace": {"frames": [
        "not a frame", None, {"abs_path": "/a.py", "lineno": 1, "function": "f"}]}}
    assert render([value]).splitlines() == [
        "Traceback (most recent call last):", '  File "/a.py", line 1, in f', "E: x"]


def test_exception_group_renders_members_under_the_group(captured: list[Event]) -> None:
    members: list[Exception] = []
    for exc in (ValueError("page 3 unreadable"), TypeError("bad pixel")):
        try:
            raise exc
        except Exception as caught:
            members.append(caught)
    try:
        raise ExceptionGroup("batch failed", members)
    except ExceptionGroup as group:
        values = capture(captured, group)
    lines = render(values).splitlines()
    assert lines[0] == "Exception Group Traceback (most recent call last):"
    assert "ExceptionGroup: batch failed (2 sub-exceptions)" in lines
    first, second = lines.index("+---------------- 1 ----------------"), lines.index(
        "+---------------- 2 ----------------")
    assert "| ValueError: page 3 unreadable" in lines[first:second]
    assert "| TypeError: bad pixel" in lines[second:]
    assert lines[-1] == "+------------------------------------"


def test_linked_cycle_does_not_loop() -> None:
    values = [
        {"type": "A", "value": "a", "mechanism": {"exception_id": 1, "parent_id": 0,
                                                  "source": "exceptions[0]"}},
        {"type": "G", "value": "g", "mechanism": {"exception_id": 0, "parent_id": None}},
        {"type": "B", "value": "b", "mechanism": {"exception_id": 0, "parent_id": 1,
                                                  "source": "exceptions[0]"}},
    ]
    text = render(values)
    assert "G: g" in text and "A: a" in text
