"""The projection (msgspec reading only the used parts of an event, ``projection._projected``)
against the general path (orjson, then ``_used_parts``), both inside ``projection.read``: whenever
the projection takes an event, the row is the same, its
context the same JSON (in the same order; a breadcrumbs list may keep its spacing); real SDK
events all take it; what it cannot read the same way is left to the general path, which accepts or
refuses it as before."""

from __future__ import annotations

import dataclasses
import json
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.corpus import generate, read_corpus
from shim.core import projection
from shim.core.envelope import parse_envelope
from shim.core.errors import ShimError
from shim.core.event import normalize_event
from shim.core.items import Limits, ingest_envelope
from shim.core.records import ErrorLog
from shim.core.scrub import Scrubber

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SCRUBBER = Scrubber()


def _row(outcome: ErrorLog, random_id: bool) -> tuple[object, ...]:
    """Everything of a row but its random ids, with the context as the JSON that is stored, read
    and written again: a breadcrumbs list kept as text keeps the spacing it was sent with. An
    event grouped by nothing but its (made up) id has a random fingerprint too."""
    context = orjson.loads(outcome.context)
    fingerprint = outcome.fingerprint
    if random_id and outcome.event_id in orjson.dumps(context["_grouping"]).decode():
        fingerprint = context["_grouping"] = ""
    fixed = dataclasses.replace(outcome, id="", context=b"", fingerprint=fingerprint,
                                event_id="" if random_id else outcome.event_id)
    return (*dataclasses.astuple(fixed), orjson.dumps(context))


def general(payload: bytes, event_id: str | None = None) -> tuple[object, ...] | str:
    try:
        row = normalize_event(orjson.loads(payload), event_id=event_id, project_id="1",
                              received=RECEIVED, bug_level="warning", scrubber=SCRUBBER)
    except (orjson.JSONDecodeError, ShimError) as exc:
        return type(exc).__name__
    return _row(row, random_id=_random_id(payload, event_id))


def _random_id(payload: bytes, event_id: str | None) -> bool:
    """Whether the row's event id was made up (neither the envelope nor the event has one)."""
    event = json.loads(payload)  # the standard library's reads 1e999 too
    return event_id is None and not (isinstance(event, dict) and event.get("event_id"))


def projected(payload: bytes, event_id: str | None = None) -> tuple[object, ...] | str | None:
    """The row made from the payload's text, or None when the projection does not take it."""
    if projection._projected(payload, SCRUBBER) is None:
        return None
    try:
        row = normalize_event(payload, event_id=event_id, project_id="1", received=RECEIVED,
                              bug_level="warning", scrubber=SCRUBBER)
    except ShimError as exc:
        return type(exc).__name__
    return _row(row, random_id=_random_id(payload, event_id))


def assert_same(payload: bytes, event_id: str | None = None) -> bool:
    """The projection's row equals the general path's; True when the projection took it."""
    fast = projected(payload, event_id)
    if fast is not None:
        assert fast == general(payload, event_id)
    return fast is not None


# Events shaped like SDKs send them, with every part also allowed to be odd.
_json_leaf = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
              | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
_json = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
_words = st.sampled_from(["password", "token", "Bearer abcdefghijkl", "4111 1111 1111 1111",
                          "api_key=s3cr3t", "x", "", "ok", "sessionid", "42", "İ", "é",
                          "\U0001F600", "card_number", "logger.name"]) | st.text(max_size=10)
_frame = st.fixed_dictionaries({}, optional={
    "filename": _words, "abs_path": _words, "module": _words | st.none(),
    "function": _words | st.none(), "lineno": st.integers(0, 10**6) | st.none() | _json,
    "in_app": st.booleans() | st.none(), "context_line": _words | st.none(),
    "vars": st.dictionaries(_words, _json, max_size=3), "pre_context": st.lists(_words),
    "post_context": st.lists(_words), "colno": st.integers(0, 99)})
_frames = st.lists(_frame, max_size=4) | st.lists(_frame | _json, max_size=3)
_stacktrace = st.fixed_dictionaries({"frames": _frames}) | _json
_mechanism = st.fixed_dictionaries({}, optional={
    "type": _words, "handled": st.booleans(), "source": st.sampled_from(
        ["__cause__", "__context__", "cause", "exceptions[0]", "exceptions[1]"]),
    "exception_id": st.integers(0, 3), "parent_id": st.integers(0, 3) | st.none(),
    "is_exception_group": st.booleans()}) | _json
