"""The HTTP surface in-process (Starlette's TestClient over the real app and a real SQLite file):
statuses for good and malformed requests, auth, CORS, the legacy store endpoint, the error shape."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import logging
import sqlite3
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brotli
import orjson
import pytest
import zstandard
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from starlette.testclient import TestClient

from shim.app import Edge, create_app
from shim.core.auth import Keys
from shim.settings import Settings

KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
OTHER_PROJECT_KEY = "f0e0d0c0b0a090807060504030201000"
AUTH = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1, sentry_key={KEY}"}
URL = "/api/1/envelope/"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({
        "SHIM_DATA_DIR": str(tmp_path),
        "SHIM_MAX_BODY_BYTES": "200000",
        "SHIM_MAX_DECODED_BYTES": "1000000",
        "SHIM_MAX_EVENT_BYTES": "100000",
    })


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    keys = Keys(((KEY, None), (OTHER_PROJECT_KEY, "7")))
    with TestClient(create_app(settings, keys)) as test_client:
        yield test_client


def rows(settings: Settings, sql: str, *params: Any) -> list[dict[str, Any]]:
    db = sqlite3.connect(settings.data_dir / "shim.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, params)]
    finally:
        db.close()


def event(message: str = "boom", **extra: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "level": "error", "message": message,
            "platform": "python", **extra}


def envelope(*items: Item, **headers: Any) -> bytes:
    return Envelope(headers=headers, items=list(items)).serialize()


def event_item(payload: dict[str, Any]) -> Item:
    return Item(payload=PayloadRef(json=payload), type="event")


def good_envelope() -> tuple[bytes, str]:
    ev = event()
    return envelope(event_item(ev), event_id=ev["event_id"]), ev["event_id"]


# -- answers ----

def test_event_is_stored_and_answered_with_its_id(client: TestClient, settings: Settings) -> None:
    body, event_id = good_envelope()
    response = client.post(URL, content=body, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"id": event_id}
    stored = rows(settings, "SELECT event_id, log_level, message FROM error_logs")
    assert stored == [{"event_id": event_id, "log_level": "error", "message": "boom"}]


def test_envelope_without_event_has_no_id(client: TestClient, settings: Settings) -> None:
    body = envelope(Item(payload=PayloadRef(json={"discarded_events": []}), type="client_report"))
    response = client.post(URL, content=body, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {}
    assert rows(settings, "SELECT item_type, count FROM item_counts") == [
        {"item_type": "client_report", "count": 1}]


def test_header_event_id_wins_and_dashed_ids_are_accepted(
        client: TestClient, settings: Settings) -> None:
    header_id = uuid.uuid4()
    body = envelope(event_item(event()), event_id=str(header_id))  # dashed
    response = client.post(URL, content=body, headers=AUTH)
    assert response.json() == {"id": header_id.hex}
    assert rows(settings, "SELECT event_id FROM error_logs") == [{"event_id": header_id.hex}]


def test_duplicate_event_is_stored_once_and_still_answered(
        client: TestClient, settings: Settings) -> None:
    body, event_id = good_envelope()
    first = client.post(URL, content=body, headers=AUTH)
    second = client.post(URL, content=body, headers=AUTH)
    assert first.json() == second.json() == {"id": event_id}
    assert second.status_code == 200
    assert rows(settings, "SELECT count(*) AS n FROM error_logs") == [{"n": 1}]


def test_unknown_and_known_item_types_are_counted_never_errors(
        client: TestClient, settings: Settings) -> None:
    types = ["transaction", "span", "session", "sessions", "client_report", "attachment",
             "profile", "feedback", "replay_event", "replay_recording", "trace_metric",
             "statsd", "something_new_in_2030"]
    items = [Item(payload=PayloadRef(json={"x": 1}) if t != "attachment" else b"\x00\xffbin",
                  type=t) for t in types]
    response = client.post(URL, content=envelope(*items), headers=AUTH)
    assert response.status_code == 200, response.text
    counted = {r["item_type"]: r["count"] for r in rows(settings, "SELECT * FROM item_counts")}
    assert counted == dict.fromkeys(types, 1)
    assert rows(settings, "SELECT count(*) AS n FROM error_logs") == [{"n": 0}]


def test_chunked_body_without_content_length_or_content_type(
        client: TestClient, settings: Settings) -> None:
    body, event_id = good_envelope()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start:start + 7]

    response = client.post(URL, content=chunks(), headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"id": event_id}


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8",
                                          "application/x-sentry-envelope", "application/json"])
def test_any_content_type_is_accepted(client: TestClient, content_type: str) -> None:
    body, event_id = good_envelope()
    response = client.post(URL, content=body, headers={**AUTH, "Content-Type": content_type})
    assert response.json() == {"id": event_id}


def _deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


ENCODINGS = {
    "identity": lambda b: b,
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_content_encoding(client: TestClient, encoding: str) -> None:
    body, event_id = good_envelope()
    response = client.post(URL, content=ENCODINGS[encoding](body),
                           headers={**AUTH, "Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": event_id}


def test_raw_deflate_is_accepted_too(client: TestClient) -> None:
    body, event_id = good_envelope()
    response = client.post(URL, content=_deflate_raw(body),
                           headers={**AUTH, "Content-Encoding": "deflate"})
    assert response.json() == {"id": event_id}


# -- malformed input: one table -----------------------------------------------------------------

def _zero_bomb(compress: Any) -> bytes:
    return compress(b"\x00" * (20 * 1024 * 1024))


def _gzip_bomb() -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as f:
        for _ in range(20):
            f.write(b"\x00" * 1024 * 1024)
    return out.getvalue()


GOOD = envelope(event_item(event()))

MALFORMED: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("bad JSON header", b"{not json\n", {}, 400, "invalid_envelope"),
    ("header is a list", b"[1,2]\n", {}, 400, "invalid_envelope"),
    ("empty body", b"", {}, 400, "invalid_envelope"),
    ("bad event_id", b'{"event_id":"nope"}\n', {}, 400, "invalid_envelope"),
    ("length past the end", b'{}\n{"type":"event","length":500}\n{"a":1}\n', {}, 400,
     "items_rejected"),
    ("payload longer than length", b'{}\n{"type":"event","length":2}\n{"a":1}\n', {}, 400,
     "items_rejected"),
    ("truncated body", GOOD[: len(GOOD) // 2], {}, 400, "items_rejected"),
    ("event payload not JSON", b'{}\n{"type":"event"}\n{oops\n', {}, 400, "items_rejected"),
    ("event payload is a list", b'{}\n{"type":"event"}\n[1]\n', {}, 400, "items_rejected"),
    ("log item without items", b'{}\n{"type":"log"}\n{"x":1}\n', {}, 400, "items_rejected"),
    ("check_in without slug", b'{}\n{"type":"check_in"}\n{"status":"ok"}\n', {}, 400,
     "items_rejected"),
    ("bad gzip", b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"}, 400,
     "bad_compression"),
    ("truncated gzip", gzip.compress(GOOD)[:-12], {"Content-Encoding": "gzip"}, 400,
     "bad_compression"),
    ("bad brotli", b"\xff\xff\xffnot brotli", {"Content-Encoding": "br"}, 400, "bad_compression"),
    ("unknown encoding", GOOD, {"Content-Encoding": "lzma"}, 400, "unsupported_encoding"),
    ("oversize body", b"{}\n" + b"x" * 300_000, {}, 413, "payload_too_large"),
    ("gzip bomb", _gzip_bomb(), {"Content-Encoding": "gzip"}, 413, "payload_too_large"),
    ("brotli bomb", _zero_bomb(brotli.compress), {"Content-Encoding": "br"}, 413,
     "payload_too_large"),
    ("zstd bomb", _zero_bomb(lambda b: zstandard.ZstdCompressor().compress(b)),
     {"Content-Encoding": "zstd"}, 413, "payload_too_large"),
    # (An oversize event item is trimmed and stored: tests/test_trim_e2e.py.)
    ("oversize log item", envelope(Item(payload=PayloadRef(json={"items": [
        {"body": "x" * 150_000, "level": "info"}]}), type="log")), {}, 413, "items_rejected"),
]


@pytest.mark.parametrize(("name", "body", "headers", "status", "code"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_input(client: TestClient, name: str, body: bytes, headers: dict[str, str],
                         status: int, code: str) -> None:
    response = client.post(URL, content=body, headers={**AUTH, **headers})
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["code"] == code
    assert isinstance(payload["detail"], str) and payload["detail"]
    assert response.headers["x-sentry-error"]


@pytest.mark.parametrize(("name", "url", "headers", "status", "code"), [
    ("missing key", URL, {}, 401, "unauthorized"),
    ("unknown key", URL, {"X-Sentry-Auth": "Sentry sentry_key=deadbeef"}, 401, "unauthorized"),
    ("unknown key in query", URL + "?sentry_key=deadbeef", {}, 401, "unauthorized"),
    ("key of another project", URL, {"X-Sentry-Auth": f"Sentry sentry_key={OTHER_PROJECT_KEY}"},
     403, "forbidden"),
    ("project id not a number", "/api/abc/envelope/", AUTH, 400, "bad_request"),
    ("no such route", "/api/1/nothing/", AUTH, 404, "not_found"),
])
def test_auth_and_routing_errors(client: TestClient, settings: Settings, name: str, url: str,
                                 headers: dict[str, str], status: int, code: str) -> None:
    response = client.post(url, content=GOOD, headers=headers)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert rows(settings, "SELECT count(*) AS n FROM error_logs") == [{"n": 0}]


def test_wrong_method_is_405_in_the_same_shape(client: TestClient) -> None:
    response = client.get(URL)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# -- auth ----

def test_key_in_query_string(client: TestClient) -> None:
    body, event_id = good_envelope()
    response = client.post(f"{URL}?sentry_key={KEY}&sentry_version=7", content=body)
    assert response.json() == {"id": event_id}


def test_key_in_envelope_dsn_header(client: TestClient) -> None:
    ev = event()
    body = envelope(event_item(ev), dsn=f"https://{KEY}@errors.example/1")
    response = client.post(URL, content=body)
    assert response.json() == {"id": ev["event_id"]}


def test_project_bound_key_works_for_its_project(client: TestClient) -> None:
    body, event_id = good_envelope()
    response = client.post("/api/7/envelope/", content=body,
                           headers={"X-Sentry-Auth": f"Sentry sentry_key={OTHER_PROJECT_KEY}"})
    assert response.json() == {"id": event_id}


def test_bad_key_is_refused_before_the_body_is_read(client: TestClient) -> None:
    """A huge body with a wrong key gets 401, not 413: the key is checked first."""
    response = client.post(URL, content=b"x" * 300_000,
                           headers={"X-Sentry-Auth": "Sentry sentry_key=nope"})
    assert response.status_code == 401


# -- partial success ----

def test_bad_item_is_reported_and_good_items_are_kept(
        client: TestClient, settings: Settings) -> None:
    ev = event("kept")
    body = (b'{"event_id":"%s"}\n' % ev["event_id"].encode()
            + b'{"type":"check_in"}\n{"status":"bogus"}\n'
            + b'{"type":"event"}\n' + orjson.dumps(ev) + b"\n")
    response = client.post(URL, content=body, headers=AUTH)
    assert response.status_code == 400
    payload = response.json()
    assert payload["id"] == ev["event_id"]
    assert payload["skipped"][0]["item"] == 1
    assert payload["skipped"][0]["type"] == "check_in"
    assert rows(settings, "SELECT message FROM error_logs") == [{"message": "kept"}]


def test_a_check_in_with_an_overlong_name_is_refused_and_the_event_beside_it_kept(
        client: TestClient, settings: Settings) -> None:
    ev = event("kept beside it")
    body = (b'{"event_id":"%s"}\n' % ev["event_id"].encode()
            + b'{"type":"check_in"}\n'
            + orjson.dumps({"monitor_slug": "job", "status": "ok", "environment": "e" * 65})
            + b'\n{"type":"event"}\n' + orjson.dumps(ev) + b"\n")
    response = client.post(URL, content=body, headers=AUTH)
    assert response.status_code == 400
    skipped = response.json()["skipped"]
    assert [(s["type"], s["detail"]) for s in skipped] == [
        ("check_in", "check_in environment is longer than 64 characters")]
    assert rows(settings, "SELECT message FROM error_logs") == [{"message": "kept beside it"}]
    assert rows(settings, "SELECT * FROM check_ins") == []


def test_framing_error_keeps_the_items_before_it(client: TestClient, settings: Settings) -> None:
    ev = event("before the damage")
    body = (b"{}\n" + b'{"type":"event"}\n' + orjson.dumps(ev) + b"\n"
            + b'{"type":"event","length":9999}\n{"short":1}')
    response = client.post(URL, content=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["id"] == ev["event_id"]
    assert rows(settings, "SELECT message FROM error_logs") == [{"message": "before the damage"}]


# -- the two doors: the envelope POST straight to its handler, or through Starlette ----

DOOR_CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("good event", URL, GOOD, AUTH),
    ("key in query", f"{URL}?sentry_key={KEY}", GOOD, {}),
    ("no key", URL, GOOD, {}),
    ("project not a number", "/api/abc/envelope/", GOOD, AUTH),
    ("a bad item beside a good one", URL,
     b'{}\n{"type":"check_in"}\n{"status":"bogus"}\n{"type":"event"}\n'
     + orjson.dumps(event("kept")) + b"\n", AUTH),
    *((name, URL, body, {**AUTH, **headers}) for name, body, headers, _, _ in MALFORMED),
]


class Doors:
    """The app, with a way in through Starlette's route for requests marked ``X-Door``."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (b"x-door", b"starlette") in scope["headers"]:
            await self.edge.app(scope, receive, send)
        else:
            await self.edge(scope, receive, send)


