"""An event's JSON text decoded straight into the parts a row is built from. Pure.

Most of an SDK event's bytes are never stored: frame local variables, the source lines around each
frame, the ``modules`` list. ``normalize._used_parts`` drops them after ``orjson`` has built them
all as Python objects; here msgspec skips them while it reads the text (typed dicts with only the
keys we use), which takes about a third of the time for a typical Python SDK event.

Breadcrumbs are stored but never read, and they are the bulk of what is stored (about 8 of a
typical event's 14 KB). Their list is kept as the JSON text it arrived as and written into the
row's context as it is (an ``orjson.Fragment``), unless that text could differ from what decoding
and writing it again would give in a way that matters (``_AS_IS``): anything the scrubber could act
on, a ``\\u`` escape (which could spell a key word), a line break (the backup log is one row per
line), a number past the range of a double (which orjson, reading the log back, refuses).

``used_parts`` gives what ``_used_parts(orjson.loads(payload))`` would give for everything the row
reads, or ``None`` when the payload is not in the common shape, and the general path (orjson, then
``_used_parts``) takes it. ``tests/test_projection.py`` checks the rows are the same either way.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

import msgspec
import orjson

from shim.core.event import DEFAULT_SCRUBBER, FRAME_KEYS, LEGACY_KEYS, USED_KEYS
from shim.core.scrub import Scrubber


class _Frame(TypedDict, total=False):
    """The frame fields the stack trace text and the fingerprint read; the rest is skipped."""

    filename: Any
    abs_path: Any
    module: Any
    function: Any
    lineno: Any
    in_app: Any
    context_line: Any


class _Stacktrace(TypedDict, total=False):
    frames: list[_Frame]


class _Value(TypedDict, total=False):
    """One exception (or thread): what the stack trace, the title and the fingerprint read."""

    type: Any
    value: Any
    module: Any
    mechanism: Any
    stacktrace: _Stacktrace


class _Values(_Value, total=False):
    """``{"values": [...]}``, or (very old clients) a lone exception object."""

    values: list[_Value]


class _Breadcrumbs(TypedDict, total=False):
    """Only the list is stored (``shim.core.event.context_of``); it stays JSON text here."""

    values: msgspec.Raw


class _Event(TypedDict, total=False):
    """The top-level keys a row is built from (``normalize.USED_KEYS``)."""

    exception: _Values | list[_Value] | None
    threads: _Values | list[_Value] | None
    stacktrace: _Stacktrace | None
    event_id: Any
    timestamp: Any
    level: Any
    message: Any
    logentry: Any
    tags: Any
    extra: Any
    contexts: Any
    user: Any
    request: Any
    release: Any
    environment: Any
    server_name: Any
    sdk: Any
    breadcrumbs: _Breadcrumbs | list[Any] | None
    platform: Any
    logger: Any
    transaction: Any
    dist: Any
    fingerprint: Any


# Old clients' names of parts: read only to notice them (the general path maps them).
_Legacy = TypedDict("_Legacy", {
    "sentry.interfaces.Exception": Any, "sentry.interfaces.Message": Any,
    "sentry.interfaces.Stacktrace": Any, "sentry.interfaces.Http": Any,
    "sentry.interfaces.User": Any, "sentry.interfaces.Breadcrumbs": Any,
}, total=False)


class _Read(_Event, _Legacy, total=False):
    """What is read of an event."""


# The lists above must be exactly what normalize reads.
assert tuple(_Frame.__annotations__) == FRAME_KEYS
assert set(_Event.__annotations__) == USED_KEYS
assert set(_Legacy.__annotations__) == set(LEGACY_KEYS)

# Public: the benchmarks time reading an event with it (bench/floor.py).
EVENT_DECODER = msgspec.json.Decoder(_Read)
"""Decodes an event payload into only the keys that are read (``USED_KEYS``, ``LEGACY_KEYS``)."""

# What sends a breadcrumbs list to be decoded (and, for the scrubber, walked) rather than kept as
# its text, besides what the scrubber's one-pass test finds (see the module doc). The exponent
# must end where a number ends, or hex ids ("etag 3e735a") would match.
_AS_IS = rb"\\u|[\n\r]|[0-9][eE][-+]?[0-9]{3,}[,\]} \t]"


def used_parts(payload: bytes, scrubber: Scrubber = DEFAULT_SCRUBBER
               ) -> tuple[dict[str, Any], bytes] | None:
    """(the used parts, JSON to test) of an event payload, or None for the general path.

    The JSON is what the scrubber's one-pass test still has to read (the parts would otherwise be
    serialised again for it): the parts, but for a breadcrumbs list kept as text, which was tested
    here already. Where msgspec and orjson could differ, the general path decides:

    - invalid UTF-8 in a skipped string: orjson refuses it, msgspec does not look (checked here);
    - integers past 64 bits in a used part: orjson reads them as floats (writing the parts back
      fails on them here); in a skipped part both accept them;
    - old clients' interface names (``sentry.interfaces.Exception``): the general path maps them.

    One difference is kept: a number past the range of a double in a skipped part (``1e999``) is
    valid JSON, which msgspec skips and orjson refuses; such an event is now taken.
    """
    try:
        if not payload.isascii():
            payload.decode()
        used = cast(dict[str, Any], EVENT_DECODER.decode(payload))
        if not used.keys().isdisjoint(LEGACY_KEYS):
            return None
        crumbs = used.get("breadcrumbs")
        if isinstance(crumbs, dict) and "values" in crumbs:
            text = bytes(crumbs["values"])
            if text[:1] == b"[" and scrubber.suspect_or(_AS_IS).search(text) is None:
                used["breadcrumbs"] = {"values": orjson.Fragment(text)}
                return used, orjson.dumps({k: v for k, v in used.items() if k != "breadcrumbs"})
            used["breadcrumbs"] = {"values": orjson.loads(text)}
        return used, orjson.dumps(used)
    except (UnicodeDecodeError, msgspec.ValidationError, msgspec.DecodeError,
            orjson.JSONEncodeError, orjson.JSONDecodeError,
            RecursionError):  # msgspec's depth limit is Python's
        return None
