"""Fingerprints (DESIGN.md, "Grouping"): pairs of events that must, or must not, share a bug."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from shim.core.grouping import GROUPING_VERSION, default_fingerprint, fingerprint, normalize_message

Exception_ = dict[str, Any]


def frame(module: str | None, function: str, lineno: int = 1, in_app: bool | None = True,
          **extra: Any) -> dict[str, Any]:
    return {"module": module, "function": function, "lineno": lineno, "in_app": in_app,
            "filename": f"{(module or 'x').replace('.', '/')}.py", **extra}


BASE: list[Exception_] = [{
    "type": "ValueError",
    "value": "page 42 of scan-7.pdf is empty",
    "module": None,
    "mechanism": {"type": "generic", "handled": True},
    "stacktrace": {"frames": [
        frame("scanner.main", "main", 10, context_line="run()"),
        frame("requests.api", "get", 59, in_app=False),
        frame("scanner.ocr", "read_page", 55, context_line="raise ValueError(msg)"),
    ]},
}]


def variant(change: Callable[[list[Exception_]], object],
            base: list[Exception_] = BASE) -> list[Exception_]:
    values = copy.deepcopy(base)
    change(values)
    return values


def frames(values: list[Exception_], index: int = 0) -> list[dict[str, Any]]:
    frame_list: list[dict[str, Any]] = values[index]["stacktrace"]["frames"]
    return frame_list


def set_lines(values: list[Exception_]) -> None:
    for number, one in enumerate(frames(values)):
        one["lineno"] = 1000 + number
        one["context_line"] = f"# edited {number}"


def add_cause(values: list[Exception_]) -> None:
    values.insert(0, {"type": "KeyError", "value": "'page'",
                      "stacktrace": {"frames": [frame("scanner.ocr", "lookup")]}})


def no_frame_in_app(values: list[Exception_]) -> None:
    for one in frames(values):
        one["in_app"] = False


LIBRARY_ONLY = variant(no_frame_in_app)
NO_FRAMES = [{"type": "TimeoutError", "value": "timed out after 30 s talking to 10.0.0.7"}]
JS = [{"type": "TypeError", "value": "x is undefined", "stacktrace": {"frames": [
    {"filename": "https://cdn.example.com/static/app.js?v=123", "function": "render",
     "lineno": 10, "colno": 5, "in_app": True},
]}}]


def same_exceptions(left: list[Exception_], right: list[Exception_]) -> tuple[str, str]:
    return default_fingerprint(left, None, None), default_fingerprint(right, None, None)


# (left, right, same?) for exception events.
EXCEPTION_PAIRS: dict[str, tuple[list[Exception_], list[Exception_], bool]] = {
    "identical": (BASE, variant(lambda v: None), True),
    "different line numbers and source lines": (BASE, variant(set_lines), True),
    "different message with frames": (
        BASE, variant(lambda v: v[0].update(value="page 7 of other.pdf is empty")), True
    ),
    "different absolute paths, same modules": (
        BASE, variant(lambda v: [f.update(abs_path=f"/other/{n}.py")
                                 for n, f in enumerate(frames(v))]), True
    ),
    "different mechanism": (
        BASE, variant(lambda v: v[0].update(mechanism={"type": "excepthook", "handled": False})),
        True,
    ),
    "different exception type": (BASE, variant(lambda v: v[0].update(type="KeyError")), False),
    "different in-app function": (
        BASE, variant(lambda v: frames(v)[2].update(function="read_pages")), False
    ),
    "different in-app module": (
        BASE, variant(lambda v: frames(v)[2].update(module="scanner.ocr2")), False
    ),
    "extra in-app frame": (
        BASE, variant(lambda v: frames(v).append(frame("scanner.ocr", "helper"))), False
    ),
    "non-in-app frame changed": (
        BASE, variant(lambda v: frames(v)[1].update(module="httpx", function="send")), True
    ),
    "non-in-app frames added": (
        BASE, variant(lambda v: frames(v).insert(1, frame("urllib3", "urlopen", in_app=False))),
        True,
    ),
    "non-in-app frame removed": (BASE, variant(lambda v: frames(v).pop(1)), True),
    "no frame in app: library frames count": (
        LIBRARY_ONLY, variant(lambda v: frames(v)[1].update(function="post"), LIBRARY_ONLY),
        False,
    ),
    "no frame in app: line numbers still ignored": (
        LIBRARY_ONLY, variant(set_lines, LIBRARY_ONLY), True
    ),
    "in_app unknown (None) counts as not in app": (
        BASE, variant(lambda v: frames(v)[1].update(in_app=None, function="other")), True
    ),
    "chained cause added": (BASE, variant(add_cause), False),
    "no frames: ids in the message ignored": (
        NO_FRAMES,
        [{"type": "TimeoutError", "value": "timed out after 45 s talking to 10.0.0.9"}],
        True,
    ),
    "no frames: different message": (
        NO_FRAMES, [{"type": "TimeoutError", "value": "connection refused"}], False
    ),
    "no frames: different type": (
        NO_FRAMES, [{"type": "OSError", "value": NO_FRAMES[0]["value"]}], False
    ),
    "filename basename when no module": (
        variant(lambda v: [f.update(module=None, filename=f"/home/a/{n}.py")
                           for n, f in enumerate(frames(v))]),
        variant(lambda v: [f.update(module=None, filename=f"C:\\srv\\{n}.py")
                           for n, f in enumerate(frames(v))]),
        True,
    ),
    "different basename when no module": (
        variant(lambda v: [f.update(module=None) for f in frames(v)]),
        variant(lambda v: [f.update(module=None, filename="other.py") for f in frames(v)]),
        False,
    ),
    "URL query string and host ignored": (
        JS,
        [{**JS[0], "stacktrace": {"frames": [{**frames(JS)[0], "lineno": 99, "colno": 1,
                                               "filename": "https://other/static/app.js?v=9"}]}}],
        True,
    ),
}


@pytest.mark.parametrize(("left", "right", "same"), EXCEPTION_PAIRS.values(),
                         ids=EXCEPTION_PAIRS.keys())
def test_exception_grouping(left: list[Exception_], right: list[Exception_], same: bool) -> None:
    first, second = same_exceptions(left, right)
    assert (first == second) is same
    assert re.fullmatch(r"[0-9a-f]{32}", first)


def test_exceptions_win_over_the_message() -> None:
    assert default_fingerprint(BASE, "one message", None) \
        == default_fingerprint(BASE, "another message", None)
    assert default_fingerprint(BASE, "one message", None) \
        != default_fingerprint([], "one message", None)


MESSAGE_PAIRS: dict[str, tuple[str, str, bool]] = {
    "numbers": ("failed page %d of 12 pages", "failed page %d of 13 pages", True),
    "UUIDs": ("job 550e8400-e29b-41d4-a716-446655440000 stuck",
              "job 6ba7b810-9dad-11d1-80b4-00c04fd430c8 stuck", True),
    "undashed UUIDs": ("job 550e8400e29b41d4a716446655440000 stuck",
                       "job 6ba7b8109dad11d180b400c04fd430c8 stuck", True),
    "hex": ("object at 0x7f3a2c1d", "object at 0x55aa01", True),
    "hashes": ("commit 3f786850e387550fdab836ed7e6dc881de23001b missing",
               "commit 89e6c98d92887913cadf06b2adb97f26cde4849b missing", True),
    "IPv4": ("cannot reach 10.0.0.1:5432", "cannot reach 192.168.10.20:6543", True),
    "IPv6": ("cannot reach 2001:db8:0:0:0:0:2:1", "cannot reach fe80:0:0:0:202:b3ff:fe1e:8329",
             True),
    "e-mails": ("no user bob@example.com", "no user alice.smith+scan@mail.example.org", True),
    "URLs": ("GET https://api.example.com/v1/pages?id=5 failed",
             "GET http://localhost:8080/other failed", True),
    "dates": ("batch 2024-05-01 late", "batch 2025-12-31 late", True),
    "timestamps": ("at 2024-05-01T10:00:00Z", "at 2024-05-02 11:30:15.123+02:00", True),
    "times": ("retry at 10:00:00", "retry at 23:59:59", True),
    "whitespace": ("disk  full\n", "disk full", True),
    "different words": ("disk full", "disk missing", False),
    "different wording around numbers": ("%d pages failed", "%d pages passed", False),
}


@pytest.mark.parametrize(("left", "right", "same"), MESSAGE_PAIRS.values(),
                         ids=MESSAGE_PAIRS.keys())
def test_message_grouping(left: str, right: str, same: bool) -> None:
    first = default_fingerprint([], left, "scanner")
    second = default_fingerprint([], right, "scanner")
    assert (first == second) is same


def test_empty_event_groups_by_logger() -> None:
    assert default_fingerprint([], None, "a") == default_fingerprint([], "", "a")
    assert default_fingerprint([], None, "a") != default_fingerprint([], None, "b")


NORMALIZED = {
    "user 42 failed": "user <num> failed",
    "ratio 3.14 too high": "ratio <num> too high",
    "id 550e8400-e29b-41d4-a716-446655440000": "id <uuid>",
    "id 550E8400E29B41D4A716446655440000": "id <uuid>",
    "addr 0xDEADBEEF": "addr <hex>",
    "sha 3f786850e387": "sha <hex>",
    "word deadbeefcafe stays": "word deadbeefcafe stays",  # hex letters but no digit: a word
    "from 192.168.1.20:8080": "from <ip>",
    "from 2001:db8:0:0:0:0:2:1": "from <ip>",
    "mail bob.smith+x@example.co.uk": "mail <email>",
    "GET https://api.example.com/v1/users?id=5 failed": "GET <url> failed",
    "see s3://bucket/key.pdf": "see <url>",
    "at 2024-05-01T10:00:00.123Z": "at <date>",
    "on 2024-05-01": "on <date>",
    "at 10:00:00": "at <time>",
    "  many   spaces\n\tand tabs ": "many spaces and tabs",
    "": "",
    "no variable parts": "no variable parts",
}


@pytest.mark.parametrize(("text", "expected"), NORMALIZED.items(), ids=NORMALIZED.keys())
def test_normalize_message(text: str, expected: str) -> None:
    assert normalize_message(text) == expected


@pytest.mark.parametrize("unit", ["a", "a.", "1.", "a@", "-", "a1", "1:", "x://"])
def test_normalize_message_is_linear(unit: str) -> None:
    # 200 kB of a repeated unit: each pattern must scan it once (quadratic scans took minutes).
    text = unit * (200_000 // len(unit))
    started = time.perf_counter()
    normalize_message(text)
    assert time.perf_counter() - started < 2.0


# --- custom fingerprints -------------------------------------------------------------------

VARIABLES: dict[str, str | None] = {"type": "ValueError", "logger": "scanner", "transaction": None,
                                    "function": "read_page", "level": "error"}
DEFAULT = default_fingerprint(BASE, None, "scanner")
OTHER = variant(lambda v: v[0].update(type="KeyError"))


def test_custom_fingerprint_wins() -> None:
    custom = fingerprint(["ocr-failures"], BASE, None, VARIABLES)
    assert custom != DEFAULT
    assert custom == fingerprint(["ocr-failures"], OTHER, "other", VARIABLES)
    assert custom != fingerprint(["ocr-failures", "page"], BASE, None, VARIABLES)


@pytest.mark.parametrize("custom", [["{{ default }}"], ["{{default}}"], ["{{  default  }}"]])
def test_default_alone_is_the_default(custom: list[str]) -> None:
    assert fingerprint(custom, BASE, None, VARIABLES) == DEFAULT


def test_default_plus_a_value_differs_but_is_stable() -> None:
    extended = fingerprint(["{{ default }}", "x"], BASE, None, VARIABLES)
    assert extended != DEFAULT
    assert extended == fingerprint(["{{ default }}", "x"], variant(set_lines), None, VARIABLES)
    assert extended != fingerprint(["{{ default }}", "y"], BASE, None, VARIABLES)
    assert extended != fingerprint(["{{ default }}", "x"], OTHER, None, VARIABLES)


def test_variables_expand() -> None:
    by_type = fingerprint(["{{ type }}"], BASE, None, VARIABLES)
    assert by_type == fingerprint(["{{ type }}"], OTHER, None, VARIABLES)
    assert by_type != fingerprint(["{{ type }}"], BASE, None, {**VARIABLES, "type": "KeyError"})
    assert by_type == fingerprint(["ValueError"], BASE, None, VARIABLES)
    # A missing variable expands to a stable placeholder.
    assert fingerprint(["{{ transaction }}"], BASE, None, VARIABLES) \
        == fingerprint(["<no transaction>"], OTHER, None, {})


@pytest.mark.parametrize("custom", [None, [], "ocr-failures", {"a": 1}, 7])
def test_not_a_list_means_default(custom: object) -> None:
    assert fingerprint(custom, BASE, None, VARIABLES) == DEFAULT


def test_version_1_hashes_are_pinned() -> None:
    # A shipped grouping version is never edited in place: if these change, existing bugs would
    # stop matching their new events, so the change needs a new GROUPING_VERSION instead.
    assert GROUPING_VERSION == 1
    assert default_fingerprint([], "disk full", None) == "0b93482d711e1421676f7ce3e8275f15"
    assert default_fingerprint([], None, "scanner") == "f51c79cedc4a7b9a5959d38ab4e554ac"
    assert DEFAULT == "dae068bb69215c3a94d258f0b956fd46"
