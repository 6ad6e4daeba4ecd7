"""Turn one Sentry event (a JSON object) into an ``ErrorLog`` row, per DESIGN.md's table contract.

Pure: the caller passes the ids, the receive time and the bug level. Accepts what current SDKs send
and what old ones did (``sentry.interfaces.*`` keys, a bare exception list, numeric levels, tags as
pairs).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

from shim.core import grouping, grouping_v2, policy, projection, stacktrace
from shim.core.envelope import parse_event_id
from shim.core.errors import InvalidEnvelope, InvalidEvent
from shim.core.levels import normalize_level
from shim.core.projection import CONTEXT_KEYS
from shim.core.records import GROUPING_KEY, ErrorLog, Grouped, context_json, new_row_id
from shim.core.scrub import DEFAULT_SCRUBBER, Scrubber, scrub_event

# A UTC time as Python SDKs write it; any other form is parsed and written again.
_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def iso_utc(value: object, fallback: datetime) -> str:
    """An event timestamp (epoch seconds or RFC 3339 text) as ISO 8601 UTC with microseconds."""
    if isinstance(value, str) and len(value) == 27 and _CANONICAL.fullmatch(value):
        # What Python SDKs send ("2026-11-29T02:41:17.438040Z") is already the text we write,
        # once it is known to be a valid time.
        try:
            datetime.fromisoformat(value[:26])
            return value[:26] + "+00:00"
        except ValueError:
            pass
    return isoformat_utc(moment_of(value, fallback))


def moment_of(value: object, fallback: datetime) -> datetime:
    """An event timestamp (epoch seconds or RFC 3339 text) as an aware time; ``fallback`` when it
    is missing or not a time."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            # UTC conversion can itself overflow ("0001-01-01T00:00:00+01:00").
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return fallback


_SECONDS_TEXT: dict[tuple[int, int, int, int, int, int], str] = {}


def isoformat_utc(moment: datetime) -> str:
    """An aware time as ISO 8601 UTC with microseconds, ``isoformat(timespec="microseconds")``
    in UTC. The text up to the second is remembered: rows arrive with a few distinct seconds
    each second, and ``isoformat`` of an aware time costs several times the rest."""
    moment = moment.astimezone(UTC)
    key = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    seconds = _SECONDS_TEXT.get(key)
    if seconds is None:
        if len(_SECONDS_TEXT) >= 4096:
            _SECONDS_TEXT.clear()
        seconds = _SECONDS_TEXT[key] = moment.replace(microsecond=0, tzinfo=None).isoformat()
    return f"{seconds}.{moment.microsecond:06d}+00:00"


def tags_of(event: dict[str, Any]) -> dict[str, str]:
    """Tags as a dict of strings; SDKs send either an object or a list of ``[key, value]`` pairs."""
    raw = event.get("tags")
    pairs: list[Any]
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [p for p in raw if isinstance(p, list | tuple) and len(p) == 2]
    else:
        return {}
    return {str(k): "" if v is None else str(v) for k, v in pairs}


def exception_values(event: dict[str, Any]) -> list[dict[str, Any]]:
    raw = event.get("exception")
    if isinstance(raw, dict):
        values = raw.get("values")
        if values is None and ("type" in raw or "value" in raw):
            values = [raw]  # very old clients sent one exception object
    else:
        values = raw
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, dict)]


def message_of(event: dict[str, Any]) -> tuple[str, str | None]:
    """(formatted message, template before formatting) from ``logentry`` or ``message``."""
    for key in ("logentry", "message"):
        raw = event.get(key)
        if isinstance(raw, str) and raw:
            return raw, raw
        if isinstance(raw, dict):
            template = raw.get("message")
            formatted = raw.get("formatted")
            template = template if isinstance(template, str) and template else None
            formatted = formatted if isinstance(formatted, str) and formatted else None
            if template or formatted:
                params = raw.get("params")
                if formatted is None and template is not None and params:
                    formatted = _format(template, params)
                return formatted or template or "", template or formatted
    return "", None


# Width and precision of a %-conversion, after its "%(name)" key if any.
_CONVERSION = re.compile(r"[-+ #0]*(\*|[0-9]*)(?:\.(\*|[0-9]*))?")
# Formatting a template is skipped when the text could pass this many characters: a tiny event
# must not be able to ask for gigabytes ("%.2000000000f", or "%(a)s" repeated with a long "a").
_OUTPUT_BUDGET = 1_000_000
_NUMBER_TEXT = 330  # the longest a JSON number prints as: "%f" of 1e308


