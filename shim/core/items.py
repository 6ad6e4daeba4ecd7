"""From a parsed envelope (or a legacy store body) to the ``Batch`` the writer stores. Pure.

Every item is counted by type. ``event`` items become error_logs rows (and bug signals), each record
of a ``log`` item becomes a row without a bug, ``check_in`` items become check-ins; every other
type, known or not, is only counted. An item that cannot be used is skipped and described in
``problems``; the good items of the same envelope are kept.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from shim.core import grouping, trim
from shim.core.envelope import Envelope, Item, parse_event_id
from shim.core.errors import BadRequest, InvalidEnvelope, InvalidEvent, PayloadTooLarge, ShimError
from shim.core.event import iso_utc, isoformat_utc, normalize_event
from shim.core.levels import normalize_level, otel_level
from shim.core.records import Batch, CheckIn, ErrorLog, context_json, new_row_id
from shim.core.scrub import DEFAULT_SCRUBBER, Scrubber

log = logging.getLogger("shim.ingest")

CHECK_IN_STATUSES = ("in_progress", "ok", "error")
MAX_SLUG = 200
# Sentry's own limits on a check-in's names: what is longer is no name a monitor could have.
MAX_ENVIRONMENT = 64
MAX_RELEASE = 200
# The attribute in which a Sentry Logs record names the event id it was stored under before.
REPLAYED_ID = "shim.event_id"
_EVENT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Limits:
    bug_level: str
    max_event_bytes: int
    scrubber: Scrubber = DEFAULT_SCRUBBER
    # Until when events also carry grouping version 1's hash (the transition from it, see
    # ``shim.core.event.normalize_event``); None: not at all.
    grouping_v1_until: datetime | None = None

    def with_v1(self, received: datetime) -> bool:
        """Whether an event received then is also grouped by version 1."""
        return self.grouping_v1_until is not None and received < self.grouping_v1_until


@dataclass
class Ingested:
    batch: Batch
    event_id: str | None = None  # the id to answer with; only when an event was sent
    problems: list[dict[str, Any]] = field(default_factory=list)
    trimmed: int = 0  # events stored trimmed, being over ``max_event_bytes`` (``shim.core.trim``)

    @property
    def status(self) -> int:
        """The status of the first problem (200 when there was none)."""
        return int(self.problems[0]["status"]) if self.problems else 200


def ingest_envelope(
    envelope: Envelope, project_id: str, received: datetime, limits: Limits
) -> Ingested:
    batch = Batch(received_at=isoformat_utc(received))
    result = Ingested(batch)
    counts: Counter[str] = Counter()
    copies: Counter[bytes] = Counter()  # the envelope's log records by content
    for number, item in enumerate(envelope.items, start=1):
        counts[item.type] += 1
        try:
            _ingest_item(item, envelope, project_id, received, limits, result, copies)
        except ShimError as exc:
            result.problems.append(
                {"item": number, "type": item.type, "status": exc.status, "detail": exc.detail}
            )
        except Exception:  # a bug of ours must not cost the envelope's other items
            log.exception("could not process item %d (%s)", number, item.type)
            result.problems.append(
                {"item": number, "type": item.type, "status": 400,
                 "detail": "item could not be processed (logged on the server)"}
            )
    if envelope.problem:
        result.problems.append(
            {"item": len(envelope.items) + 1, "type": None, "status": 400,
             "detail": envelope.problem}
        )
    batch.item_counts.update(counts)
    return result


def ingest_store(
    event: object, project_id: str, received: datetime, limits: Limits, size: int = 0
) -> Ingested:
    """A legacy store body's event; ``size``, its length as received, decides whether it is
    trimmed (``shim.core.trim``)."""
    cut = False
    if size > limits.max_event_bytes:
        row, cut = trim.oversized_row(event, size, max_bytes=limits.max_event_bytes,
                                      event_id=None, project_id=project_id, received=received,
                                      bug_level=limits.bug_level, item_type="store",
                                      scrubber=limits.scrubber,
                                      with_v1=limits.with_v1(received))
    else:
        row = normalize_event(event, event_id=None, project_id=project_id, received=received,
                              bug_level=limits.bug_level, item_type="store",
                              scrubber=limits.scrubber, with_v1=limits.with_v1(received))
    batch = Batch(error_logs=[row], item_counts={"event": 1},
                  received_at=isoformat_utc(received))
    return Ingested(batch, event_id=row.event_id, trimmed=int(cut))


def _payload(item: Item, limits: Limits) -> bytes:
    if len(item.payload) > limits.max_event_bytes:
        raise PayloadTooLarge(
            f"{item.type} item is {len(item.payload)} bytes; the limit is {limits.max_event_bytes}"
        )
    if not item.payload or item.payload.isspace():  # (strip() would copy the payload)
        raise InvalidEvent(f"{item.type} item has an empty payload")
    return item.payload


def _json(item: Item, payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"{item.type} item payload is not valid JSON: {exc}") from None


def _payload_json(item: Item, limits: Limits) -> Any:
    return _json(item, _payload(item, limits))


def _ingest_item(
    item: Item,
    envelope: Envelope,
    project_id: str,
    received: datetime,
    limits: Limits,
    result: Ingested,
    copies: Counter[bytes],
) -> None:
    if item.type == "event":
        if len(item.payload) > limits.max_event_bytes:  # trimmed to fit, not refused
            row, cut = trim.oversized_row(
                _json(item, item.payload), len(item.payload), max_bytes=limits.max_event_bytes,
                event_id=envelope.event_id, project_id=project_id, received=received,
                bug_level=limits.bug_level, scrubber=limits.scrubber,
                with_v1=limits.with_v1(received))
            result.trimmed += cut
        else:
            row = normalize_event(_payload(item, limits), event_id=envelope.event_id,
                                  project_id=project_id, received=received,
                                  bug_level=limits.bug_level, scrubber=limits.scrubber,
                                  with_v1=limits.with_v1(received))
        result.batch.error_logs.append(row)
        result.event_id = result.event_id or row.event_id
    elif item.type == "log":
        payload = _payload_json(item, limits)
        records = payload.get("items") if isinstance(payload, dict) else None
        if not isinstance(records, list):
            raise InvalidEvent("log item must be an object with an `items` list")
        for record in limits.scrubber.value(records):
            if isinstance(record, dict):
                result.batch.error_logs.append(
                    log_record(record, copies, envelope, project_id, received)
                )
    elif item.type == "check_in":
        result.batch.check_ins.append(
            check_in(_payload_json(item, limits), project_id, received)
        )


def _attributes(record: dict[str, Any]) -> dict[str, Any]:
    """Sentry Logs attributes (``{"key": {"value": v, "type": t}}``) flattened to ``{key: v}``."""
    raw = record.get("attributes")
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): v.get("value") if isinstance(v, dict) and "value" in v else v
        for k, v in raw.items()
    }


def log_record_id(record: dict[str, Any], copies: Counter[bytes]) -> str:
    """The event id of a Sentry Logs record, which carries none: a hash of its content, so that a
    retried envelope, or the record sent again on its own, is recognised (rows are found by event
    id, as an event's are). Its place in the envelope does not count; only a record identical to
    an earlier one of the same envelope (same time, body and attributes) counts how many came
    before it, so that both are kept. The first copy hashes as ``[0, record]``, as every record
    did before the place stopped counting, so the ids of those rows did not change."""
    content = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    copy = copies[content]
    copies[content] = copy + 1
    # The same bytes as orjson.dumps([copy, record]) with the same options.
    return hashlib.sha256(b"[%d,%s]" % (copy, content)).hexdigest()[:32]


def _claimed_id(attributes: dict[str, Any]) -> str | None:
    """The id a record names for itself in the ``shim.event_id`` attribute (``shim replay`` sends
    each logged row with the id it was stored under), taken out of the attributes."""
    claimed = attributes.pop(REPLAYED_ID, None)
    if isinstance(claimed, str) and _EVENT_ID.fullmatch(claimed):
        return claimed
    return None


def _log_level(record: dict[str, Any]) -> str:
    if isinstance(record.get("level"), str):
        return normalize_level(record["level"], default="info")
    number = record.get("severity_number")
    if isinstance(number, int) and not isinstance(number, bool):
        return otel_level(number)
    return "info"


def log_record(
    record: dict[str, Any], copies: Counter[bytes], envelope: Envelope, project_id: str,
    received: datetime,
) -> ErrorLog:
    """One Sentry Logs record as an error_logs row (logs never open bugs). ``copies`` counts the
    records of its envelope so far by content (see ``log_record_id``)."""
    attributes = _attributes(record)
    body = str(record.get("body") if record.get("body") is not None else "")
    template = attributes.get("sentry.message.template")
    logger = attributes.get("logger.name")
    trace_id = record.get("trace_id")
    digest = _claimed_id(attributes) or log_record_id(record, copies)
    context: dict[str, Any] = {"attributes": attributes}
    for key, attribute in (("environment", "sentry.environment"), ("release", "sentry.release"),
                           ("server_name", "server.address")):
        if attributes.get(attribute) is not None:
            context[key] = attributes[attribute]
    if isinstance(envelope.headers.get("sdk"), dict):
        context["sdk"] = envelope.headers["sdk"]
    return ErrorLog(
        id=new_row_id(),
        event_id=digest,
        project_id=project_id,
        log_level=_log_level(record),
        component=str(attributes.get("component") or logger or "unknown"),
        message=body,
        context=context_json(context),
        error_type=None,
        error_message=None,
        stack_trace=None,
        request_id=_str_or_none(attributes.get("request_id") or trace_id),
        workspace_id=_str_or_none(attributes.get("workspace_id")),
        fingerprint=grouping.default_fingerprint(
            [], str(template) if template else body, str(logger) if logger else None
        ),
        created_at=iso_utc(record.get("timestamp"), received),
        item_type="log",
    )


def _str_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def check_in(payload: object, project_id: str, received: datetime) -> CheckIn:
    """A cron monitor check-in; raises ``InvalidEvent`` naming what is missing."""
    if not isinstance(payload, dict):
        raise InvalidEvent("check_in item must be a JSON object")
    slug = payload.get("monitor_slug")
    status = payload.get("status")
    if not isinstance(slug, str) or not slug:
        raise InvalidEvent("check_in item has no monitor_slug")
    if status not in CHECK_IN_STATUSES:
        raise InvalidEvent(f"check_in status must be one of {', '.join(CHECK_IN_STATUSES)}")
    for name, longest in (("monitor_slug", MAX_SLUG), ("environment", MAX_ENVIRONMENT),
                          ("release", MAX_RELEASE)):
        if isinstance(payload.get(name), str) and len(payload[name]) > longest:
            raise InvalidEvent(f"check_in {name} is longer than {longest} characters")
    raw_id = payload.get("check_in_id")
    try:
        parsed_id = parse_event_id(raw_id) if raw_id else None
    except InvalidEnvelope:
        raise InvalidEvent(f"check_in_id {str(raw_id)[:64]!r} is not a UUID") from None
    check_in_id = parsed_id or hashlib.sha256(
        orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    duration = payload.get("duration")
    config = payload.get("monitor_config")
    return CheckIn(
        check_in_id=check_in_id,
        project_id=project_id,
        monitor_slug=slug,
        status=status,
        duration=float(duration) if isinstance(duration, int | float)
        and not isinstance(duration, bool) else None,
        environment=_str_or_none(payload.get("environment")),
        release=_str_or_none(payload.get("release")),
        monitor_config=config if isinstance(config, dict) else None,
        created_at=iso_utc(payload.get("timestamp"), received),
    )


def http_check_in(slug: str, fields: Mapping[str, object], project_id: str,
                  received: datetime) -> CheckIn:
    """A check-in sent to ``/api/<project>/cron/<slug>/<key>/`` by a script without an SDK:
    ``status`` (required), ``check_in_id``, ``environment`` (default ``production``, as the SDK
    and Sentry's HTTP endpoint), ``release``, ``duration`` (seconds) and ``monitor_config``,
    from the query or a JSON body. It becomes the same ``CheckIn`` an SDK's ``check_in`` item
    does; without a ``check_in_id`` it gets a new one (a new check-in, not a repeat)."""
    if not slug or len(slug) > MAX_SLUG:
        raise BadRequest(f"the monitor slug must be 1 to {MAX_SLUG} characters")
    status = fields.get("status")
    if status not in CHECK_IN_STATUSES:
        raise BadRequest(f"status {str(status)[:32]!r} must be one of "
                         f"{', '.join(CHECK_IN_STATUSES)}", field="status")
    for name in ("check_in_id", "environment", "release"):
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise BadRequest(f"{name} must be a string", field=name)
    if fields.get("monitor_config") is not None and not isinstance(fields["monitor_config"], dict):
        raise BadRequest("monitor_config must be a JSON object (send it in a JSON body)",
                         field="monitor_config")
    payload: dict[str, object] = {
        "check_in_id": fields.get("check_in_id") or uuid.uuid4().hex, "monitor_slug": slug,
        "status": status, "environment": fields.get("environment") or "production"}
    for name in ("release", "monitor_config"):
        if fields.get(name) is not None:
            payload[name] = fields[name]
    if fields.get("duration") is not None:
        payload["duration"] = _duration(fields["duration"])
    return check_in(payload, project_id, received)


def _duration(raw: object) -> float:
    """Seconds, from a number or its text; finite and not negative."""
    try:
        seconds = float(raw) if isinstance(raw, str | int | float) else math.nan
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0) or isinstance(raw, bool):
        raise BadRequest(f"duration {str(raw)[:32]!r} must be a number of seconds",
                         field="duration")
    return seconds
