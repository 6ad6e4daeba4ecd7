"""Reading an event: from its JSON text (or an already decoded value) to the parts a row is built
from. Pure. ``read`` is the one way in; ``shim.core.event.normalize_event`` builds the row from what it
returns.

Most of an SDK event's bytes are never stored: frame local variables, the source lines around each
frame, the ``modules`` list. msgspec reads the text into typed dicts of only the keys we use
(``_projected``), skipping the rest without building it, which takes about a third of the time of
decoding everything with orjson and dropping it afterwards, for a typical Python SDK event.

Breadcrumbs are stored but never read, and they are the bulk of what is stored (about 8 of a
typical event's 14 KB). Their list is kept as the JSON text it arrived as and written into the
row's context as it is (an ``orjson.Fragment``), unless that text could differ from what decoding
and writing it again would give in a way that matters (``_AS_IS``): anything the scrubber could act
on, a ``\\u`` escape (which could spell a key word), a line break (the backup log is one row per
line), a number past the range of a double (which orjson, reading the log back, refuses).

The few payloads msgspec cannot read the same way (see ``_projected``) and values decoded already
(legacy store bodies, events being trimmed) are read whole and reduced to the same parts
(``_used_parts``); ``tests/test_projection.py`` checks that both give the same rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypedDict, cast

import msgspec
import orjson

from shim.core import grouping_v2
from shim.core.errors import InvalidEvent
from shim.core.scrub import DEFAULT_SCRUBBER, Scrubber

LEGACY_KEYS = {
    "sentry.interfaces.Exception": "exception",
    "sentry.interfaces.Message": "logentry",
    "sentry.interfaces.Stacktrace": "stacktrace",
    "sentry.interfaces.Http": "request",
    "sentry.interfaces.User": "user",
    "sentry.interfaces.Breadcrumbs": "breadcrumbs",
}
"""Old clients' names of the parts, and the names they have now."""

CONTEXT_KEYS = (
    "tags", "extra", "contexts", "user", "request", "release", "environment", "server_name", "sdk",
    "breadcrumbs", "platform", "logger", "transaction", "dist", "fingerprint",
)
"""The top-level keys kept in a row's ``context`` (``shim.core.event.context_of``)."""

USED_KEYS = frozenset({*CONTEXT_KEYS, "event_id", "timestamp", "level", "logger", "message",
                       "logentry", "exception", "threads", "stacktrace", "contexts",
                       *(grouping_v2.TOP_LEVEL_KEYS - LEGACY_KEYS.keys())})
"""Top-level keys a row is built from (grouping's among them: security reports, ``template``,
``culprit``); everything else (modules, spans, debug_meta...) is dropped. Old clients' names of
parts are mapped to the current ones first (``LEGACY_KEYS``), so only those outside that map are
listed."""

FRAME_KEYS = ("filename", "abs_path", "module", "function", "lineno", "in_app", "context_line",
              "raw_function", "symbol", "package", "platform")
"""Frame fields the stack trace text and the fingerprints use. Local variables and the source
lines around each frame are never stored, so they are dropped before scrubbing rather than
scrubbed."""

assert set(FRAME_KEYS) >= grouping_v2.FRAME_KEYS, "grouping v2 reads a frame field not kept"


class Parts(NamedTuple):
    """What ``read`` gives: the used parts (legacy keys mapped, other keys dropped, frames slimmed)
    and, when the reading has it, their JSON for the scrubber's one-pass test (``scrub_event``)."""

    used: dict[str, Any]
    text: bytes | None


def read(event: object, scrubber: Scrubber = DEFAULT_SCRUBBER) -> Parts:
    """The parts of an event a row is built from. ``event`` is an event item's payload as it
    arrived (``bytes``) or a JSON value decoded already. Raises ``InvalidEvent`` when it is not
    JSON or not an object."""
    if isinstance(event, bytes):
        projected = _projected(event, scrubber)
        if projected is not None:
            return projected
        try:
            event = orjson.loads(event)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"event item payload is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(event).__name__}")
    return Parts(_used_parts(event), None)


def _slim_frames(holder: object) -> object:
    """A copy of an exception value / thread / stacktrace with only the frame fields we use."""
    if not isinstance(holder, dict):
        return holder
    stacktrace = holder.get("stacktrace") if "frames" not in holder else holder
    if not isinstance(stacktrace, dict) or not isinstance(stacktrace.get("frames"), list):
        return holder
    frames = [{k: f[k] for k in FRAME_KEYS if k in f} if isinstance(f, dict) else f
              for f in stacktrace["frames"]]
    if stacktrace is holder:
        return {**holder, "frames": frames}
    return {**holder, "stacktrace": {**stacktrace, "frames": frames}}


