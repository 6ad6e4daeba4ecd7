"""``shim.core.envelope.parse_envelope``: a table of envelopes, good and damaged, and two properties.

Good envelopes are built by ``sentry_sdk.envelope.Envelope.serialize()`` wherever the SDK can
produce the shape (it always writes ``length``), so the parser is checked against the real client.
Shapes the SDK never writes (newline-terminated items, blank lines, CRLF, damage) are assembled from
header lines serialised with the SDK's own ``json_dumps``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.envelope import Envelope as SdkEnvelope
from sentry_sdk.envelope import Item as SdkItem
from sentry_sdk.envelope import PayloadRef
from sentry_sdk.utils import json_dumps

from shim.core.envelope import MAX_ITEMS, Envelope, parse_envelope, parse_event_id
from shim.core.errors import InvalidEnvelope

EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"
DASHED = str(uuid.UUID(EVENT_ID))
EVENT = {"event_id": EVENT_ID, "level": "error", "message": "disk full"}
BINARY = b"\x00line one\nline two\r\n\xff\xfe\n"  # newlines inside a length-delimited payload


def sdk(headers: dict[str, Any], *items: SdkItem) -> bytes:
    """Wire bytes exactly as sentry-sdk writes them."""
    return SdkEnvelope(headers=headers, items=list(items)).serialize()


def line(value: Any) -> bytes:
    """One header line as the SDK serialises JSON, newline included."""
    return json_dumps(value) + b"\n"


def event_item(event: dict[str, Any] = EVENT) -> SdkItem:
    return SdkItem(payload=PayloadRef(json=event), type="event")


HEADER = {"event_id": EVENT_ID, "sent_at": "2024-05-01T10:00:00.000000Z"}
TWO_ITEMS = sdk(
    HEADER,
    event_item(),
    SdkItem(payload=BINARY, type="attachment", filename="dump.bin"),
)


@dataclass(frozen=True)
class Good:
    data: bytes
    items: list[tuple[str, bytes]]  # (type, payload) of every item, in order
    event_id: str | None = EVENT_ID


GOOD = {
    "sdk event": Good(sdk(HEADER, event_item()), [("event", json_dumps(EVENT))]),
    "sdk event and binary attachment": Good(
        TWO_ITEMS, [("event", json_dumps(EVENT)), ("attachment", BINARY)]
    ),
    "sdk envelope, no trailing newline": Good(
        TWO_ITEMS[:-1], [("event", json_dumps(EVENT)), ("attachment", BINARY)]
    ),
    "sdk empty payload (length 0) between items": Good(
        sdk(HEADER, SdkItem(payload=b"", type="client_report"), event_item()),
        [("client_report", b""), ("event", json_dumps(EVENT))],
    ),
    "sdk empty payload last, no trailing newline": Good(
        sdk(HEADER, event_item(), SdkItem(payload=b"", type="session"))[:-1],
        [("event", json_dumps(EVENT)), ("session", b"")],
    ),
    "sdk envelope without event_id": Good(
        sdk({"sent_at": "2024-05-01T10:00:00Z"}, SdkItem(payload=b"{}", type="session")),
        [("session", b"{}")], event_id=None,
    ),
    "event_id null in header": Good(line({"event_id": None}), [], event_id=None),
    "header only, with newline": Good(line(HEADER), []),
    "header only, no newline": Good(line(HEADER)[:-1], []),
    "newline-terminated items": Good(
        line(HEADER) + line({"type": "event"}) + json_dumps(EVENT) + b"\n"
        + line({"type": "session"}) + b'{"sid":"x"}\n',
        [("event", json_dumps(EVENT)), ("session", b'{"sid":"x"}')],
    ),
    "newline-terminated last item, no trailing newline": Good(
        line(HEADER) + line({"type": "event"}) + json_dumps(EVENT),
        [("event", json_dumps(EVENT))],
    ),
    "newline-terminated empty payload (bare newline) then an item": Good(
        line(HEADER) + line({"type": "client_report"}) + b"\n" + line({"type": "event"})
        + json_dumps(EVENT) + b"\n",
        [("client_report", b""), ("event", json_dumps(EVENT))],
    ),
    "newline-terminated empty payload last": Good(
        line(HEADER) + line({"type": "client_report"}) + b"\n", [("client_report", b"")]
    ),
    "item header at the very end, no newline: empty payload": Good(
        line(HEADER) + line({"type": "client_report"})[:-1], [("client_report", b"")]
    ),
    "mixed length and newline-terminated": Good(
        sdk(HEADER, SdkItem(payload=BINARY, type="attachment"))
        + line({"type": "event"}) + json_dumps(EVENT) + b"\n",
        [("attachment", BINARY), ("event", json_dumps(EVENT))],
    ),
    "blank lines between and after items": Good(
        line(HEADER) + b"\n \n" + sdk(HEADER, event_item()).split(b"\n", 1)[1] + b"\n\n\t\n",
        [("event", json_dumps(EVENT))],
    ),
    "CRLF with newline-terminated items": Good(
        (line(HEADER) + line({"type": "event"}) + json_dumps(EVENT) + b"\n"
         + line({"type": "client_report"}) + b"\n").replace(b"\n", b"\r\n"),
        [("event", json_dumps(EVENT)), ("client_report", b"")],
    ),
    "CRLF after length-delimited payloads": Good(
        TWO_ITEMS.replace(b"}\n{", b"}\r\n{").removesuffix(b"\n") + b"\r\n",
        [("event", json_dumps(EVENT)), ("attachment", BINARY)],
    ),
    "dashed event_id": Good(sdk({"event_id": DASHED}, event_item()), [("event", json_dumps(EVENT))]),
    "upper-case dashed event_id": Good(
        sdk({"event_id": DASHED.upper()}, event_item()), [("event", json_dumps(EVENT))]
    ),
    "upper-case undashed event_id": Good(
        sdk({"event_id": EVENT_ID.upper()}, event_item()), [("event", json_dumps(EVENT))]
    ),
    "braced event_id": Good(line({"event_id": "{" + DASHED + "}"}), []),
    "unknown item type is kept": Good(
        sdk(HEADER, SdkItem(payload=b"?", type="future_thing")), [("future_thing", b"?")]
    ),
}


@pytest.mark.parametrize("case", GOOD.values(), ids=GOOD.keys())
def test_good_envelopes(case: Good) -> None:
    envelope = parse_envelope(case.data)
    assert envelope.problem is None
    assert [(item.type, item.payload) for item in envelope.items] == case.items
    assert envelope.event_id == case.event_id
    assert envelope.headers.get("event_id") == case.event_id


def test_sdk_headers_and_json_payload_survive() -> None:
    envelope = parse_envelope(TWO_ITEMS)
    assert envelope.headers == HEADER
    event, attachment = envelope.items
    assert event.json() == EVENT
    assert event.headers == {"type": "event", "content_type": "application/json",
                             "length": len(json_dumps(EVENT))}
    assert attachment.headers["filename"] == "dump.bin"
    assert attachment.headers["length"] == len(BINARY)


BAD_HEADER = {
    "empty": b"",
    "bare newline": b"\n",
    "blank first line": b"\n" + line(HEADER),
    "not JSON": b"{event_id: 1}\n",
    "truncated JSON": line(HEADER)[:10],
    "not UTF-8": b'{"a": "\xff"}\n',
    "array": b"[1, 2]\n",
    "string": b'"envelope"\n',
    "null": b"null\n",
    "event_id not a UUID": line({"event_id": "not-a-uuid"}),
    "event_id too short": line({"event_id": EVENT_ID[:-1]}),
    "event_id with 0x prefix": line({"event_id": "0x" + EVENT_ID[2:]}),
    "event_id with misplaced dashes": line({"event_id": EVENT_ID[:10] + "-" + EVENT_ID[10:]}),
    "event_id with non-ASCII digit": line({"event_id": EVENT_ID[:-1] + "\u0661"}),
    "event_id a number": line({"event_id": 12}),
    "event_id an object": line({"event_id": {"id": EVENT_ID}}),
}


@pytest.mark.parametrize("data", BAD_HEADER.values(), ids=BAD_HEADER.keys())
def test_bad_envelope_header_raises(data: bytes) -> None:
    with pytest.raises(InvalidEnvelope) as raised:
        parse_envelope(data)
    assert raised.value.status == 400
    assert raised.value.code == "invalid_envelope"


GOOD_PREFIX = sdk(HEADER, event_item())  # every damaged envelope below starts with one good item
GOOD_ITEM = sdk({}, event_item()).split(b"\n", 1)[1]  # and, unless it runs to the end, ends with one

DAMAGED = {
    "item header not JSON": (b"{type: event}\n{}\n", "item 2 header is not valid JSON"),
    "item header an array": (b'["event"]\n{}\n', "item 2 header must be a JSON object"),
    "item header without type": (line({"length": 2}) + b"{}\n", "item 2 header has no type"),
    "item type empty": (line({"type": ""}) + b"{}\n", "item 2 header has no type"),
    "item type not a string": (line({"type": 7}) + b"{}\n", "item 2 header has no type"),
    "length a string": (line({"type": "event", "length": "2"}) + b"{}\n", "invalid length"),
    "length negative": (line({"type": "event", "length": -1}) + b"{}\n", "invalid length"),
    "length a float": (line({"type": "event", "length": 2.0}) + b"{}\n", "invalid length"),
    "length a boolean": (line({"type": "event", "length": True}) + b"{}\n", "invalid length"),
    "length past the end": (
        line({"type": "event", "length": 10_000}) + GOOD_ITEM,
        f"declares length 10000 but only {len(GOOD_ITEM)} bytes remain",
    ),
    "length past the end, nothing after the header": (
        line({"type": "event", "length": 1}), "declares length 1 but only 0 bytes remain"
    ),
    "wrong length: payload not followed by newline": (
        line({"type": "event", "length": 1}) + b"{}\n", "not followed by a newline"
    ),
    "wrong length: payload too short by one": (
        line({"type": "attachment", "length": 3}) + b"abcd\n", "not followed by a newline"
    ),
}


@pytest.mark.parametrize(("tail", "problem"), DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_item_stops_parse_and_keeps_earlier_items(tail: bytes, problem: str) -> None:
    follow = b"" if "bytes remain" in problem else GOOD_ITEM
    envelope = parse_envelope(GOOD_PREFIX + tail + follow)
    assert [(item.type, item.payload) for item in envelope.items] == [
        ("event", json_dumps(EVENT))
    ]
    assert envelope.problem is not None
    assert problem in envelope.problem
    assert envelope.event_id == EVENT_ID


def test_damaged_first_item_keeps_header() -> None:
    envelope = parse_envelope(line(HEADER) + b"not json\n")
    assert envelope.items == []
    assert envelope.headers == HEADER
    assert envelope.problem is not None and "item 1 header" in envelope.problem


def test_max_items_is_accepted() -> None:
    data = sdk({}, *(SdkItem(payload=b"x", type="session") for _ in range(MAX_ITEMS)))
    envelope = parse_envelope(data)
    assert envelope.problem is None
    assert len(envelope.items) == MAX_ITEMS


def test_too_many_items_stops_at_max() -> None:
    data = sdk({}, *(SdkItem(payload=str(n), type="session") for n in range(MAX_ITEMS + 5)))
    envelope = parse_envelope(data)
    assert len(envelope.items) == MAX_ITEMS
    assert envelope.items[-1].payload == str(MAX_ITEMS - 1).encode()
    assert envelope.problem == f"envelope has more than {MAX_ITEMS} items"


@pytest.mark.parametrize(
    "raw",
    [EVENT_ID, EVENT_ID.upper(), DASHED, DASHED.upper(), f"  {DASHED}\n", "{" + DASHED + "}",
     f"urn:uuid:{DASHED}"],
)
def test_parse_event_id_forms(raw: str) -> None:
    assert parse_event_id(raw) == EVENT_ID


# --- properties ------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=4),
    max_leaves=6,
)
HEADERS = st.dictionaries(
    st.text(max_size=12).filter(lambda key: key not in ("event_id", "type", "length")),
    JSON, max_size=5,
)
ITEMS = st.lists(
    st.tuples(st.text(min_size=1, max_size=20), st.binary(max_size=300), HEADERS), max_size=8
)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=HEADERS,
    event_id=st.none() | st.uuids(),
    items=ITEMS,
    trailing_newline=st.booleans(),
)
def test_sdk_serialized_envelopes_round_trip(
    headers: dict[str, Any],
    event_id: uuid.UUID | None,
    items: list[tuple[str, bytes, dict[str, Any]]],
    trailing_newline: bool,
) -> None:
    if event_id is not None:
        headers = {**headers, "event_id": str(event_id)}
    sdk_items = [SdkItem(payload=payload, type=type_, headers=extra)
                 for type_, payload, extra in items]
    data = sdk(headers, *sdk_items)
    if not trailing_newline:
        data = data[:-1]

    envelope = parse_envelope(data)

    assert envelope.problem is None
    assert envelope.event_id == (None if event_id is None else event_id.hex)
    assert {k: v for k, v in envelope.headers.items() if k != "event_id"} == orjson.loads(
        json_dumps({k: v for k, v in headers.items() if k != "event_id"})
    )
    assert len(envelope.items) == len(items)
    for parsed, sent, (type_, payload, _) in zip(envelope.items, sdk_items, items, strict=True):
        assert parsed.type == type_
        assert parsed.headers["length"] == len(payload)
        assert parsed.payload == payload
        assert parsed.headers == orjson.loads(json_dumps({**sent.headers, "length": len(payload)}))


def _check_invariants(envelope: Envelope) -> None:
    assert isinstance(envelope.headers, dict)
    assert len(envelope.items) <= MAX_ITEMS
    for item in envelope.items:
        assert isinstance(item.type, str) and item.type
        assert isinstance(item.payload, bytes)
    if envelope.event_id is not None:
        assert len(envelope.event_id) == 32 and envelope.event_id == envelope.event_id.lower()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_invalid_envelope(data: bytes) -> None:
    try:
        envelope = parse_envelope(data)
    except InvalidEnvelope:
        return
    _check_invariants(envelope)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    cut=st.integers(min_value=0, max_value=len(TWO_ITEMS)),
    insert=st.binary(min_size=0, max_size=6),
    drop=st.integers(min_value=0, max_value=4),
)
def test_damaged_sdk_envelopes_only_raise_invalid_envelope(cut: int, insert: bytes,
                                                           drop: int) -> None:
    data = TWO_ITEMS[:cut] + insert + TWO_ITEMS[cut + drop:]
    try:
        envelope = parse_envelope(data)
    except InvalidEnvelope:
        return
    _check_invariants(envelope)
