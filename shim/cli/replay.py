"""``shim replay``: send recorded requests, envelope files and backup log lines to a server again.

Owns putting the target's key and project on each request (``replay_inputs`` reads them) and sending
them, in order or from several threads for a load test, with a summary of the answers.

A recorded request carries the recording client's key; the target's key replaces it wherever the
request carried one (``X-Sentry-Auth``, ``Authorization: Sentry``, ``?sentry_key=``), or is added as
``X-Sentry-Auth`` when it carried none. The body is sent byte for byte: the server reads the key from
the headers first, so a ``dsn`` in the envelope header is never consulted. Only ``new_ids`` changes a
body (a fresh event id per event, so that repeats are not deduplicated), re-encoded as it came.
"""

from __future__ import annotations

import gzip
import http.client
import re
import threading
import time
import urllib.parse
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import brotli
import orjson
import zstandard

from shim import __version__
from shim.cli.replay_inputs import Inputs, ReplayError, Request, envelope_bytes, read_inputs
from shim.core.envelope import parse_envelope
from shim.core.errors import InvalidEnvelope

__all__ = ["Inputs", "ReplayError", "Request", "Summary", "Target", "describe", "prepare",
           "read_inputs", "replay", "with_new_ids"]

MAX_CONCURRENCY = 64
MAX_REPEAT = 100_000
MAX_FAILURES_LISTED = 20
# Not replayed: the connection's own framing, which http.client writes for the new body.
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "expect",
               "te", "trailer", "upgrade", "proxy-connection"}