@pytest.mark.parametrize(("name", "url", "body", "headers"), DOOR_CASES,
                         ids=[c[0] for c in DOOR_CASES])
def test_both_doors_give_the_same_answer(settings: Settings, name: str, url: str, body: bytes,
                                         headers: dict[str, str]) -> None:
    """``Edge`` answers an envelope POST itself; Starlette's route (what a request with an
    Origin header takes) must answer it byte for byte the same, headers included."""
    with TestClient(Doors(create_app(settings, Keys(((KEY, None),))))) as client:
        direct = client.post(url, content=body, headers=headers)
        routed = client.post(url, content=body, headers={**headers, "X-Door": "starlette"})
    assert (direct.status_code, direct.content) == (routed.status_code, routed.content)
    assert sorted(direct.headers.multi_items()) == sorted(routed.headers.multi_items())
    assert direct.headers["vary"] == "Origin"


def test_an_envelope_post_takes_the_direct_door(client: TestClient, settings: Settings) -> None:
    """With Starlette's app replaced by one that fails every request, SDK envelope POSTs are
    still answered and stored; anything else (a browser's POST with Origin, /healthz) is not."""
    edge = client.app
    assert isinstance(edge, Edge)

    async def refuse(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError(f"Starlette got {scope['method']} {scope['path']}")

    edge.app = refuse  # type: ignore[assignment]
    body, event_id = good_envelope()
    assert client.post(URL, content=body, headers=AUTH).json() == {"id": event_id}
    assert rows(settings, "SELECT event_id FROM error_logs") == [{"event_id": event_id}]
    for method, url, headers in (("POST", URL, {**AUTH, "Origin": "https://app.example"}),
                                 ("GET", "/healthz", {}), ("POST", "/api/1/envelope", AUTH)):
        with pytest.raises(AssertionError, match="Starlette got"):
            client.request(method, url, content=body, headers=headers)


def test_a_client_gone_mid_body_is_not_answered_nor_logged(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    edge = client.app
    assert isinstance(edge, Edge)
    messages = [{"type": "http.request", "body": GOOD[:100], "more_body": True},
                {"type": "http.disconnect"}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": URL, "root_path": "", "query_string": b"",
             "headers": [(b"x-sentry-auth", AUTH["X-Sentry-Auth"].encode())]}
    asyncio.run(edge(scope, receive, send))
    assert not messages  # it read up to the disconnect
    assert sent == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- the legacy store endpoint ----

STORE = "/api/1/store/"


def test_store_endpoint_plain_json(client: TestClient, settings: Settings) -> None:
    ev = event("legacy", level="fatal")
    response = client.post(STORE, content=orjson.dumps(ev), headers=AUTH)
    assert response.json() == {"id": ev["event_id"]}
    assert rows(settings, "SELECT log_level, item_type FROM error_logs") == [
        {"log_level": "critical", "item_type": "store"}]


@pytest.mark.parametrize(("name", "encode"), [
    ("zlib deflated", zlib.compress),
    ("base64 of zlib (raven-python)", lambda b: base64.b64encode(zlib.compress(b))),
])
def test_store_endpoint_old_raven_bodies_with_numeric_level(
        client: TestClient, settings: Settings, name: str, encode: Any) -> None:
    ev = event("raven says hi", level=40)
    ev["sentry.interfaces.Exception"] = {"values": [{"type": "OSError", "value": "disk"}]}
    del ev["message"]
    response = client.post(STORE, content=encode(orjson.dumps(ev)), headers={
        "X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=6",
        "Content-Type": "application/octet-stream"})
    assert response.json() == {"id": ev["event_id"]}
    assert rows(settings, "SELECT log_level, error_type FROM error_logs") == [
        {"log_level": "error", "error_type": "OSError"}]


def test_store_endpoint_rejects_garbage(client: TestClient) -> None:
    response = client.post(STORE, content=b"\x00\x01garbage", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_event"


def test_store_endpoint_requires_a_key(client: TestClient) -> None:
    response = client.post(STORE, content=orjson.dumps(event()))
    assert response.status_code == 401


# -- CORS and health ----

def test_cors_preflight_for_browser_sdks(client: TestClient) -> None:
    response = client.options(URL, headers={
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-sentry-auth",
    })
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://app.example")
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "x-sentry-auth" in response.headers["access-control-allow-headers"].lower()


def test_cors_headers_on_the_post(client: TestClient) -> None:
    body, _ = good_envelope()
    response = client.post(URL, content=body, headers={**AUTH, "Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-sentry-rate-limits" in response.headers["access-control-expose-headers"].lower()


def test_healthz_reports_counts(client: TestClient) -> None:
    body, _ = good_envelope()
    client.post(URL, content=body, headers=AUTH)
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["events_stored"] == 1
    assert health["items"] == {"event": 1}
    assert health["store"]["backend"] == "sqlite"