def _used_parts(event: dict[str, Any]) -> dict[str, Any]:
    """The event with legacy keys mapped, unused keys dropped and frames slimmed (shallow copies)."""
    event = dict(event)
    for legacy, modern in LEGACY_KEYS.items():
        if legacy in event and modern not in event:
            event[modern] = event[legacy]
    used = {k: v for k, v in event.items() if k in USED_KEYS}
    if isinstance(used.get("stacktrace"), dict):
        used["stacktrace"] = _slim_frames(used["stacktrace"])
    for key in ("exception", "threads"):
        raw = used.get(key)
        values = raw.get("values") if isinstance(raw, dict) else raw
        if isinstance(values, list):
            slim = [_slim_frames(v) for v in values]
            used[key] = {**raw, "values": slim} if isinstance(raw, dict) else slim
        elif isinstance(raw, dict) and ("type" in raw or "value" in raw):
            used[key] = _slim_frames(raw)  # a lone exception object (very old clients)
    return used


class _Frame(TypedDict, total=False):
    """The frame fields the stack trace text and the fingerprint read; the rest is skipped."""

    filename: Any
    abs_path: Any
    module: Any
    function: Any
    lineno: Any
    in_app: Any
    context_line: Any
    raw_function: Any
    symbol: Any
    package: Any
    platform: Any


class _Stacktrace(TypedDict, total=False):
    frames: list[_Frame]


class _Value(TypedDict, total=False):
    """One exception (or thread): what the stack trace, the title and the fingerprint read (a
    thread's flags and id, an exception's thread id: grouping v2 picks a thread's stack)."""

    type: Any
    value: Any
    module: Any
    mechanism: Any
    stacktrace: _Stacktrace
    thread_id: Any
    id: Any
    crashed: Any
    current: Any


class _Values(_Value, total=False):
    """``{"values": [...]}``, or (very old clients) a lone exception object."""

    values: list[_Value]


class _Breadcrumbs(TypedDict, total=False):
    """Only the list is stored (``shim.core.event.context_of``); it stays JSON text here."""

    values: msgspec.Raw


class _Event(TypedDict, total=False):
    """The top-level keys a row is built from (``USED_KEYS``)."""

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
    csp: Any
    expectct: Any
    expectstaple: Any
    hpkp: Any
    template: Any
    culprit: Any


# Raw security reports' names, and old clients' names of interfaces that keep them (grouping v2
# reads them as they are: ``shim.core.grouping_v2.variants``).
_Reports = TypedDict("_Reports", {
    "csp-report": Any, "expect-ct-report": Any, "expect-staple-report": Any,
    "sentry.interfaces.Template": Any, "sentry.interfaces.Csp": Any,
}, total=False)


# Old clients' names of parts: read only to notice them (the general path maps them).
_Legacy = TypedDict("_Legacy", {
    "sentry.interfaces.Exception": Any, "sentry.interfaces.Message": Any,
    "sentry.interfaces.Stacktrace": Any, "sentry.interfaces.Http": Any,
    "sentry.interfaces.User": Any, "sentry.interfaces.Breadcrumbs": Any,
}, total=False)


class _Read(_Event, _Reports, _Legacy, total=False):
    """What is read of an event."""


# The typed dicts above must read exactly what the general path keeps.
assert tuple(_Frame.__annotations__) == FRAME_KEYS
assert set(_Event.__annotations__) | set(_Reports.__annotations__) == USED_KEYS
assert set(_Legacy.__annotations__) == set(LEGACY_KEYS)

# Public: the benchmarks time reading an event with it (bench/floor.py).
EVENT_DECODER = msgspec.json.Decoder(_Read)
"""Decodes an event payload into only the keys that are read (``USED_KEYS``, ``LEGACY_KEYS``)."""

# What sends a breadcrumbs list to be decoded (and, for the scrubber, walked) rather than kept as
# its text, besides what the scrubber's one-pass test finds (see the module doc). The exponent
# must end where a number ends, or hex ids ("etag 3e735a") would match.
_AS_IS = rb"\\u|[\n\r]|[0-9][eE][-+]?[0-9]{3,}[,\]} \t]"


def _projected(payload: bytes, scrubber: Scrubber) -> Parts | None:
    """The parts of a payload read by msgspec, or None for the general path.

    Their text is what the scrubber's one-pass test still has to read: the parts written again
    (fast: orjson, and only what is kept, so a secret in a dropped frame variable costs nothing),
    but for a breadcrumbs list kept as text, which was tested here already. Where msgspec and
    orjson could differ, the general path decides:

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
                return Parts(used, orjson.dumps({k: v for k, v in used.items()
                                                 if k != "breadcrumbs"}))
            used["breadcrumbs"] = {"values": orjson.loads(text)}
        return Parts(used, orjson.dumps(used))
    except (UnicodeDecodeError, msgspec.ValidationError, msgspec.DecodeError,
            orjson.JSONEncodeError, orjson.JSONDecodeError,
            RecursionError):  # msgspec's depth limit is Python's
        return None
