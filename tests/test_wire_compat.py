"""Nothing shim-specific on the wire: the sdk_config scenarios (the same scripts test_sdk_config.py
runs against shim, on each sentry-sdk major with the installed sdk_config) sent to a strict capture
server that accepts only what hosted Sentry documents:
``POST /api/<project>/envelope/``, the standard ``X-Sentry-Auth`` header and no custom ones, and
envelopes whose items and events use only the documented types and fields.

The checks are pure functions over a recorded request, tested on their own with bad requests, so a
check that accepts everything cannot pass unnoticed.
"""

from __future__ import annotations

import gzip
import http.server
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brotli
import pytest
from conftest import expect_ok
from sdk_scenarios import ALL, Scenario, run_scenario
from sentry_sdk.envelope import Envelope, Item, PayloadRef

KEY = "0123456789abcdef0123456789abcdef"
PROJECT = "42"

# The Sentry developer docs' envelope item types.
ITEM_TYPES = frozenset({
    "event", "transaction", "attachment", "session", "sessions", "client_report", "check_in",
    "log", "span", "profile", "profile_chunk", "replay_event", "replay_recording", "replay_video",
    "feedback", "user_report", "statsd", "metric_meta", "otel_log", "trace_metric",
})
ENVELOPE_HEADER_KEYS = frozenset({"event_id", "dsn", "sdk", "sent_at", "trace"})
# Top-level attributes of the event payload (develop.sentry.dev, "Event Payloads" and interfaces).
EVENT_KEYS = frozenset({
    "event_id", "timestamp", "platform", "level", "logger", "transaction", "server_name",
    "release", "dist", "tags", "environment", "modules", "extra", "fingerprint", "errors",
    "exception", "message", "logentry", "breadcrumbs", "contexts", "user", "request", "sdk",
    "threads", "stacktrace", "debug_meta", "type", "start_timestamp", "spans", "measurements",
    "transaction_info", "_meta",
})
EVENT_LEVELS = frozenset({"fatal", "error", "warning", "info", "debug"})
LOG_LEVELS = frozenset({"trace", "debug", "info", "warn", "error", "fatal"})
ATTRIBUTE_TYPES = frozenset({"string", "boolean", "integer", "double"})
# What urllib3 and the SDK send; anything else (X-Shim-..., a custom auth) fails.
STANDARD_HEADERS = frozenset({
    "host", "user-agent", "accept-encoding", "connection", "content-type", "content-encoding",
    "content-length", "x-sentry-auth",
})
AUTH_KEYS = frozenset({"sentry_key", "sentry_version", "sentry_client", "sentry_timestamp"})
CLIENT = re.compile(r"sentry\.python/\d+\.\d+\.\d+")
EVENT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Request:
    """One request as the capture server received it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Received:
    """What one request carried, once it passed every check."""

    events: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    item_types: list[str] = field(default_factory=list)


class Rejected(Exception):
    """A request hosted Sentry would not accept as is."""


# --- the checks -------------------------------------------------------------------------------------

def check_request(request: Request, dsn: str) -> Received:
    """Everything hosted Sentry requires of an SDK request; raises ``Rejected`` naming the rule."""
    if request.method != "POST":
        raise Rejected(f"method {request.method}")
    if request.path != f"/api/{PROJECT}/envelope/":
        raise Rejected(f"path {request.path}")
    names = [name.lower() for name, _ in request.headers]
    if len(names) != len(set(names)):
        raise Rejected(f"repeated headers {names}")
    if extra := set(names) - STANDARD_HEADERS:
        raise Rejected(f"non-standard headers {sorted(extra)}")
    headers = {name.lower(): value for name, value in request.headers}
    client = check_auth(headers.get("x-sentry-auth"))
    if headers.get("user-agent") != client:
        raise Rejected(f"User-Agent {headers.get('user-agent')!r} is not {client!r}")
    if headers.get("content-type") != "application/x-sentry-envelope":
        raise Rejected(f"Content-Type {headers.get('content-type')!r}")
    if headers.get("content-length") != str(len(request.body)):
        raise Rejected("Content-Length does not match the body")
    body = decode(request.body, headers.get("content-encoding"))
    return check_envelope(body, dsn)


def check_auth(value: str | None) -> str:
    """``Sentry sentry_key=<key>, sentry_version=7, sentry_client=sentry.python/x.y.z``."""
    if value is None or not value.startswith("Sentry "):
        raise Rejected(f"X-Sentry-Auth {value!r}")
    pairs = [part.strip().partition("=") for part in value.removeprefix("Sentry ").split(",")]
    auth = {name: val for name, eq, val in pairs if eq}
    if len(auth) != len(pairs) or set(auth) - AUTH_KEYS:
        raise Rejected(f"X-Sentry-Auth fields {value!r}")
    if auth.get("sentry_key") != KEY or auth.get("sentry_version") != "7":
        raise Rejected(f"X-Sentry-Auth key or version {value!r}")
    client = auth.get("sentry_client", "")
    if not CLIENT.fullmatch(client):
        raise Rejected(f"sentry_client {client!r}")
    return client


def decode(body: bytes, encoding: str | None) -> bytes:
    try:
        if encoding in (None, "identity"):
            return body
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "br":
            decoded: bytes = brotli.decompress(body)
            return decoded
    except (OSError, brotli.error) as error:
        raise Rejected(f"body is not valid {encoding}: {error}") from None
    raise Rejected(f"Content-Encoding {encoding!r}")


def parse_envelope(data: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """The envelope grammar: a JSON header line, then items, each a JSON header line and a payload
    of exactly ``length`` bytes (or up to the next newline without one)."""
    first, _, rest = data.partition(b"\n")
    header = json_object(first, "envelope header")
    items = []
    while rest.strip(b"\n"):
        line, _, rest = rest.partition(b"\n")
        item_header = json_object(line, "item header")
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        elif isinstance(length, int) and not isinstance(length, bool) and 0 <= length <= len(rest):
            payload, rest = rest[:length], rest[length:]
            if rest and not rest.startswith(b"\n"):
                raise Rejected(f"item of length {length} is not followed by a newline")
            rest = rest[1:]
        else:
            raise Rejected(f"item length {length!r}")
        items.append((item_header, payload))
    return header, items


def json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise Rejected(f"{what} is not JSON: {data[:80]!r}") from None
    if not isinstance(value, dict):
        raise Rejected(f"{what} is not an object")
    return value


def check_envelope(data: bytes, dsn: str) -> Received:
    header, items = parse_envelope(data)
    if extra := set(header) - ENVELOPE_HEADER_KEYS:
        raise Rejected(f"envelope header fields {sorted(extra)}")
    if "dsn" in header and header["dsn"] != dsn:
        raise Rejected(f"envelope dsn {header['dsn']!r}")
    if "event_id" in header and not EVENT_ID.fullmatch(str(header["event_id"])):
        raise Rejected(f"envelope event_id {header['event_id']!r}")
    received = Received()
    for item_header, payload in items:
        kind = item_header.get("type")
        if kind not in ITEM_TYPES:
            raise Rejected(f"item type {kind!r}")
        received.item_types.append(kind)
        if kind == "event":
            received.events.append(check_event(json_object(payload, "event"), header))
        elif kind == "log":
            received.logs.extend(check_logs(json_object(payload, "log"), item_header))
        elif kind in ("client_report", "session", "sessions"):
            json_object(payload, kind)
    return received


def check_event(event: dict[str, Any], envelope_header: dict[str, Any]) -> dict[str, Any]:
    if extra := set(event) - EVENT_KEYS:
        raise Rejected(f"event fields {sorted(extra)}")
    if not EVENT_ID.fullmatch(str(event.get("event_id"))):
        raise Rejected(f"event_id {event.get('event_id')!r}")
    if envelope_header.get("event_id") != event["event_id"]:
        raise Rejected("the envelope and the event disagree on event_id")
    if event.get("level") not in EVENT_LEVELS:
        raise Rejected(f"level {event.get('level')!r}")
    if event.get("platform") != "python" or "timestamp" not in event:
        raise Rejected("platform or timestamp")
    tags = event.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise Rejected(f"tags {tags!r}")
    return event


def check_logs(payload: dict[str, Any], item_header: dict[str, Any]) -> list[dict[str, Any]]:
    records = payload.get("items")
    if item_header.get("content_type") != "application/vnd.sentry.items.log+json":
        raise Rejected(f"log content_type {item_header.get('content_type')!r}")
    if not isinstance(records, list) or item_header.get("item_count") != len(records):
        raise Rejected("log item_count does not match its items")
    for record in records:
        if record.get("level") not in LOG_LEVELS or not isinstance(record.get("body"), str):
            raise Rejected(f"log record {record!r}")
        for name, attribute in record.get("attributes", {}).items():
            if not isinstance(attribute, dict) or attribute.get("type") not in ATTRIBUTE_TYPES:
                raise Rejected(f"log attribute {name}: {attribute!r}")
    return records


# --- the capture server -----------------------------------------------------------------------------

@dataclass
class Capture:
    dsn: str
    requests: list[Request]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """A local HTTP server recording every request and answering as Sentry does."""
    requests: list[Request] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            requests.append(Request(self.command, self.path, list(self.headers.items()), body))
            self.answer(200, b"{}")

        def do_GET(self) -> None:
            requests.append(Request(self.command, self.path, list(self.headers.items()), b""))
            self.answer(405, b'{"detail": "method not allowed"}')

        do_PUT = do_OPTIONS = do_GET

        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Capture(f"http://{KEY}@127.0.0.1:{server.server_address[1]}/{PROJECT}", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("scenario", ALL, ids=[s.name for s in ALL])
def test_scenario_sends_only_what_hosted_sentry_accepts(capture: Capture, scenario: Scenario,
                                                        sdk_major: str, tmp_path: Path) -> None:
    result = run_scenario(scenario, capture.dsn, sdk_major, tmp_path)
    expect_ok(result, returncode=scenario.returncode)

    assert capture.requests, "nothing was sent"
    received = [check_request(request, capture.dsn) for request in capture.requests]
    events = [event for r in received for event in r.events]
    logs = [record for r in received for record in r.logs]
    assert (len(events), len(logs)) == (scenario.events, scenario.logs)
    for event in events:
        assert event["tags"].get("component"), event  # a tag, never a custom field
    for record in logs:  # attributes, since logs have no tags; and no user on them (no PII)
        assert record["attributes"]["component"]["type"] == "string", record
        assert not [name for name in record["attributes"] if name.startswith("user.")], record


# --- the checks reject what they should -------------------------------------------------------------

DSN = f"http://{KEY}@127.0.0.1:9/{PROJECT}"
AUTH = f"Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sentry.python/2.75.0"
EVENT = {"event_id": "a" * 32, "timestamp": 1.0, "platform": "python", "level": "error",
         "tags": {"component": "x"}}


def sdk_envelope(event: dict[str, Any] = EVENT, **headers: Any) -> bytes:
    envelope = Envelope(headers={"event_id": event.get("event_id"), **headers})
    envelope.add_item(Item(payload=PayloadRef(json=event), type="event"))
    return envelope.serialize()


def request(body: bytes | None = None, **changed: Any) -> Request:
    headers = {"Host": "127.0.0.1:9", "Accept-Encoding": "identity",
               "Content-Type": "application/x-sentry-envelope", "Content-Encoding": "gzip",
               "User-Agent": "sentry.python/2.75.0", "X-Sentry-Auth": AUTH}
    headers.update(changed.pop("headers", {}))
    data = gzip.compress(sdk_envelope() if body is None else body)
    headers.setdefault("Content-Length", str(len(data)))
    headers = {k: v for k, v in headers.items() if v is not None}
    return Request(changed.pop("method", "POST"), changed.pop("path", f"/api/{PROJECT}/envelope/"),
                   list(headers.items()), data)


def test_a_standard_request_passes() -> None:
    received = check_request(request(), DSN)
    assert received.item_types == ["event"]
    assert received.events == [EVENT]


@pytest.mark.parametrize(("bad", "reason"), [
    (request(method="PUT"), "method"),
    (request(path="/api/42/envelope/?shim=1"), "path"),
    (request(path="/api/7/envelope/"), "path"),
    (request(path="/ingest/"), "path"),
    (request(headers={"X-Shim-Component": "ocr"}), "non-standard headers"),
    (request(headers={"Authorization": "Bearer x"}), "non-standard headers"),
    (request(headers={"X-Sentry-Auth": None}), "X-Sentry-Auth"),
    (request(headers={"X-Sentry-Auth": AUTH.replace(KEY, "f" * 32)}), "key or version"),
    (request(headers={"X-Sentry-Auth": AUTH.replace("=7", "=6")}), "key or version"),
    (request(headers={"X-Sentry-Auth": AUTH + ", shim_component=ocr"}), "fields"),
    (request(headers={"X-Sentry-Auth": AUTH.replace("sentry.python", "shim")}), "sentry_client"),
    (request(headers={"User-Agent": "curl/8"}), "User-Agent"),
    (request(headers={"Content-Type": "application/json"}), "Content-Type"),
    (request(headers={"Content-Length": "1"}), "Content-Length"),
    (request(headers={"Content-Encoding": "br"}), "not valid br"),
    (request(headers={"Content-Encoding": "shim-zip"}), "Content-Encoding"),
    (request(b"not json\n"), "envelope header is not JSON"),
    (request(sdk_envelope(shim_version=1)), "envelope header fields"),
    (request(sdk_envelope(dsn="http://other@h/1")), "envelope dsn"),
    (request(sdk_envelope({**EVENT, "component": "ocr"})), "event fields"),
    (request(sdk_envelope({**EVENT, "level": "critical"})), "level"),
    (request(sdk_envelope({**EVENT, "tags": {"n": 1}})), "tags"),
    (request(sdk_envelope({**EVENT, "event_id": "x"})), "event_id"),
    (request(b'{}\n{"type":"bug","length":2}\n{}\n'), "item type 'bug'"),
    (request(b'{}\n{"type":"event","length":99}\n{}\n'), "item length"),
    (request(b'{}\n{"type":"log","length":2}\n{}\n'), "log content_type"),
])
def test_the_checks_reject_what_sentry_would_not_accept(bad: Request, reason: str) -> None:
    with pytest.raises(Rejected, match=re.escape(reason)):
        check_request(bad, DSN)
