"""Hostile input against a live server: each gets a clear 4xx (or is kept when it is valid), never
a 500, a hang or a crash, and the server keeps serving afterwards."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
from conftest import PUBLIC_KEY, LiveServer

AUTH = f"X-Sentry-Auth: Sentry sentry_key={PUBLIC_KEY}, sentry_version=7\r\n"


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def post(server: LiveServer, body: bytes) -> tuple[int, dict[str, object]]:
    """A plain HTTP/1.1 POST over a socket (no client library smoothing anything over)."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=30) as conn:
        conn.sendall(b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     + AUTH.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return _answer(conn)


def _answer(conn: socket.socket) -> tuple[int, dict[str, object]]:
    """Read one response: its head, then exactly Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
        data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(payload) < length and (chunk := conn.recv(65536)):
        payload += chunk
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload) if payload else {}


def envelope(payload: bytes, item_type: str = "event") -> bytes:
    return b"{}\n" + json.dumps({"type": item_type}).encode() + b"\n" + payload + b"\n"


def event(**fields: object) -> bytes:
    return json.dumps({"event_id": uuid.uuid4().hex, "level": "error", **fields}).encode()


@pytest.mark.parametrize(("name", "body", "status"), [
    ("deeply nested JSON", envelope(b'{"extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"), 400),
    ("huge integer", envelope(b'{"message": "x", "extra": {"n": ' + b"9" * 400 + b"}}"), 400),
    ("invalid UTF-8", envelope(b'{"message": "\xff\xfe bad"}'), 400),
    ("NUL bytes in strings are data", envelope(event(message="a\u0000b")), 200),
    ("10,000 tiny items", b"{}\n" + b'{"type":"session"}\n{}\n' * 10_000, 400),
    ("a header line of 1 MB", b'{"x": "' + b"a" * 1_000_000 + b'"}\n', 200),
], ids=lambda v: v if isinstance(v, str) else "")
def test_hostile_bodies(live_server: LiveServer, name: str, body: bytes, status: int) -> None:
    answered, payload = post(live_server, body)
    assert answered == status, payload
    if status >= 400:
        assert payload["code"] and payload["detail"]
    # ...and the server is still fine.
    assert post(live_server, envelope(event(message="after")))[0] == 200


@pytest.mark.parametrize("live_server", [{"SHIM_READ_TIMEOUT": "1"}], indirect=True)
def test_a_trickling_sender_is_cut_off(live_server: LiveServer) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", _port(live_server)), timeout=30) as conn:
        conn.sendall(b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\n" + AUTH.encode()
                     + b"Content-Length: 1000\r\n\r\n{}")
        status: int | None = None
        try:
            for _ in range(30):  # one byte every 0.2 s: 1000 bytes would take minutes
                conn.sendall(b" ")
                time.sleep(0.2)
        except OSError:
            pass  # the server closed the connection after answering
        status, payload = _answer(conn)
    assert status == 408
    assert payload["code"] == "request_timeout"
    assert time.monotonic() - started < 10
    assert post(live_server, envelope(event(message="after")))[0] == 200