_SENTRY_KEY = re.compile(r"(sentry_key\s*=\s*)([^,\s]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """Where to send: a base URL (scheme, host, port and any path prefix), a DSN key, a project."""

    url: str
    key: str
    project: str = "1"

    @classmethod
    def from_dsn(cls, dsn: str) -> Target:
        """``http://KEY@host:port[/prefix]/PROJECT`` as a target."""
        parts = urllib.parse.urlsplit(dsn)
        prefix, _, project = parts.path.rstrip("/").rpartition("/")
        if not parts.username or not project.isdigit() or not parts.hostname:
            raise ReplayError(f"{dsn!r} is not a DSN like http://KEY@host:8000/1")
        netloc = parts.netloc.rpartition("@")[2]
        return cls(f"{parts.scheme}://{netloc}{prefix}", parts.username, project)


# Preparing a request for the target.


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some clients send
    if encoding == "br":
        return bytes(brotli.decompress(body))
    if encoding == "zstd":
        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
    return body


def _encode(body: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "br":
        return bytes(brotli.compress(body))
    if encoding == "zstd":
        return bytes(zstandard.ZstdCompressor().compress(body))
    return body


def with_new_ids(request: Request) -> Request:
    """The same request with a fresh event id for every event in it (re-encoded as it came)."""
    encoding = _header(request.headers, "content-encoding").strip().lower()
    try:
        body = _decode(request.body, encoding)
    except (OSError, EOFError, zlib.error, brotli.error, zstandard.ZstdError):
        return request  # sent as it is; the server will say what is wrong with it
    new_id = uuid.uuid4().hex
    if request.endpoint == "store":
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            return request  # raven's base64+zlib bodies keep their id
        if not isinstance(event, dict):
            return request
        body = orjson.dumps({**event, "event_id": new_id})
    else:
        try:
            envelope = parse_envelope(body)
        except InvalidEnvelope:
            return request
        if envelope.problem:
            return request
        headers = dict(envelope.headers)
        if "event_id" in headers:
            headers["event_id"] = new_id
        items: list[tuple[str, Any]] = []
        for item in envelope.items:
            payload: Any = item.payload
            if item.type in ("event", "transaction"):
                try:
                    event = orjson.loads(item.payload)
                    payload = {**event, "event_id": new_id} if isinstance(event, dict) else payload
                except orjson.JSONDecodeError:
                    pass
            items.append((item.type, payload))
        body = envelope_bytes(headers, items)
    return Request(request.source, request.endpoint, _encode(body, encoding), request.headers,
                   request.query)


def _header(headers: Iterable[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k.lower() == name), "")


def prepare(request: Request, target: Target) -> tuple[str, dict[str, str], bytes]:
    """(path and query, headers, body) of ``request`` for ``target``: its key, its project."""
    keyed = False
    headers: dict[str, str] = {}
    for name, value in request.headers:
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            continue
        if lower in ("x-sentry-auth", "authorization") and _SENTRY_KEY.search(value):
            value = _SENTRY_KEY.sub(lambda m: m.group(1) + target.key, value)
            keyed = True
        headers[name] = value
    query = []
    for name, value in request.query:
        if name == "sentry_key":
            value, keyed = target.key, True
        query.append((name, value))
    if not keyed:
        headers["X-Sentry-Auth"] = (f"Sentry sentry_key={target.key}, sentry_version=7, "
                                    f"sentry_client=shim-replay/{__version__}")
    prefix = urllib.parse.urlsplit(target.url).path.rstrip("/")
    path = f"{prefix}/api/{target.project}/{request.endpoint}/"
    if query:
        path += "?" + urllib.parse.urlencode(query)
    return path, headers, request.body


# Sending.


@dataclass
class Summary:
    """What the server answered: counts by status, and the first failures in detail."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    connection_errors: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every request answered 2xx and every input read."""
        return (not self.unreadable and not self.connection_errors
                and all(200 <= status < 300 for status in self.statuses))

    def as_json(self) -> dict[str, Any]:
        """The summary for ``--json``."""
        return {"ok": self.ok, "sent": self.sent,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "connection_errors": self.connection_errors, "failures": self.failures,
                "skipped": self.skipped, "unreadable": self.unreadable,
                "seconds": round(self.seconds, 3)}


class _Sender:
    """One keep-alive connection per thread to the target."""

    def __init__(self, target: Target, timeout: float) -> None:
        parts = urllib.parse.urlsplit(target.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ReplayError(f"{target.url!r} is not an http(s) URL")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout
        self.local = threading.local()

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            connection = kind(self.host, self.port, timeout=self.timeout)
            self.local.connection = connection
        return connection

    def send(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            connection = self._connection(fresh=attempt > 0)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if attempt:  # a kept-alive connection the server had closed: once more, anew
                    self._drop()
                    raise
            except (OSError, http.client.HTTPException):
                self._drop()  # the next request starts on a new connection
                raise
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
        self.local.connection = None


def _detail(body: bytes) -> str:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace")
    return str(answer.get("detail", answer)) if isinstance(answer, dict) else str(answer)


def _planned(requests: Sequence[Request], repeat: int) -> Iterator[Request]:
    for _ in range(repeat):
        yield from requests


def replay(inputs: Inputs, target: Target, *, concurrency: int = 1, repeat: int = 1,
           new_ids: bool = False, timeout: float = 30.0) -> Summary:
    """Send every request of ``inputs`` ``repeat`` times; in order when ``concurrency`` is 1."""
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ReplayError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    if not 1 <= repeat <= MAX_REPEAT:
        raise ReplayError(f"repeat must be between 1 and {MAX_REPEAT}")
    sender = _Sender(target, timeout)
    summary = Summary(skipped=dict(inputs.skipped), unreadable=list(inputs.unreadable))
    lock = threading.Lock()

    def send(request: Request) -> None:
        path, headers, body = prepare(with_new_ids(request) if new_ids else request, target)
        try:
            status, answer = sender.send(path, headers, body)
        except (OSError, http.client.HTTPException) as exc:
            failure: dict[str, Any] | None = {"source": request.source, "status": None,
                                              "detail": f"{type(exc).__name__}: {exc}"}
            status = 0
        else:
            failure = None if 200 <= status < 300 else {
                "source": request.source, "status": status, "detail": _detail(answer)}
        with lock:
            summary.sent += 1
            if status:
                summary.statuses[status] += 1
            else:
                summary.connection_errors += 1
            if failure and len(summary.failures) < MAX_FAILURES_LISTED:
                summary.failures.append(failure)

    started = time.monotonic()
    planned = _planned(inputs.requests, repeat)
    if concurrency == 1:
        for request in planned:
            send(request)
    else:
        with ThreadPoolExecutor(concurrency, thread_name_prefix="replay") as pool:
            # A window of pending requests, not all of them: --repeat can ask for millions.
            pending: set[Future[None]] = set()
            for request in planned:
                if len(pending) >= 2 * concurrency:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for result in done:
                        result.result()
                pending.add(pool.submit(send, request))
            for result in pending:
                result.result()
    summary.seconds = time.monotonic() - started
    return summary


def describe(summary: Summary) -> list[str]:
    """The summary as lines for a person."""
    rate = summary.sent / summary.seconds if summary.seconds else 0.0
    statuses = ", ".join(f"{n} x {status}" for status, n in sorted(summary.statuses.items()))
    if summary.connection_errors:
        statuses += f"{', ' if statuses else ''}{summary.connection_errors} x no answer"
    lines = [f"sent {summary.sent} requests in {summary.seconds:.2f}s ({rate:.0f}/s): "
             f"{statuses or 'nothing'}"]
    if summary.skipped:
        lines.append("skipped: " + ", ".join(f"{n} {what}" for what, n in summary.skipped.items()))
    lines += [f"failed: {f['source']}: {f['status'] or 'no answer'} {f['detail']}"
              for f in summary.failures]
    lines += [f"unreadable: {problem}" for problem in summary.unreadable]
    return lines
