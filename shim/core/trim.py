"""Events larger than ``SHIM_MAX_EVENT_BYTES`` made to fit, rather than refused. Pure.

Real clients send events over a megabyte (frame local variables, long breadcrumb trails, request
bodies). Such an event is parsed once, then what matters least is cut, step by step in the order
of ``STEPS``, until its compact JSON fits:

1. ``unread``: what no row reads anyway (``modules``, ``debug_meta``, ``spans``...; frame fields
   other than those of ``normalize.FRAME_KEYS`` and ``vars``), so nothing stored is lost;
2. ``vars``: frame local variables;
3. ``breadcrumbs``: all but the most recent ``KEEP_BREADCRUMBS``;
4. ``request.data``: request bodies;
5. ``extra``;
6. ``contexts``, but for the trace ids (``request_id`` falls back to the trace id);
7. ``strings``: strings longer than the longest length that fits (never below
   ``MIN_STRING_CHARS``) are cut to it, each scrubbed before it is cut so that a secret it holds
   cannot lose the part that makes it recognisable;
8. ``frames``: the middle frames of deep stacks, down to 10 frames at each end;
9. ``core``: only what the row's columns and the bug are made of: ids, level, time, the component,
   workspace and request tags, the message and the last exceptions, with a few frames each and
   short strings. It fits any cap above a few kilobytes; below that the event is refused (413).

Linear in the event's size: the event is serialised once to be measured and once at the end (to
check); in between, each cut subtracts the length of what it removed, which orjson's compact
output makes exact (an object's text is its members' texts, their colons and commas, and two
braces), and each removed part is serialised once. Steps that choose a length (``strings``,
``frames``, ``core``) take a few rounds at most, each over what is left of their own parts.

Grouping reads the exception types, the frames' modules and functions and the messages, which the
late steps can cut: ``oversized_row`` takes the fingerprint from the event as it arrived, so a
trimmed event joins the same bug as it would have whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shim.core.errors import InvalidEvent, PayloadTooLarge
from shim.core.event import exception_values, grouping_of, normalize_event, tags_of
from shim.core.grouping_v2 import TOP_LEVEL_KEYS
from shim.core.projection import FRAME_KEYS, LEGACY_KEYS, USED_KEYS
from shim.core.records import ErrorLog
from shim.core.scrub import DEFAULT_SCRUBBER, Scrubber

KEEP_BREADCRUMBS = 10
MIN_STRING_CHARS = 256
ELLIPSIS = "..."
# Characters past a cut that are scrubbed with what is kept: more than a card number with
# separators (37) or the 8 characters that make a bearer token.
_SCRUB_MARGIN = 64
# Frame fields the row reads, and ``vars``, which has a step of its own.
_FRAME_FIELDS = frozenset({*FRAME_KEYS, "vars"})
# Frames kept at each end of a deep stack, tried in turn until the event fits: a stack of 20
# frames or fewer is not deep (only the core step cuts it).
_FRAMES_KEPT = (50, 25, 10)
# (longest string, exceptions of the chain, frames at each end) of the core, tried in turn.
_CORE = ((1024, 4, 16), (256, 2, 4), (64, 1, 1), (16, 1, 1))
_CORE_SCALARS = ("event_id", "timestamp", "level", "platform", "logger", "transaction",
                 "release", "environment", "server_name", "dist")
_CORE_TAGS = ("component", "workspace_id", "request_id")
# What the fingerprints are computed from: what grouping version 2 reads (old clients' names
# included), and the event id, which a row's grouping uses when nothing else decides.
GROUPING_KEYS = tuple(sorted(TOP_LEVEL_KEYS))


@dataclass
class Trimmed:
    """The event after trimming (the same dict, changed in place) and what was cut."""

    event: dict[str, Any]
    received_bytes: int  # the size it arrived with
    measured_bytes: int  # its compact JSON before any cut
    stored_bytes: int  # its compact JSON after the cuts
    max_bytes: int
    steps: list[dict[str, Any]]

    @property
    def record(self) -> dict[str, Any]:
        """What the row's ``context["_trimmed"]`` says."""
        return {"received_bytes": self.received_bytes, "max_bytes": self.max_bytes,
                "stored_bytes": self.stored_bytes, "steps": self.steps}


def _length(value: object) -> int:
    return len(orjson.dumps(value))


def _drop_key(holder: dict[str, Any], key: str) -> int:
    """Remove ``holder[key]``; the bytes of JSON that saves."""
    value = holder.pop(key)
    return _length(key) + 1 + _length(value) + (1 if holder else 0)  # colon; a comma if any left