_value = st.fixed_dictionaries({}, optional={
    "type": _words | st.none() | _json, "value": _words | st.none(), "module": _words | st.none(),
    "mechanism": _mechanism, "stacktrace": _stacktrace, "thread_id": st.integers(0, 9)})
_values = st.lists(_value, max_size=3)
_exception = (st.fixed_dictionaries({"values": _values}) | _values | _value | st.none() | _json)
_event = st.fixed_dictionaries({}, optional={
    "event_id": st.uuids().map(lambda u: u.hex) | _words,
    "level": st.sampled_from(["fatal", "error", "warning", "info", "debug", "critical", "bogus"])
    | st.integers(0, 60) | _json,
    "exception": _exception, "threads": _exception, "stacktrace": _stacktrace,
    "message": _words | st.fixed_dictionaries({"message": _words}) | _json,
    "logentry": st.fixed_dictionaries({}, optional={
        "message": _words | st.just("user %s failed %d times"), "formatted": _words,
        "params": st.lists(_json, max_size=3) | _json}) | _json,
    "logger": _words | st.none(), "platform": st.just("python") | _json,
    "tags": st.dictionaries(st.sampled_from(["component", "workspace_id", "request_id", "x"]),
                            _words | _json, max_size=3)
    | st.lists(st.tuples(_words, _words | _json), max_size=3) | _json,
    "extra": st.dictionaries(_words, _json, max_size=3) | _json,
    "contexts": st.fixed_dictionaries({}, optional={"trace": st.fixed_dictionaries(
        {}, optional={"trace_id": st.uuids().map(lambda u: u.hex) | _json})}) | _json,
    "request": st.fixed_dictionaries({}, optional={
        "url": _words, "headers": st.dictionaries(
            st.sampled_from(["Authorization", "Cookie", "Accept", "X-Token"]), _words)}) | _json,
    "user": _json, "breadcrumbs": st.fixed_dictionaries({"values": st.lists(
        st.fixed_dictionaries({"message": _words, "data": _json}), max_size=3)}) | _json,
    "fingerprint": st.lists(st.sampled_from(["{{ default }}", "{{ type }}", "db", "x"]),
                            max_size=3) | _json,
    "timestamp": st.floats(0, 2e9) | st.sampled_from(["2026-11-28T12:00:00Z", "bogus"]) | _json,
    "release": _words | _json, "environment": _words | _json, "server_name": _words | _json,
    "transaction": _words | _json, "dist": _words | _json, "sdk": _json,
    "modules": st.dictionaries(st.text(string.ascii_lowercase, max_size=6), _words),
    "sentry.interfaces.Message": st.fixed_dictionaries({"message": _words}),
    "spans": _json, "debug_meta": _json})


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(event=_event, ascii_only=st.booleans(), pretty=st.booleans(),
       header_id=st.none() | st.just("0123456789abcdef0123456789abcdef"))
def test_the_projection_gives_the_general_path_s_row(event: dict[str, Any], ascii_only: bool,
                                                     pretty: bool, header_id: str | None) -> None:
    payload = json.dumps(event, ensure_ascii=ascii_only, indent=1 if pretty else None).encode()
    assert_same(payload, header_id)


# The same parts in the shapes current SDKs send, so that almost every example takes the
# projection and is compared (the strategy above mostly exercises the way to the general path).
_well_formed_value = st.fixed_dictionaries(
    {"type": _words, "value": _words, "stacktrace": st.fixed_dictionaries(
        {"frames": st.lists(_frame, max_size=5)})},
    optional={"module": _words | st.none(), "mechanism": _mechanism})
_well_formed = st.fixed_dictionaries(
    {"event_id": st.uuids().map(lambda u: u.hex),
     "level": st.sampled_from(["fatal", "error", "warning", "info", "debug"]),
     "timestamp": st.floats(0, 2e9)},
    optional={
        "exception": st.fixed_dictionaries({"values": st.lists(_well_formed_value, max_size=3)}),
        "logentry": st.fixed_dictionaries({"message": _words, "params": st.lists(_json_leaf)}),
        "logger": _words, "tags": st.dictionaries(_words, _words, max_size=4),
        "extra": st.dictionaries(_words, _json, max_size=4),
        "breadcrumbs": st.fixed_dictionaries({"values": st.lists(st.fixed_dictionaries(
            {"message": _words, "category": _words, "data": _json}), max_size=4)}),
        "contexts": st.fixed_dictionaries({"trace": st.fixed_dictionaries(
            {"trace_id": st.uuids().map(lambda u: u.hex)})}),
        "modules": st.dictionaries(st.text(string.ascii_lowercase, max_size=6), _words),
        "fingerprint": st.lists(st.sampled_from(["{{ default }}", "{{ type }}", "db"]),
                                min_size=1, max_size=3),
        "threads": st.fixed_dictionaries({"values": st.lists(_well_formed_value, max_size=2)}),
    })


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(event=_well_formed, ascii_only=st.booleans())
def test_well_formed_events_take_the_projection_with_the_same_row(event: dict[str, Any],
                                                                   ascii_only: bool) -> None:
    payload = json.dumps(event, ensure_ascii=ascii_only).encode()
    taken = assert_same(payload)
    # Only integers past 64 bits (orjson reads them as floats) send such an event elsewhere.
    assert taken or _has_wide_integer(event)