def _conversions(template: str) -> tuple[int, int] | None:
    """How many %-conversions ``template`` has and their total width and precision (None when
    one takes its width from the arguments, "%*d")."""
    count = padding = 0
    start = template.find("%")
    while start >= 0:
        pos = start + 1
        if template.startswith("(", pos):  # a mapping key, in which parentheses may nest
            depth = 0
            while pos < len(template):
                depth += {"(": 1, ")": -1}.get(template[pos], 0)
                pos += 1
                if depth == 0:
                    break
        match = _CONVERSION.match(template, pos)
        assert match is not None  # every part of the pattern is optional
        for number in match.groups():
            if number == "*":
                return None
            padding += int(number[:8]) if number else 0
        count += 1
        start = template.find("%", match.end() + 1)
    return count, padding


def _fits(template: str, params: list[Any] | dict[str, Any]) -> bool:
    """Whether the formatted text is sure to stay within ``_OUTPUT_BUDGET``."""
    shape = _conversions(template)
    if shape is None:
        return False
    count, padding = shape
    values = params.values() if isinstance(params, dict) else params
    # ascii() is the longest of str(), repr() and ascii() ("%s", "%r", "%a").
    sizes = [max(len(ascii(value)), _NUMBER_TEXT) for value in values]
    # A list is used once, in order; a mapping's values may be used by every conversion.
    arguments = count * max(sizes, default=0) if isinstance(params, dict) else sum(sizes)
    return len(template) + padding + arguments <= _OUTPUT_BUDGET


def _format(template: str, params: object) -> str:
    if not isinstance(params, list | dict) or not _fits(template, params):
        return template
    try:
        return template % (params if isinstance(params, dict) else tuple(params))
    except (TypeError, ValueError, KeyError, OverflowError):  # "%c" of a huge number overflows
        return template


def _is_unhandled(values: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(v.get("mechanism"), dict) and v["mechanism"].get("handled") is False
        for v in values
    )


def _thread_frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Frames attached to a message event (``attach_stacktrace``), if any."""
    if isinstance(event.get("stacktrace"), dict):
        return stacktrace.frames_of({"stacktrace": event["stacktrace"]})
    threads = event.get("threads")
    values = threads.get("values") if isinstance(threads, dict) else threads
    if isinstance(values, list):
        for thread in values:
            if isinstance(thread, dict) and (frames := stacktrace.frames_of(thread)):
                return frames
    return []


def context_of(event: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    """The ``context`` column of an event: its kept top-level keys, the tags as read, and the
    breadcrumbs as a list."""
    context = {key: event[key] for key in CONTEXT_KEYS
               if key not in ("tags", "breadcrumbs") and event.get(key) not in (None, {}, [])}
    if tags:  # the tags as read, never what was sent (pairs, or junk)
        context["tags"] = tags
    # Last, and the same whatever else the object holds: the projection reads only its list.
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, dict):
        context["breadcrumbs"] = breadcrumbs.get("values") or []
    elif breadcrumbs not in (None, {}, []):  # a list (old clients), or junk kept as sent
        context["breadcrumbs"] = breadcrumbs
    return context


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class _Facts(NamedTuple):
    """What an event's exceptions and message say, for its row and its grouping."""

    values: list[dict[str, Any]]
    typed: list[dict[str, Any]]
    error_type: str | None
    error_message: str | None
    message: str
    template: str | None


def _facts(event: dict[str, Any], message: str, template: str | None) -> _Facts:
    values = exception_values(event)
    typed = [v for v in values if v.get("type")]
    if typed:
        primary = typed[-1]
        return _Facts(values, typed, str(primary["type"]), _text(primary.get("value")),
                      message or stacktrace.exception_line(primary), template)
    # JavaScript's captureMessage sends a synthetic exception with no type: a message.
    if values and not message:
        message = str(values[-1].get("value") or "")
        template = template or message or None
    return _Facts(values, typed, None, None, message, template)


def _stack_trace(event: dict[str, Any], facts: _Facts) -> str | None:
    if facts.typed:
        return stacktrace.render(facts.typed)
    frames = [f for v in facts.values for f in stacktrace.frames_of(v)] or _thread_frames(event)
    if not frames:
        return None
    return stacktrace.render([{"type": "Message", "value": facts.message,
                               "stacktrace": {"frames": frames}}])


def _event_id(event: dict[str, Any], event_id: str | None) -> str:
    """The envelope's event id, else the event's own, else a new one."""
    if event_id is not None:
        return event_id
    raw_id = event.get("event_id")
    try:
        return parse_event_id(raw_id) if raw_id else uuid.uuid4().hex
    except InvalidEnvelope:
        raise InvalidEvent(f"event_id {str(raw_id)[:64]!r} is not a UUID") from None


def _grouped(event: dict[str, Any], event_id: str, facts: _Facts, level: str,
             logger: str | None, with_v1: bool) -> Grouped:
    """Version 2's grouping of the (read and scrubbed) event, and version 1's hash if asked."""
    if event.get("event_id") != event_id:  # the fallback variant tells events apart by it
        event = {**event, "event_id": event_id}
    found = grouping_v2.group(event)
    return Grouped(found.hash, _v1_fingerprint(event, facts, level, logger) if with_v1 else None,
                   found.version, found.info())


