"""What ``shim replay`` sends: recorded requests, envelope files, store events, backup log lines.

Owns reading inputs into ``Request`` objects (nothing is sent here). The inputs are:

- recorded requests: ``NAME.bin`` (the body exactly as sent, compressed or not) beside ``NAME.json``
  (``method``, ``path``, ``query``, ``headers`` as ``[name, value]`` pairs), as written by
  ``scripts/record_fixtures.py``;
- envelope files (``*.envelope``, or any file whose first line is a JSON envelope header);
- legacy store events (a file holding one JSON event object), sent to ``/store/``;
- backup log day files (``YYYY-MM-DD.jsonl``, and ``rejected.jsonl``): each ``error_log`` line is
  rebuilt into an event (``event_from_row``), each ``check_in`` line into a check-in envelope;
  ``status``, ``merge`` and ``item_counts`` lines are skipped and counted.

Directories are walked in name order (hidden files, such as the log's ``.applied``, are left out).
Rebuilding payloads from backup lines is pure.
"""

from __future__ import annotations

import re
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from shim import __version__
from shim.core.envelope import parse_envelope
from shim.core.errors import InvalidEnvelope
from shim.core.items import REPLAYED_ID
from shim.core.records import GROUPING_KEY

_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.jsonl")
_SDK = {"name": "shim.replay", "version": __version__}
# A JSON file is taken for a store event when it has one of these (current or legacy names).
_EVENT_KEYS = {"event_id", "exception", "message", "logentry", "level", "timestamp", "platform",
               "sentry.interfaces.Exception", "sentry.interfaces.Message"}


class ReplayError(Exception):
    """An input that cannot be replayed, or a target that cannot be reached (named in the message)."""


@dataclass(frozen=True)
class Request:
    """One request to send again; ``source`` names where it was read from."""

    source: str
    endpoint: str  # envelope | store
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()


@dataclass
class Inputs:
    """What was read: the requests to send, and what was left out and why."""

    requests: list[Request] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # what was read but is not a request
    unreadable: list[str] = field(default_factory=list)


# Reading inputs.


def read_inputs(paths: Sequence[Path]) -> Inputs:
    """Every request in ``paths`` (files, or directories walked in name order)."""
    inputs = Inputs()
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if not any(part.startswith(".") for part in child.relative_to(path).parts):
                    _read_file(child, inputs, named=False)
        elif path.exists():
            _read_file(path, inputs, named=True)
        else:
            inputs.unreadable.append(f"{path}: no such file or directory")
    return inputs


def _read_file(path: Path, inputs: Inputs, named: bool) -> None:
    try:
        if path.suffix == ".jsonl":
            if named or _DAY_FILE.fullmatch(path.name) or path.name == "rejected.jsonl":
                _read_backup_file(path, inputs)
            else:
                inputs.skipped["other files"] += 1
            return
        if path.suffix == ".bin" and _record(path.with_suffix(".json")) is not None:
            inputs.requests.append(_recorded_request(path))
            return
        if path.suffix == ".json" and _record(path) is not None:
            # Named directly: the request it describes; in a directory, its .bin stands for it.
            if named or not path.with_suffix(".bin").exists():
                inputs.requests.append(_recorded_request(path.with_suffix(".bin")))
            return
        data = path.read_bytes()
        request = _request_from_file(str(path), data)
    except (OSError, ReplayError) as exc:
        inputs.unreadable.append(f"{path}: {exc}")
        return
    if request is not None:
        inputs.requests.append(request)
    elif named:
        inputs.unreadable.append(f"{path}: neither an envelope, a JSON event nor a backup log")
    else:
        inputs.skipped["other files"] += 1


def _record(path: Path) -> dict[str, Any] | None:
    """The recorded request described by a ``.json`` file, or None when it is not one."""
    try:
        record = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if isinstance(record, dict) and isinstance(record.get("headers"), list) and "path" in record:
        return record
    return None


def _recorded_request(body_path: Path) -> Request:
    record = _record(body_path.with_suffix(".json"))
    if record is None:
        raise ReplayError(f"{body_path.with_suffix('.json')} is not a recorded request")
    try:
        body = body_path.read_bytes()
    except OSError as exc:
        raise ReplayError(str(exc)) from None
    headers = tuple((str(k), str(v)) for k, v in record["headers"])
    query = tuple(urllib.parse.parse_qsl(str(record.get("query") or ""), keep_blank_values=True))
    endpoint = "store" if str(record["path"]).rstrip("/").endswith("/store") else "envelope"
    return Request(str(body_path), endpoint, body, headers, query)


def _request_from_file(source: str, data: bytes) -> Request | None:
    """An envelope or a legacy JSON event; None when the bytes are neither."""
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):  # one JSON object: a store event (an envelope has item lines)
        if not _EVENT_KEYS & whole.keys():
            return None  # some other JSON document (a manifest, a config...)
        return Request(source, "store", data, (("Content-Type", "application/json"),))
    try:
        envelope = parse_envelope(data)
    except InvalidEnvelope:
        return None
    if not envelope.items:
        return None
    return Request(source, "envelope", data, (("Content-Type", "application/x-sentry-envelope"),))


def _read_backup_file(path: Path, inputs: Inputs) -> None:
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n"):  # still being written (or torn by a crash): not yet
                inputs.skipped["incomplete lines"] += 1
            elif line.strip():
                _read_backup_line(f"{path}:{number}", line, inputs)