def _has_wide_integer(value: object) -> bool:
    if isinstance(value, dict):
        return any(_has_wide_integer(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_wide_integer(v) for v in value)
    return (isinstance(value, int) and not isinstance(value, bool)
            and not -2**63 <= value < 2**64)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=64) | _json.map(lambda v: json.dumps(v).encode()))
def test_on_any_payload_the_projection_never_disagrees(payload: bytes) -> None:
    assert_same(payload)


@pytest.fixture(scope="module")
def sdk_payloads(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Event items of envelopes written by the real SDK (bench's corpus generator)."""
    out = tmp_path_factory.mktemp("corpus")
    generate(out, envelopes=80, seed=7)
    _, bodies = read_corpus(out, "identity")
    return [item.payload for body in bodies for item in parse_envelope(body.data).items
            if item.type == "event"]


def test_every_real_sdk_event_takes_the_projection_and_gives_the_same_row(
        sdk_payloads: list[bytes]) -> None:
    assert len(sdk_payloads) > 50
    assert all(assert_same(payload) for payload in sdk_payloads)


@pytest.mark.parametrize(("payload", "taken"), [
    # Old clients' interface names are mapped by the general path.
    (b'{"sentry.interfaces.Message": {"message": "old"}, "level": "error"}', False),
    # An unpaired surrogate anywhere (even in frame variables) is refused, as orjson refuses it.
    (b'{"message": "m", "extra": {"a": "\\ud800"}}', False),
    (b'{"message": "m", "modules": {"a": "\\udfff"}}', False),
    # A paired one (an emoji) is fine.
    (b'{"message": "\\ud83d\\ude00", "modules": {"a": "\\ud83d\\ude00"}}', True),
    # Integers past 64 bits: orjson reads them as floats.
    (b'{"message": "m", "extra": {"n": 123456789012345678901234567890}}', False),
    # In a part that is skipped, an integer past 64 bits is accepted either way...
    (b'{"message": "m", "modules": {"a": 123456789012345678901234567890}}', True),
    # ... and invalid UTF-8 is refused all the same.
    (b'{"message": "m", "modules": {"a": "\xff"}}', False),
    # Shapes the projection does not read: a frame that is not an object, a string exception.
    (b'{"exception": {"values": [{"type": "E", "stacktrace": {"frames": [null]}}]}}', False),
    (b'{"exception": "E: boom"}', False),
    (b'[1, 2]', False),
    (b'{"message": "m", "extra": {"a": 1}', False),  # truncated
    # Nesting past msgspec's depth (Python's recursion limit; orjson's is 1024).
    (b'{"message": "m", "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}", False),
    (b'{"message": "m", "modules": ' + b"[" * 5000 + b"]" * 5000 + b"}", False),
    # A raw control character, even inside breadcrumbs kept as text, is refused as orjson
    # refuses it; an escaped one (\u0000) is read and written again (Postgres strips NULs).
    (b'{"message": "m", "breadcrumbs": {"values": [{"message": "a\x00b"}]}}', False),
    (b'{"message": "m", "breadcrumbs": {"values": [{"message": "a\\u0000b"}]}}', True),
    # The common shapes are taken.
    (b'{"message": "caf\\u00e9", "extra": {"n": 12345678901234567890}}', True),
    (b'{"message": "caf\\u00e9", "extra": {"n": -1234567890123456789}}', True),
    (b'{"exception": [{"type": "E", "value": "v"}], "level": 40}', True),
    (b'{"exception": {"type": "E", "value": "lone"}}', True),
    ('{"message": "é", "extra": {"password": "hunter2"}}'.encode(), True),
])
def test_what_the_projection_leaves_to_the_general_path(payload: bytes, taken: bool) -> None:
    assert assert_same(payload) is taken
    if not taken:
        assert projection._projected(payload, SCRUBBER) is None


def test_a_number_past_a_double_in_a_skipped_part_is_taken_though_orjson_refuses_it() -> None:
    """The one difference kept: ``1e999`` is valid JSON that orjson cannot read. Where the row
    would hold it (a used part), the event is refused as before."""
    skipped = b'{"message": "m", "modules": {"a": 1e999}}'
    assert general(skipped) == "JSONDecodeError"
    assert projected(skipped) == general(b'{"message": "m"}')
    used = b'{"message": "m", "extra": {"a": 1e999}}'
    assert projection._projected(used, SCRUBBER) is None
    assert general(used) == "JSONDecodeError"


def test_ingest_stores_the_same_rows_with_and_without_the_projection(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    generate(tmp_path, envelopes=40, seed=11)
    _, bodies = read_corpus(tmp_path, "identity")
    envelopes = [parse_envelope(body.data) for body in bodies]
    limits = Limits(bug_level="warning", max_event_bytes=1 << 20, scrubber=SCRUBBER)

    def rows() -> list[tuple[object, ...]]:
        return [_row(row, random_id=False) for envelope in envelopes
                for row in ingest_envelope(envelope, "1", RECEIVED, limits).batch.error_logs]

    fast = rows()
    monkeypatch.setattr(projection, "_projected", lambda payload, scrubber: None)
    assert rows() == fast
    assert any(row[-1] for row in fast)  # the rows are not empty


def _context_json(payload: bytes) -> bytes:
    assert projection._projected(payload, SCRUBBER) is not None
    return normalize_event(payload, event_id=None, project_id="1", received=RECEIVED,
                           bug_level="warning", scrubber=SCRUBBER).context


def _with_breadcrumbs(text: bytes) -> bytes:
    return b'{"message": "m", "tags": {"a": "b"}, "breadcrumbs": {"values": ' + text + b"}}"


def test_a_breadcrumbs_list_is_stored_as_the_text_it_arrived_as() -> None:
    text = (b'[ {"message": "fetched page 3 of /srv/scans/1.pdf", "category": "scan",'
            b' "data": {"bytes": 1e5, "etag": "3e735a", "n": [1, 2.50]}} ]')
    payload = _with_breadcrumbs(text)
    assert text in _context_json(payload)  # not decoded and written again
    assert assert_same(payload)  # the same row as the general path, once read


@pytest.mark.parametrize(("text", "secret"), [
    (b'[{"data": {"password": "hunter2"}}]', b"hunter2"),
    (b'[{"data": {"\\u0070assword": "hunter2"}}]', b"hunter2"),  # an escape spelling a key word
    (b'[{"message": "GET /x Authorization: Bearer abcdefghijklmnop"}]', b"abcdefghijklmnop"),
    (b'[{"message": "paid with 4111 1111 1111 1111"}]', b"4111 1111 1111 1111"),
    (b'[{"message": "caf\\u00e9", "data": {"token": "t0k3n-value"}}]', b"t0k3n-value"),
])
def test_breadcrumbs_that_could_hold_a_secret_are_decoded_and_scrubbed(text: bytes,
                                                                        secret: bytes) -> None:
    payload = _with_breadcrumbs(text)
    stored = _context_json(payload)
    assert secret not in stored
    assert b"[Filtered]" in stored
    assert assert_same(payload)


def test_breadcrumbs_over_several_lines_are_written_on_one() -> None:
    """The backup log holds one row per line."""
    payload = _with_breadcrumbs(b'[\n  {"message": "a"},\r\n  {"message": "b"}\n]')
    stored = _context_json(payload)
    assert b"\n" not in stored and b"\r" not in stored
    assert orjson.loads(stored)["breadcrumbs"] == [{"message": "a"}, {"message": "b"}]
    assert assert_same(payload)


def test_a_number_past_a_double_in_the_breadcrumbs_is_refused_as_before() -> None:
    """Kept as text, ``1e999`` would reach the backup log, which orjson could not read back."""
    for number in (b"1e999", b"-2.5E+400", b"1e0309"):
        payload = _with_breadcrumbs(b'[{"data": {"n": ' + number + b"}}]")
        assert projection._projected(payload, SCRUBBER) is None
        assert general(payload) == "JSONDecodeError"
    # The same characters in a string are just text.
    assert b"1e999" in _context_json(_with_breadcrumbs(b'[{"message": "1e999 x"}]'))


@pytest.mark.parametrize("values", [b"null", b"{}", b'"text"', b"[]", b"7"])
def test_breadcrumbs_values_that_are_not_a_list_are_read_as_before(values: bytes) -> None:
    assert assert_same(_with_breadcrumbs(values))
