"""Oversized events trimmed to fit (``shim.core.trim``): each step, their order, the ``_trimmed``
record, that the result always fits (or is refused when not even its core can), and that the
fingerprint is the untrimmed event's."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as statistic
from hypothesis import strategies as st
from sentry_sdk import envelope as sdk_envelope

from shim.core import trim
from shim.core.body import decoder_for
from shim.core.envelope import Envelope, parse_envelope
from shim.core.errors import InvalidEvent, PayloadTooLarge
from shim.core.event import normalize_event
from shim.core.items import Limits, ingest_envelope, ingest_store
from shim.core.scrub import Scrubber

RECEIVED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MB = 1 << 20
FIXTURES = Path(__file__).parent / "fixtures" / "envelopes"
STEP_NAMES = [name for name, _ in trim.STEPS]


def frame(index: int, **extra: Any) -> dict[str, Any]:
    return {"filename": f"app/m{index}.py", "abs_path": f"/srv/app/m{index}.py",
            "module": f"app.m{index}", "function": f"f{index}", "lineno": 10 + index,
            "in_app": True, "context_line": f"    step_{index}()", **extra}


def event(*, frames: int = 4, frame_extra: dict[str, Any] | None = None, **parts: Any
          ) -> dict[str, Any]:
    """A Python-SDK-shaped fatal exception event with only the parts a row reads, plus
    ``parts``."""
    return {
        "event_id": "0123456789abcdef0123456789abcdef",
        "timestamp": "2026-11-29T11:59:58.000001Z",
        "level": "fatal",
        "platform": "python",
        "logger": "scanner",
        "tags": {"component": "ocr", "workspace_id": "ws-1"},
        "contexts": {"trace": {"trace_id": "ab" * 16, "span_id": "cd" * 8}},
        "exception": {"values": [{
            "type": "ValueError", "value": "page 3 has no layout", "module": None,
            "mechanism": {"type": "excepthook", "handled": False},
            "stacktrace": {"frames": [frame(i, **(frame_extra or {})) for i in range(frames)]},
        }]},
        **parts,
    }


def crumbs(count: int, size: int) -> dict[str, Any]:
    return {"values": [{"category": "step", "message": f"crumb {i} " + "c" * size,
                        "timestamp": 1795874000 + i} for i in range(count)]}


def trimmed(raw: dict[str, Any], max_bytes: int = MB) -> trim.Trimmed:
    payload = orjson.dumps(raw)
    return trim.trim(orjson.loads(payload), max_bytes, len(payload))


def row_of(raw: dict[str, Any], max_bytes: int = MB, with_v1: bool = False,
           event_id: str | None = None) -> Any:
    payload = orjson.dumps(raw)
    row, cut = trim.oversized_row(orjson.loads(payload), len(payload), max_bytes=max_bytes,
                                  event_id=event_id, project_id="1", received=RECEIVED,
                                  bug_level="critical", with_v1=with_v1)
    assert cut == ("_trimmed" in row.context_object())
    return row


def full_row(raw: dict[str, Any], with_v1: bool = False, event_id: str | None = None) -> Any:
    return normalize_event(copy.deepcopy(raw), event_id=event_id, project_id="1", received=RECEIVED,
                           bug_level="critical", with_v1=with_v1)


def frames_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = result["exception"]["values"][-1]["stacktrace"]["frames"]
    return frames


# -- each step, alone: the event is over the cap by one part, and only that part goes ----

def _no_vars(result: dict[str, Any]) -> None:
    assert all("vars" not in f for f in frames_of(result))
    assert len(frames_of(result)) == 4 and frames_of(result)[0]["context_line"] == "    step_0()"


def _unread_gone(result: dict[str, Any]) -> None:
    assert "modules" not in result and "debug_meta" not in result
    assert all("pre_context" not in f and "vars" in f for f in frames_of(result))


def _recent_crumbs(result: dict[str, Any]) -> None:
    kept = result["breadcrumbs"]["values"]
    assert [c["message"].split()[1] for c in kept] == [str(i) for i in range(190, 200)]


def _no_request_body(result: dict[str, Any]) -> None:
    assert result["request"] == {"url": "https://example.test/upload", "method": "POST"}


def _no_extra(result: dict[str, Any]) -> None:
    assert "extra" not in result and result["contexts"]["os"] == {"name": "Linux"}


def _trace_ids_only(result: dict[str, Any]) -> None:
    assert result["contexts"] == {"trace": {"trace_id": "ab" * 16, "span_id": "cd" * 8}}


def _message_cut(result: dict[str, Any]) -> None:
    message = result["message"]
    assert message.startswith("Export failed: mmm") and message.endswith(trim.ELLIPSIS)
    assert 900_000 < len(message) < MB
    assert result["exception"]["values"][0]["value"] == "page 3 has no layout"  # short: kept


def _middle_frames_gone(result: dict[str, Any]) -> None:
    frames = frames_of(result)
    assert frames[0]["function"] == "f0" and frames[-1]["function"] == "f29999"
    assert len(frames) < 30_000 and len(frames) % 2 == 0
    half = len(frames) // 2
    assert frames[half - 1]["function"] == f"f{half - 1}"
    assert frames[half]["function"] == f"f{30_000 - half}"


def _core_only(result: dict[str, Any]) -> None:
    assert result["tags"] == {"component": "ocr", "workspace_id": "ws-1"}
    assert result["exception"]["values"][0]["type"] == "ValueError"
    assert result["exception"]["values"][0]["mechanism"]["handled"] is False
    assert "user" not in result


STEP_CASES: list[tuple[str, dict[str, Any], list[str], Any]] = [
    ("unread", event(modules={f"package{i}": "1.0.0" for i in range(60_000)},
                     frame_extra={"pre_context": ["x" * 100] * 5, "vars": {"n": "1"}}),
     ["unread"], _unread_gone),
    ("vars", event(frame_extra={"vars": {"blob": "'" + "v" * 400_000 + "'"}}),
     ["vars"], _no_vars),
    ("breadcrumbs", event(breadcrumbs=crumbs(200, 8000)), ["breadcrumbs"], _recent_crumbs),
    ("request.data", event(request={"url": "https://example.test/upload", "method": "POST",
                                    "data": {"file": "d" * 2 * MB}}),
     ["request.data"], _no_request_body),
    ("extra", event(extra={"rows": ["r" * 1000] * 2000},
                    contexts={"trace": {"trace_id": "ab" * 16, "span_id": "cd" * 8},
                              "os": {"name": "Linux"}}),
     ["extra"], _no_extra),
    ("contexts", event(contexts={"trace": {"trace_id": "ab" * 16, "span_id": "cd" * 8,
                                           "data": {"sql": "q" * 2 * MB}},
                                 "os": {"name": "Linux"}}),
     ["contexts"], _trace_ids_only),
    ("strings", event(message="Export failed: " + "m" * 5 * MB), ["strings"], _message_cut),
    ("frames", event(frames=30_000), ["frames"], _middle_frames_gone),
    ("core", event(user={f"attribute{i}": i for i in range(200_000)}), ["core"], _core_only),
]


@pytest.mark.parametrize(("name", "raw", "steps", "check"), STEP_CASES,
                         ids=[case[0] for case in STEP_CASES])
def test_each_step_cuts_only_what_it_names(name: str, raw: dict[str, Any], steps: list[str],
                                           check: Any) -> None:
    assert len(orjson.dumps(raw)) > MB
    result = trimmed(raw)
    assert [s["cut"] for s in result.steps] == steps
    assert result.stored_bytes <= MB
    assert result.stored_bytes == len(orjson.dumps(result.event))
    check(result.event)


def test_steps_run_in_order_and_only_until_the_event_fits() -> None:
    everything = event(
        frames=30_000, frame_extra={"vars": {"blob": "v" * 100}, "pre_context": ["p" * 50]},
        modules={f"package{i}": "1.0.0" for i in range(1000)},
        breadcrumbs=crumbs(100, 1000), request={"url": "/", "data": "d" * 100_000},
        extra={"e": "e" * 100_000}, message="m" * 300_000,
        user={f"attribute{i}": i for i in range(200_000)},
    )
    everything["contexts"]["app"] = {"a": "a" * 100_000}
    every_step = trimmed(everything)
    assert [s["cut"] for s in every_step.steps] == STEP_NAMES
    # The same event with a cap it reaches after three steps: the later parts are untouched.
    after_three = every_step.measured_bytes - sum(s["bytes"] for s in every_step.steps[:3])
    result = trimmed(everything, max_bytes=after_three)
    assert [s["cut"] for s in result.steps] == ["unread", "vars", "breadcrumbs"]
    assert result.event["extra"] == {"e": "e" * 100_000}
    assert len(frames_of(result.event)) == 30_000


def test_an_event_under_the_cap_once_written_compactly_is_not_cut() -> None:
    raw = event(extra={"e": "e" * 1000})
    spaced = json.dumps(raw, indent=4).encode()  # what a client writing with spaces sends
    result = trim.trim(orjson.loads(spaced), len(orjson.dumps(raw)), len(spaced))
    assert result.steps == [] and result.event == raw


def test_the_record_says_what_was_cut_and_the_sizes() -> None:
    raw = event(frame_extra={"vars": {"blob": "v" * 300_000}}, breadcrumbs=crumbs(60, 20_000))
    result = trimmed(raw)
    sent = len(orjson.dumps(raw))
    assert result.record == {
        "received_bytes": sent, "max_bytes": MB, "stored_bytes": result.stored_bytes,
        "steps": [{"cut": "vars", "bytes": result.steps[0]["bytes"]},
                  {"cut": "breadcrumbs", "bytes": result.steps[1]["bytes"], "removed": 50}],
    }
    # Each step's bytes are exactly what it saved: they add up to the difference.
    assert sum(s["bytes"] for s in result.steps) == result.measured_bytes - result.stored_bytes
    assert result.measured_bytes == sent


def test_the_row_carries_the_record_and_answers_for_the_event() -> None:
    raw = event(frame_extra={"vars": {"blob": "v" * 600_000}}, breadcrumbs=crumbs(30, 1000))
    row = row_of(raw)
    whole = full_row(raw)
    assert row.context_object()["_trimmed"]["steps"][0]["cut"] == "vars"
    assert row.context_object()["_trimmed"]["received_bytes"] == len(orjson.dumps(raw))
    assert len(row.context_object()["breadcrumbs"]) == 30  # vars were enough
    for column in ("event_id", "log_level", "component", "message", "error_type", "error_message",
                   "stack_trace", "request_id", "workspace_id", "fingerprint", "created_at"):
        assert getattr(row, column) == getattr(whole, column), column
    assert row.bug == whole.bug


# -- always fits, and ends: shapes no step but the last can shrink, and caps down to a few KB ----

HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("50 MB message", event(message="x" * 50 * MB)),
    ("5 MB exception type", event(exception={"values": [{"type": "E" * 5 * MB, "value": "v"}]})),
    ("5 MB key", event(tags={"k" * 5 * MB: "v", "component": "ocr"})),
    ("100k tags", event(tags=[[f"t{i}", "v"] for i in range(100_000)])),
    ("20k short strings", event(user={"names": ["n" * 200] * 20_000})),
    ("5000 chained exceptions", event(exception={"values": [
        {"type": f"E{i}", "value": "v", "stacktrace": {"frames": [frame(0), frame(1)]}}
        for i in range(5000)]})),
    ("200k fingerprint parts", event(fingerprint=["part"] * 200_000)),
    ("200 levels of nesting", event(extra={"deep": json.loads("[" * 200 + "1" + "]" * 200)},
                                    user={"blob": "u" * 2 * MB})),
    ("many threads", event(threads={"values": [{"stacktrace": {"frames": [frame(i)] * 30}}
                                               for i in range(500)]})),
    ("legacy names", {"sentry.interfaces.Message": {"message": "m" * 3 * MB},
                      "sentry.interfaces.Exception": {"values": [{"type": "OSError"}]},
                      "level": "fatal"}),
]


@pytest.mark.parametrize("max_bytes", [MB, 4096])
@pytest.mark.parametrize(("name", "raw"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_any_event_fits_any_cap_of_a_few_kb(name: str, raw: dict[str, Any],
                                            max_bytes: int) -> None:
    row = row_of(raw, max_bytes)
    record = row.context_object()["_trimmed"]
    assert record["stored_bytes"] <= max_bytes
    assert [s["cut"] for s in record["steps"]] == sorted(
        (s["cut"] for s in record["steps"]), key=STEP_NAMES.index)
    assert row.fingerprint == full_row(raw).fingerprint


def test_a_cap_smaller_than_the_core_is_refused() -> None:
    with pytest.raises(PayloadTooLarge) as raised:
        trimmed(event(message="m" * 10_000), max_bytes=300)
    assert raised.value.status == 413
    assert "once trimmed; the limit is 300" in raised.value.detail


def test_nesting_deeper_than_json_is_written_is_invalid_not_a_crash() -> None:
    deep = event(extra={"deep": json.loads("[" * 300 + "1" + "]" * 300)})
    with pytest.raises(InvalidEvent):
        trim.trim(deep, 1000, 10**6)


def test_what_is_kept_of_a_cut_string_is_scrubbed_across_the_cut() -> None:
    """A bearer token or card number cut in half would no longer look like one to the row's
    scrubber; the text is scrubbed before the cut."""
    scrubber = Scrubber()
    for secret, leak in (("Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "abc"),
                         ("card 4111 1111 1111 1111 on file", "4111 1111 11")):
        text = "a" * 300 + " " + secret + " " + "z" * 1000
        chars = text.index(leak) + len(leak)
        cut = trim._cut(text, chars, scrubber)
        assert cut.startswith("a" * 300) and cut.endswith(trim.ELLIPSIS)
        assert leak not in cut, cut
        # Cut first, the row's scrubbing would have let the start of the secret through.
        assert leak in scrubber.text(text[:chars] + trim.ELLIPSIS)


# -- the fingerprint is that of the event as it arrived ----

FINGERPRINT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("message template cut", {"level": "fatal", "logger": "export",
                              "logentry": {"message": "Export %s failed: " + "m" * (3 * MB // 2),
                                           "params": ["ws-7"]}}),
    ("plain message cut", {"level": "fatal", "message": "Queue stalled " + "q" * (3 * MB // 2)}),
    ("in-app frames in the middle", event(frames=30_000, frame_extra={"in_app": False}) | {
        "exception": {"values": [{"type": "RecursionError", "stacktrace": {"frames": [
            frame(i, in_app=12_000 <= i < 12_010) for i in range(30_000)]}}]}}),
    ("exception value without frames", event(exception={"values": [
        {"type": "KeyError", "value": "missing " + "k" * (3 * MB // 2)}]})),
    ("custom fingerprint with the message", {
        "level": "fatal", "message": "Job 17 stalled " + "j" * (3 * MB // 2),
        "fingerprint": ["{{ default }}", "{{ message }}"]}),
    ("chain cut to its core", event(exception={"values": [
        {"type": f"E{i}", "value": "v", "stacktrace": {"frames": [frame(i)]}}
        for i in range(5000)]})),
]


@pytest.mark.parametrize(("name", "raw"), FINGERPRINT_CASES, ids=[c[0] for c in FINGERPRINT_CASES])
def test_the_fingerprint_is_the_untrimmed_events(name: str, raw: dict[str, Any]) -> None:
    # Both versions' hashes (during the transition an event carries both): version 2 masks only
    # a message's first 4 kB, so a cut past that leaves its hash alone, but not version 1's.
    whole = full_row(raw, with_v1=True)
    row = row_of(raw, with_v1=True)
    assert row.context_object()["_trimmed"]["steps"]
    assert (row.fingerprint, row.fingerprint_v1) == (whole.fingerprint, whole.fingerprint_v1)
    assert row.context_object()["_grouping"] == whole.context_object()["_grouping"]
    # Grouping the trimmed event as it is would have opened another bug: the test has teeth.
    result = trimmed(raw)
    cut = normalize_event(result.event, event_id=None, project_id="1", received=RECEIVED,
                          bug_level="critical", with_v1=True)
    assert (cut.fingerprint, cut.fingerprint_v1) != (whole.fingerprint, whole.fingerprint_v1)


def _recorded_events() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for body in sorted(FIXTURES.glob("*/*.bin")):
        headers = dict(json.loads(body.with_suffix(".json").read_text())["headers"])
        if "/envelope/" not in json.loads(body.with_suffix(".json").read_text())["path"]:
            continue
        decoder = decoder_for(headers.get("Content-Encoding"))
        data = b"".join([*decoder.feed(body.read_bytes()), *decoder.finish()])
        found += [(f"{body.parent.name}/{body.stem}", orjson.loads(item.payload))
                  for item in parse_envelope(data).items if item.type == "event"]
    return found


RECORDED = _recorded_events()


def test_recorded_sdk_events_are_read() -> None:
    assert len(RECORDED) >= 10


@pytest.mark.parametrize(("name", "raw"), RECORDED, ids=[r[0] for r in RECORDED])
def test_grouping_reads_only_the_grouping_keys(name: str, raw: dict[str, Any]) -> None:
    """What ``oversized_row`` computes the fingerprint from (``GROUPING_KEYS``) groups every
    event real SDKs sent as the whole event does, and cutting an event of theirs to its core
    keeps its fingerprint."""
    view = {k: raw[k] for k in trim.GROUPING_KEYS if k in raw}
    assert full_row(view).fingerprint == full_row(raw).fingerprint
    small = len(orjson.dumps(raw)) // 4
    assert row_of(raw, max(small, 4096)).fingerprint == full_row(raw).fingerprint


# -- through ingest: events trimmed and counted, logs and check-ins over the cap refused ----

LIMITS = Limits(bug_level="critical", max_event_bytes=MB)


def _envelope(*items: tuple[str, bytes]) -> Envelope:
    """Items of these types and payloads, in an envelope as the SDK writes it."""
    return parse_envelope(sdk_envelope.Envelope(headers={}, items=[
        sdk_envelope.Item(payload=sdk_envelope.PayloadRef(bytes=payload), type=kind)
        for kind, payload in items]).serialize())


def test_ingest_stores_an_oversized_event_and_counts_it() -> None:
    raw = event(frame_extra={"vars": {"blob": "v" * 600_000}})
    small = event()
    result = ingest_envelope(_envelope(("event", orjson.dumps(raw)), ("event", orjson.dumps(small))),
                             "1", RECEIVED, LIMITS)
    assert result.problems == [] and result.trimmed == 1
    big_row, small_row = result.batch.error_logs
    steps = big_row.context_object()["_trimmed"]["steps"]
    assert steps == [{"cut": "vars", "bytes": steps[0]["bytes"]}]
    assert "_trimmed" not in small_row.context_object()
    assert big_row.fingerprint == small_row.fingerprint
    assert result.event_id == raw["event_id"]


def test_ingest_store_trims_by_the_size_received() -> None:
    raw = event(extra={"e": "e" * 2 * MB})
    result = ingest_store(copy.deepcopy(raw), "1", RECEIVED, LIMITS, size=len(orjson.dumps(raw)))
    assert result.trimmed == 1
    context = result.batch.error_logs[0].context_object()
    assert [s["cut"] for s in context["_trimmed"]["steps"]] == ["extra"]


@pytest.mark.parametrize(("kind", "payload"), [
    ("log", orjson.dumps({"items": [{"body": "b" * MB, "level": "info"}]})),
    ("check_in", orjson.dumps({"monitor_slug": "nightly", "status": "ok", "x": "x" * MB})),
])
def test_oversized_log_and_check_in_items_are_still_refused(kind: str, payload: bytes) -> None:
    result = ingest_envelope(_envelope((kind, payload)), "1", RECEIVED, LIMITS)
    assert result.status == 413 and result.trimmed == 0
    assert result.batch.error_logs == [] and result.batch.check_ins == []


def test_an_oversized_event_that_is_not_an_object_is_invalid() -> None:
    result = ingest_envelope(_envelope(("event", b"[" + b"1," * MB + b"1]")), "1", RECEIVED,
                             LIMITS)
    assert result.status == 400 and "JSON object" in result.problems[0]["detail"]



# -- any event: fits with exact accounting (or is refused), and groups as it would whole ----

_SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
            | st.text(alphabet="ab\u00e9\u2028\"\\\n", min_size=200, max_size=2000))
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=8)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=8), max_leaves=40)
_FRAME = st.fixed_dictionaries({}, optional={
    **{key: st.text(max_size=300) for key in ("module", "function", "filename",
                                               "context_line")},
    "in_app": st.booleans(), "lineno": st.integers(0, 10**6), "vars": _JSON,
    "pre_context": st.lists(st.text(max_size=100), max_size=5)})
_VALUE = st.fixed_dictionaries({}, optional={
    "type": st.text(max_size=600), "value": st.text(max_size=600),
    "mechanism": st.fixed_dictionaries({"handled": st.booleans()}),
    "stacktrace": st.fixed_dictionaries({"frames": st.lists(_FRAME, max_size=60)})})
_EVENTS = st.fixed_dictionaries({}, optional={
    "level": st.sampled_from(["fatal", "error", "info"]) | st.text(max_size=5),
    "logger": st.text(max_size=300), "transaction": st.text(max_size=300),
    "message": st.text(max_size=3000), "logentry": st.fixed_dictionaries(
        {"message": st.text(max_size=3000)}, optional={"params": st.lists(_SCALARS, max_size=3)}),
    "exception": st.fixed_dictionaries({"values": st.lists(_VALUE, max_size=6)}),
    "threads": st.fixed_dictionaries({"values": st.lists(_VALUE, max_size=3)}),
    "fingerprint": st.lists(st.sampled_from(["{{ default }}", "{{ message }}", "x"]),
                            max_size=3),
    "tags": st.dictionaries(st.text(max_size=20), st.text(max_size=400), max_size=20),
    "breadcrumbs": st.fixed_dictionaries({"values": st.lists(_JSON, max_size=30)}),
    "request": st.fixed_dictionaries({"url": st.text(max_size=50)}, optional={"data": _JSON}),
    **{key: _JSON for key in ("extra", "contexts", "user", "modules", "sdk")},
})


def _scaled(raw: dict[str, Any], scale: int) -> dict[str, Any]:
    """``raw`` with its breadcrumbs and frames repeated ``scale`` times (Hypothesis draws short
    lists; real events are long)."""
    crumbs = raw.get("breadcrumbs", {}).get("values")
    if crumbs:
        raw["breadcrumbs"]["values"] = crumbs * scale
    for value in raw.get("exception", {}).get("values", []):
        if "stacktrace" in value:
            value["stacktrace"]["frames"] = value["stacktrace"]["frames"] * scale
    return orjson.loads(orjson.dumps(raw))  # every part its own object, as parsed


@settings(max_examples=300, deadline=None, derandomize=True,  # the same examples every run (CI)
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=_EVENTS, scale=st.integers(1, 60), share=st.integers(1, 99))
def test_any_event_is_trimmed_exactly_or_refused(raw: dict[str, Any], scale: int,
                                                 share: int) -> None:
    raw = _scaled(raw, scale)
    payload = orjson.dumps(raw)
    max_bytes = max(len(payload) * share // 100, 300)  # a cap below the event's size
    try:
        result = trim.trim(orjson.loads(payload), max_bytes, len(payload))
    except PayloadTooLarge:
        assert max_bytes < 6000  # only a cap below the largest core refuses
        statistic("refused")
        return
    statistic(f"last step {result.steps[-1]['cut'] if result.steps else None}")
    assert result.stored_bytes == len(orjson.dumps(result.event)) <= max_bytes
    assert sum(s["bytes"] for s in result.steps) == result.measured_bytes - result.stored_bytes
    assert [s["cut"] for s in result.steps] == sorted((s["cut"] for s in result.steps),
                                                      key=STEP_NAMES.index)
    if result.steps:
        # One event id for both: an event with nothing else to group by is a group of its own.
        row = row_of(raw, max_bytes, with_v1=True, event_id="e" * 32)
        whole = full_row(raw, with_v1=True, event_id="e" * 32)
        assert (row.fingerprint, row.fingerprint_v1) == (whole.fingerprint, whole.fingerprint_v1)
