"""Sentry envelope parsing: bytes in, an ``Envelope`` of items out. Pure; no I/O.

Grammar (Sentry developer docs, "Envelopes"): one JSON header line, then items. Each item is a JSON
header line followed by a payload that is either exactly ``length`` bytes (when the header says so)
or everything up to the next newline. The newline after the last payload is optional and payloads
may be empty. A CRLF line ending is taken as a newline.

A bad envelope header raises ``InvalidEnvelope``: nothing after it can be trusted. A framing error in
an item (a header that is not JSON, a ``length`` running past the end) stops the parse there, but the
items before it are kept and the problem is reported in ``Envelope.problem``, so the good items of a
damaged envelope are never lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from shim.core.errors import InvalidEnvelope

MAX_ITEMS = 1000  # an SDK sends a handful; this bounds the work one request can ask for


@dataclass(frozen=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> Any:
        """The payload as JSON; raises ``orjson.JSONDecodeError`` when it is not."""
        return orjson.loads(self.payload)


@dataclass(frozen=True)
class Envelope:
    headers: dict[str, Any]
    items: list[Item] = field(default_factory=list)
    problem: str | None = None  # the framing error that ended the parse early, if any

    @property
    def event_id(self) -> str | None:
        """The header's ``event_id``, normalised to 32 lowercase hex digits."""
        raw = self.headers.get("event_id")
        return None if raw is None else parse_event_id(raw)


# The forms a UUID is written in (as Python's ``uuid.UUID`` and Rust's ``uuid`` read them), but only
# those: ``uuid.UUID`` also lets through hyphens anywhere, "0x", "+", "_" and non-ASCII digits.
_UUID = re.compile(
    r"(?:urn:uuid:)?(\{)?([0-9a-f]{8})(-?)([0-9a-f]{4})\3([0-9a-f]{4})\3([0-9a-f]{4})\3([0-9a-f]{12})"
    r"(?(1)\})",
    re.IGNORECASE | re.ASCII,
)


def parse_event_id(raw: object) -> str:
    """Accept dashed or undashed UUIDs (any case) and return Sentry's canonical 32-hex form."""
    if not isinstance(raw, str):
        raise InvalidEnvelope(f"event_id must be a string, got {type(raw).__name__}")
    match = _UUID.fullmatch(raw.strip())
    if match is None:
        raise InvalidEnvelope(f"event_id {raw[:64]!r} is not a UUID")
    return "".join(match.group(2, 4, 5, 6, 7)).lower()


def _json_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEnvelope(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidEnvelope(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _line(data: bytes, start: int) -> tuple[bytes, int]:
    """The bytes from ``start`` to the next newline (or the end), without the newline or a CR
    before it, and where the next line starts."""
    end = data.find(b"\n", start)
    if end < 0:
        return data[start:], len(data)
    line = data[start:end]
    return (line[:-1] if line.endswith(b"\r") else line), end + 1


def parse_envelope(data: bytes) -> Envelope:
    """Parse an envelope; see the module docstring for what is raised and what is reported."""
    header_line, pos = _line(data, 0)
    if not header_line.strip():
        raise InvalidEnvelope("envelope is empty: expected a JSON header line")
    headers = _json_object(header_line, "envelope header")
    if "event_id" in headers and headers["event_id"] is not None:
        headers["event_id"] = parse_event_id(headers["event_id"])

    items: list[Item] = []
    while pos < len(data):
        line, next_pos = _line(data, pos)
        if not line.strip():  # blank lines between or after items carry nothing
            pos = next_pos
            continue
        number = len(items) + 1
        if number > MAX_ITEMS:
            return Envelope(headers, items, f"envelope has more than {MAX_ITEMS} items")
        try:
            item_headers = _json_object(line, f"item {number} header")
        except InvalidEnvelope as exc:
            return Envelope(headers, items, exc.detail)
        if not isinstance(item_headers.get("type"), str) or not item_headers["type"]:
            return Envelope(headers, items, f"item {number} header has no type")
        pos = next_pos
        length = item_headers.get("length")
        if length is None:
            payload, pos = _line(data, pos)
        else:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                return Envelope(headers, items, f"item {number} has an invalid length {length!r}")
            if pos + length > len(data):
                return Envelope(
                    headers, items,
                    f"item {number} declares length {length} but only {len(data) - pos} bytes "
                    "remain",
                )
            payload = data[pos:pos + length]
            pos += length
            if data.startswith(b"\r\n", pos):
                pos += 1
            if pos < len(data):
                if data[pos:pos + 1] != b"\n":
                    return Envelope(
                        headers, items,
                        f"item {number} payload is not followed by a newline at its declared "
                        f"length {length}",
                    )
                pos += 1
        items.append(Item(item_headers, payload))
    return Envelope(headers, items)