def _drop_items(items: list[Any], start: int, stop: int) -> int:
    """Remove ``items[start:stop]`` (not empty); the bytes of JSON that saves."""
    removed = items[start:stop]
    del items[start:stop]
    return sum(_length(item) for item in removed) + len(removed) - (0 if items else 1)


def _replace(holder: dict[str, Any] | list[Any], key: Any, new: object) -> int:
    old = holder[key]
    holder[key] = new
    return _length(old) - _length(new)


def _stacks(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every stack trace of the event (exceptions', threads', the event's own) with a frame list,
    found as ``shim.core.projection`` finds them to slim their frames."""
    holders: list[Any] = [event.get("stacktrace")]
    for key in ("exception", "threads"):
        raw = event.get(key)
        values = raw.get("values") if isinstance(raw, dict) else raw
        if isinstance(values, list):
            holders.extend(values)
        elif isinstance(raw, dict):
            holders.append(raw)  # a lone exception object (very old clients)
    for holder in holders:
        if isinstance(holder, dict):
            stack = holder if "frames" in holder else holder.get("stacktrace")
            if isinstance(stack, dict) and isinstance(stack.get("frames"), list):
                yield stack


def _drop_frame_fields(event: dict[str, Any],
                       unwanted: Callable[[dict[str, Any]], Iterable[str]]) -> int:
    """Remove the frame fields named ``unwanted`` from every stack; the bytes of JSON that saves
    (each stack's frames measured before and after: two serialisations per stack, not one per
    field of a frame)."""
    saved = 0
    for stack in _stacks(event):
        frames = stack["frames"]
        before = _length(frames)
        for frame in frames:
            if isinstance(frame, dict):
                for key in unwanted(frame):
                    del frame[key]
        saved += before - _length(frames)
    return saved


def _cut(text: str, chars: int, scrubber: Scrubber) -> str:
    """``text`` cut to ``chars`` characters and marked as cut. What is kept is scrubbed first,
    with a margin past the cut, so that a secret across the cut is still recognised whole
    (the row's scrubbing comes later, when the end of a token or card number is gone)."""
    if len(text) <= chars:
        return text
    kept = text[:chars + _SCRUB_MARGIN]
    if scrubber.suspect_text(orjson.dumps(kept)) is not None:  # the test scrub_event makes
        kept = scrubber.text(kept)
    return kept[:chars] + ELLIPSIS


# -- the steps: each cuts what it can (in place) and says how many bytes that saved ----

Step = Callable[[dict[str, Any], int, Scrubber], dict[str, Any] | None]


def _unread(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    saved = sum(_drop_key(event, key) for key in [k for k in event if k not in USED_KEYS])
    saved += _drop_frame_fields(event, lambda frame: frame.keys() - _FRAME_FIELDS)
    return {"bytes": saved} if saved else None


def _vars(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    saved = _drop_frame_fields(event, lambda frame: ("vars",) if "vars" in frame else ())
    return {"bytes": saved} if saved else None


def _breadcrumbs(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    raw = event.get("breadcrumbs")
    crumbs = raw.get("values") if isinstance(raw, dict) else raw
    if not isinstance(crumbs, list) or len(crumbs) <= KEEP_BREADCRUMBS:
        return None
    removed = len(crumbs) - KEEP_BREADCRUMBS  # SDKs append: the most recent are last
    return {"bytes": _drop_items(crumbs, 0, removed), "removed": removed}


def _request_data(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    request = event.get("request")
    if not isinstance(request, dict) or "data" not in request:
        return None
    return {"bytes": _drop_key(request, "data")}


def _extra(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    return {"bytes": _drop_key(event, "extra")} if "extra" in event else None


def _contexts(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    if "contexts" not in event:
        return None
    contexts = event["contexts"]
    trace = contexts.get("trace") if isinstance(contexts, dict) else None
    ids = ({k: trace[k] for k in ("trace_id", "span_id") if isinstance(trace.get(k), str)}
           if isinstance(trace, dict) else {})
    saved = _replace(event, "contexts", {"trace": ids}) if ids else _drop_key(event, "contexts")
    return {"bytes": saved} if saved else None


def _long_strings(root: dict[str, Any], longer_than: int
                  ) -> list[tuple[dict[str, Any] | list[Any], Any, str]]:
    """(container, key, string) of every string value longer than ``longer_than``. Walked with
    a list, not recursion: orjson reads nesting deeper than Python's recursion limit."""
    found: list[tuple[dict[str, Any] | list[Any], Any, str]] = []
    pending: list[dict[str, Any] | list[Any]] = [root]
    while pending:
        holder = pending.pop()
        pairs = holder.items() if type(holder) is dict else enumerate(holder)
        for key, value in pairs:
            kind = type(value)  # (orjson makes exactly these types; ``type`` is quicker here)
            if kind is str:
                if len(value) > longer_than:
                    found.append((holder, key, value))
            elif kind is dict or kind is list:
                pending.append(value)
    return found


def _longest_fitting(sizes: list[tuple[int, int]], need: int) -> int:
    """The longest length (not below ``MIN_STRING_CHARS``) such that cutting the strings of
    (characters, bytes of JSON) ``sizes`` to it is estimated to save ``need`` bytes, supposing
    each kept part is as dense as its whole string (escapes and multi-byte characters spread
    evenly). Between two lengths of ``sizes`` the saving is linear in the length cut to, so one
    pass down the sorted lengths finds it."""
    order = sorted(sizes, reverse=True)
    fixed = density = 0.0  # over the strings longer than the lengths of the current stretch
    for index, (length, size) in enumerate(order):
        fixed += size - 2 - len(ELLIPSIS)
        density += (size - 2) / length
        floor = max(order[index + 1][0] if index + 1 < len(order) else 0, MIN_STRING_CHARS)
        chars = min(length - 1, int((fixed - need) / density))
        if chars >= floor:
            return chars
    return MIN_STRING_CHARS


def _strings(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    found = _long_strings(event, MIN_STRING_CHARS)
    sizes = [(len(text), _length(text)) for _, _, text in found]
    saved = chars = 0
    cut: set[int] = set()
    ceiling = max((length for length, _ in sizes), default=0)
    while saved < excess and ceiling > MIN_STRING_CHARS:
        chars = min(_longest_fitting(sizes, excess - saved), ceiling - 1)
        for index, ((holder, key, _), (length, size)) in enumerate(zip(found, sizes,
                                                                       strict=True)):
            if length > chars:
                text = _cut(holder[key], chars, scrubber)
                holder[key] = text
                sizes[index] = (len(text), _length(text))
                saved += size - sizes[index][1]
                cut.add(index)
        # The estimate may have been short: the next round cuts at least a tenth shorter.
        ceiling = min(chars, ceiling * 9 // 10)
    if not cut:
        return None
    return {"bytes": saved, "strings": len(cut), "max_chars": chars}


def _deep_frames(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    saved = removed = kept = 0
    stacks = list(_stacks(event))
    for keep in _FRAMES_KEPT:
        if saved >= excess:
            break
        for stack in stacks:
            frames = stack["frames"]
            if len(frames) > 2 * keep:
                before = _length(frames)
                removed += len(frames) - 2 * keep
                del frames[keep:-keep]
                saved += before - _length(frames)
                kept = keep
    return {"bytes": saved, "frames": removed, "kept_each_end": kept} if removed else None


def _core_of(event: dict[str, Any], chain: int, ends: int) -> dict[str, Any]:
    """The event reduced to what the row's columns and the bug are made of (the last ``chain``
    exceptions, ``ends`` frames at each end of a stack)."""
    core = {k: event[k] for k in _CORE_SCALARS
            if isinstance(event.get(k), str | int | float | bool)}
    tags = tags_of(event)
    if kept_tags := {k: tags[k] for k in _CORE_TAGS if k in tags}:
        core["tags"] = kept_tags
    contexts = event.get("contexts")
    trace = contexts.get("trace") if isinstance(contexts, dict) else None
    if isinstance(trace, dict) and isinstance(trace.get("trace_id"), str):
        core["contexts"] = {"trace": {"trace_id": trace["trace_id"]}}
    for key in ("logentry", "message"):
        raw = event.get(key)
        if isinstance(raw, str):
            core[key] = raw
        elif isinstance(raw, dict):
            core[key] = {k: raw[k] for k in ("message", "formatted") if isinstance(raw.get(k), str)}
    values = exception_values(event)
    if values:
        kept = [_core_value(value, ends) for value in values[-chain:]]
        if any(isinstance(v.get("mechanism"), dict) and v["mechanism"].get("handled") is False
               for v in values[:-chain]):
            kept[-1]["mechanism"] = {**kept[-1].get("mechanism", {}), "handled": False}
        core["exception"] = {"values": kept}
    else:
        stack = next(_stacks(event), None)  # a message's attached stack trace, if any
        if stack is not None:
            core["stacktrace"] = {"frames": _core_frames(stack["frames"], ends)}
    return core


def _core_value(value: dict[str, Any], ends: int) -> dict[str, Any]:
    kept = {k: value[k] for k in ("type", "value", "module") if isinstance(value.get(k), str)}
    mechanism = value.get("mechanism")
    if isinstance(mechanism, dict):
        kept["mechanism"] = {k: mechanism[k] for k in ("type", "handled") if k in mechanism
                             and isinstance(mechanism[k], str | bool)}
    stack = value if "frames" in value else value.get("stacktrace")
    if isinstance(stack, dict) and isinstance(stack.get("frames"), list):
        kept["stacktrace"] = {"frames": _core_frames(stack["frames"], ends)}
    return kept


def _core_frames(frames: list[Any], ends: int) -> list[dict[str, Any]]:
    chosen = frames if len(frames) <= 2 * ends else frames[:ends] + frames[-ends:]
    return [{k: frame[k] for k in FRAME_KEYS if isinstance(frame.get(k), str | int | bool)}
            for frame in chosen if isinstance(frame, dict)]


def _core(event: dict[str, Any], excess: int, scrubber: Scrubber) -> dict[str, Any] | None:
    size = _length(event)
    for chars, chain, ends in _CORE:
        core = _core_of(event, chain, ends)
        for holder, key, text in _long_strings(core, chars):
            holder[key] = _cut(text, chars, scrubber)
        core_size = _length(core)
        if size - core_size >= excess:
            event.clear()
            event.update(core)
            return {"bytes": size - core_size, "max_chars": chars, "exceptions": chain,
                    "kept_each_end": ends}
    return None


STEPS: tuple[tuple[str, Step], ...] = (
    ("unread", _unread),
    ("vars", _vars),
    ("breadcrumbs", _breadcrumbs),
    ("request.data", _request_data),
    ("extra", _extra),
    ("contexts", _contexts),
    ("strings", _strings),
    ("frames", _deep_frames),
    ("core", _core),
)


def trim(event: dict[str, Any], max_bytes: int, received_bytes: int,
         scrubber: Scrubber = DEFAULT_SCRUBBER) -> Trimmed:
    """Cut ``event`` in place until its compact JSON is at most ``max_bytes`` (see the module
    doc). Raises ``PayloadTooLarge`` when even its core does not fit, ``InvalidEvent`` when it
    nests deeper than JSON is written."""
    for legacy, modern in LEGACY_KEYS.items():  # as shim.core.projection maps them
        if legacy in event:
            value = event.pop(legacy)
            event.setdefault(modern, value)
    try:
        measured = size = _length(event)
    except orjson.JSONEncodeError:
        raise InvalidEvent("event nests too deeply to be stored") from None
    steps: list[dict[str, Any]] = []
    for name, step in STEPS:
        if size <= max_bytes:
            break
        done = step(event, size - max_bytes, scrubber)
        if done is not None:
            steps.append({"cut": name, **done})
            size -= done["bytes"]
    stored = _length(event) if steps else measured
    if stored > max_bytes:
        raise PayloadTooLarge(f"event item is {received_bytes} bytes and still {stored} once "
                              f"trimmed; the limit is {max_bytes}")
    return Trimmed(event, received_bytes, measured, stored, max_bytes, steps)


def oversized_row(event: object, received_bytes: int, *, max_bytes: int,
                  event_id: str | None, project_id: str, received: datetime, bug_level: str,
                  item_type: str = "event", scrubber: Scrubber = DEFAULT_SCRUBBER,
                  with_v1: bool = False) -> tuple[ErrorLog, bool]:
    """The row of an event that arrived larger than ``max_bytes``, and whether anything was cut:
    trimmed to fit, with ``context["_trimmed"]`` saying what was cut, and the grouping of the
    event as it arrived (made once, before any cut, from the parts grouping reads)."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(event).__name__}")
    event_id, grouped = grouping_of({k: event[k] for k in GROUPING_KEYS if k in event},
                                    event_id=event_id, scrubber=scrubber, with_v1=with_v1)
    trimmed = trim(event, max_bytes, received_bytes, scrubber)
    cut = bool(trimmed.steps)  # else its compact JSON fits: nothing was cut
    row = normalize_event(event, event_id=event_id, project_id=project_id, received=received,
                          bug_level=bug_level, item_type=item_type, scrubber=scrubber,
                          annotations={"_trimmed": trimmed.record} if cut else None,
                          grouped=grouped)
    return row, cut