def _read_backup_line(source: str, line: bytes | str, inputs: Inputs) -> None:
    try:
        data = orjson.loads(line)
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("not a backup log line of a known format")
        kind = data.get("kind")
        if kind == "error_log":
            inputs.requests.append(request_from_row(source, data["row"]))
        elif kind == "check_in":
            inputs.requests.append(Request(source, "envelope", envelope_bytes(
                {"sdk": _SDK}, [("check_in", check_in_payload(data["check_in"]))])))
        elif kind == "rejected":  # a batch the store refused: its lines, as they were logged
            for inner in data["lines"]:
                _read_backup_line(source, inner, inputs)
        elif kind in ("status", "merge", "item_counts"):
            inputs.skipped[f"{kind} lines"] += 1
        else:
            raise ValueError(f"unknown line kind {kind!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSONDecodeError too
        inputs.unreadable.append(f"{source}: {exc}")


# Backup log lines back into Sentry payloads. Pure.


def request_from_row(source: str, row: dict[str, Any]) -> Request:
    """An ``error_logs`` row (as logged) as the request that stores it again."""
    if row.get("item_type") == "log":
        return Request(source, "envelope", envelope_bytes({"sdk": _SDK}, [
            ("log", {"items": [log_record_from_row(row)]})]))
    event = event_from_row(row)
    if row.get("item_type") == "store":
        return Request(source, "store", orjson.dumps(event), (("Content-Type", "application/json"),))
    return Request(source, "envelope", envelope_bytes(
        {"event_id": event["event_id"], "sdk": _SDK}, [("event", event)]))


def _sentry_level(level: object) -> str:
    return "fatal" if level == "critical" else str(level or "error")


def event_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Sentry event that the server stores as the same row.

    Kept: ``event_id`` (a replay into the same instance changes nothing), level, message, error
    type and value, component / workspace_id / request_id (as tags), ``created_at`` (as the
    timestamp) and the context (tags, extra, contexts, user, request, release, environment...).
    The frames are not logged, so the stack trace text goes into ``extra["stack_trace"]``, and the
    row's fingerprint is sent as a custom fingerprint: events that shared a bug share one again.
    An event that made a bug below the critical level was an unhandled exception, and says so.
    """
    context: dict[str, Any] = dict(row.get("context") or {})
    context.pop("fingerprint", None)
    context.pop(GROUPING_KEY, None)  # the receiving server records its own
    tags = {str(k): str(v) for k, v in (context.pop("tags", None) or {}).items()}
    component = row.get("component")
    if component and component != (context.get("logger") or "unknown"):
        tags["component"] = str(component)
    if row.get("workspace_id"):
        tags["workspace_id"] = str(row["workspace_id"])
    trace = (context.get("contexts") or {}).get("trace") or {}
    if row.get("request_id") and row["request_id"] != trace.get("trace_id"):
        tags["request_id"] = str(row["request_id"])
    if isinstance(context.get("breadcrumbs"), list):
        context["breadcrumbs"] = {"values": context["breadcrumbs"]}
    event: dict[str, Any] = {
        **context,
        "event_id": str(row["event_id"]),
        "timestamp": str(row["created_at"]),
        "level": _sentry_level(row.get("log_level")),
        "fingerprint": [str(row["fingerprint"])],
    }
    if tags:
        event["tags"] = tags
    if row.get("message"):
        event["message"] = str(row["message"])
    if row.get("stack_trace"):
        event["extra"] = {**(context.get("extra") or {}), "stack_trace": row["stack_trace"]}
    if row.get("error_type"):
        value: dict[str, Any] = {"type": row["error_type"], "value": row.get("error_message")}
        if row.get("bug") and row.get("log_level") != "critical":
            value["mechanism"] = {"type": "shim.replay", "handled": False}
        event["exception"] = {"values": [value]}
    return event


def log_record_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Sentry Logs record for a row that came from one. Records carry no id of their own (the
    server hashes their content), and this one is rebuilt, so it names the row's id in the
    ``shim.event_id`` attribute: a replay into the server that stored it changes nothing."""
    context = row.get("context") or {}
    attributes = {str(k): _attribute(v) for k, v in (context.get("attributes") or {}).items()}
    attributes[REPLAYED_ID] = _attribute(str(row["event_id"]))
    record: dict[str, Any] = {
        "timestamp": datetime.fromisoformat(str(row["created_at"])).timestamp(),
        "level": _sentry_level(row.get("log_level")),
        "body": str(row.get("message") or ""),
        "attributes": attributes,
    }
    if row.get("request_id") and "request_id" not in attributes:
        record["trace_id"] = str(row["request_id"])
    return record


def _attribute(value: object) -> dict[str, Any]:
    kind = ("boolean" if isinstance(value, bool) else "integer" if isinstance(value, int)
            else "double" if isinstance(value, float) else "string")
    return {"value": value if kind != "string" else str(value), "type": kind}


def check_in_payload(check_in: dict[str, Any]) -> dict[str, Any]:
    """A logged check-in as the ``check_in`` item that stores it again (same ``check_in_id``)."""
    payload = {key: check_in.get(key) for key in (
        "check_in_id", "monitor_slug", "status", "duration", "environment", "release",
        "monitor_config")}
    payload["timestamp"] = check_in.get("created_at")
    return {k: v for k, v in payload.items() if v is not None}


def envelope_bytes(headers: dict[str, Any], items: Iterable[tuple[str, Any]]) -> bytes:
    """An envelope with each item's ``length`` set; payloads that are not bytes are JSON."""
    parts = [orjson.dumps(headers)]
    for item_type, payload in items:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        parts += [orjson.dumps({"type": item_type, "length": len(data)}), data]
    return b"\n".join(parts) + b"\n"