def _v1_fingerprint(event: dict[str, Any], facts: _Facts, level: str, logger: str | None) -> str:
    """Version 1's fingerprint, as it was computed before version 2 (frozen)."""
    last = _last_frame(facts.typed)
    function = _text(last.get("function")) if last else None
    module = _text(last.get("module")) if last else None
    variables = {
        "type": facts.error_type, "error.type": facts.error_type,
        "error.value": facts.error_message, "level": level, "logger": logger,
        "message": facts.message, "transaction": _text(event.get("transaction")),
        "function": function, "stack.function": function,
        "module": module, "stack.module": module,
    }
    return grouping.fingerprint(event.get("fingerprint"), facts.typed, facts.template, variables)


def grouping_of(event: object, *, event_id: str | None, scrubber: Scrubber = DEFAULT_SCRUBBER,
                with_v1: bool = False) -> tuple[str, Grouped]:
    """The event id and the grouping ``normalize_event`` would give the event, for a caller
    about to change it (``shim.core.trim`` cuts oversized events after grouping them whole)."""
    used, text = projection.read(event, scrubber)
    event = scrub_event(used, scrubber, text)
    event_id = _event_id(event, event_id)
    message, template = message_of(event)
    facts = _facts(event, message, template)
    return event_id, _grouped(event, event_id, facts, normalize_level(event.get("level")),
                              _text(event.get("logger")), with_v1)


def normalize_event(
    event: object,
    *,
    event_id: str | None,
    project_id: str,
    received: datetime,
    bug_level: str,
    item_type: str = "event",
    scrubber: Scrubber = DEFAULT_SCRUBBER,
    annotations: dict[str, Any] | None = None,
    with_v1: bool = False,
    grouped: Grouped | None = None,
) -> ErrorLog:
    """The ``error_logs`` row for one event (with its ``BugSignal`` when the policy says so).

    ``event`` is an event item's payload as it arrived (``bytes``) or a JSON value decoded
    already; either way it is read once, by ``shim.core.projection.read``. Secrets are scrubbed
    first, so nothing derived from the event (message, stack trace, context, fingerprint) ever
    holds them; the caller's value is untouched. ``annotations`` are added to the row's context
    (``shim.core.trim`` records there what it cut).

    The fingerprint is grouping version 2's hash; ``with_v1`` (during the transition from
    version 1, ``SHIM_GROUPING_TRANSITION_DAYS``) adds version 1's, by which the store finds a
    bug opened before the upgrade. ``grouped``: the grouping already made (``grouping_of``) of
    the event as it arrived, for an event about to be cut (``shim.core.trim``)."""
    used, text = projection.read(event, scrubber)
    event = scrub_event(used, scrubber, text)
    event_id = _event_id(event, event_id)

    tags = tags_of(event)
    level = normalize_level(event.get("level"))
    logger = _text(event.get("logger"))
    component = tags.get("component") or logger or "unknown"
    message, template = message_of(event)
    facts = _facts(event, message, template)
    if grouped is None:
        grouped = _grouped(event, event_id, facts, level, logger, with_v1)
    typed, error_type, error_message = facts.typed, facts.error_type, facts.error_message
    message = facts.message
    trace = event.get("contexts", {}).get("trace") if isinstance(event.get("contexts"), dict) else None
    request_id = tags.get("request_id") or (
        _text(trace.get("trace_id")) if isinstance(trace, dict) else None
    )

    description = "\n".join(
        part for part in (error_message or message, f"Component: {component}",
                          f"Environment: {event.get('environment')}"
                          if event.get("environment") else "") if part
    )
    bug = policy.bug_signal(
        level=level, unhandled=_is_unhandled(typed), bug_level=bug_level, component=component,
        error_type=error_type, message=message, description=description,
        grouping_version=grouped.version,
    )
    return ErrorLog(
        id=new_row_id(),
        event_id=event_id,
        project_id=project_id,
        log_level=level,
        component=component,
        message=message,
        context=context_json({**context_of(event, tags), **(annotations or {}),
                              GROUPING_KEY: grouped.info}),
        error_type=error_type,
        error_message=error_message,
        stack_trace=_stack_trace(event, facts),
        request_id=request_id,
        workspace_id=tags.get("workspace_id") or None,
        fingerprint=grouped.fingerprint,
        fingerprint_v1=grouped.fingerprint_v1,
        created_at=iso_utc(event.get("timestamp"), received),
        item_type=item_type,
        bug=bug,
    )


def _last_frame(values: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The innermost frame of the last exception that has frames: in-app if any is."""
    for value in reversed(values):
        frames = stacktrace.frames_of(value)
        if frames:
            return next((f for f in reversed(frames) if f.get("in_app") is True), frames[-1])
    return None
