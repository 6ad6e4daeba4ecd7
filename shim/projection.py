"""An event's JSON text decoded straight into the parts a row is built from. Pure.

Most of an SDK event's bytes are never stored: frame local variables, the source lines around each
frame, the ``modules`` list. ``normalize._used_parts`` drops them after ``orjson`` has built them
all as Python objects; here msgspec skips them while it reads the text (typed dicts with only the
keys we use), which takes about a third of the time for a typical Python SDK event.

``used_parts`` gives what ``_used_parts(orjson.loads(payload))`` would give for everything the row
reads, or ``None`` when the payload is not in the common shape, and the general path (orjson, then
``_used_parts``) takes it. ``tests/test_projection.py`` checks the rows are the same either way.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

import msgspec
import orjson

from shim.normalize import FRAME_KEYS, LEGACY_KEYS, USED_KEYS


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
    breadcrumbs: Any
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

_DECODER = msgspec.json.Decoder(_Read)


def used_parts(payload: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(the used parts, those parts as JSON) of an event payload, or None for the general path.

    The JSON is what the scrubber's one-pass test reads (the parts would otherwise be serialised
    again for it). Where msgspec and orjson could differ, the general path decides:

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
        used = cast(dict[str, Any], _DECODER.decode(payload))
        if not used.keys().isdisjoint(LEGACY_KEYS):
            return None
        return used, orjson.dumps(used)
    except (UnicodeDecodeError, msgspec.ValidationError, msgspec.DecodeError,
            orjson.JSONEncodeError, RecursionError):  # msgspec's depth limit is Python's
        return None
