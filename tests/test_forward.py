"""Forwarding to an upstream Sentry (``SHIM_FORWARD_DSN``): what is stored here also reaches the
upstream, once, whatever happens between them.

End to end with real parts: a real ``sentry_sdk`` script sends to a real ``shim serve``, whose
upstream is a second real ``shim serve`` (events and check-ins arrive with the same ids and
contents), or, for the answers a real server does not give (429 with category limits, 403), a
small Starlette app on a free port that records what it got. The upstream is down for a while and
the forwarding server restarted meanwhile: everything arrives once. The pure parts (the DSN, the
envelope sent, the rate-limit headers) and the queue on disk are tested on their own.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from conftest import (
    PROJECT_ID,
    PUBLIC_KEY,
    LiveServer,
    _clean_env,
    expect_ok,
    free_port,
    run_script,
    run_shim,
    script,
    start_server,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shim.core.envelope import parse_envelope
from shim.core.upstream import (
    RateLimits,
    forwarded,
    parse_dsn,
    parse_item_types,
    parse_targets,
)
from shim.forward.spool import Spool, queue_summary
from shim.settings import Settings, SettingsError

UPSTREAM_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


# --- the pure part -------------------------------------------------------------------------


def test_a_dsn_is_taken_apart_with_its_path_and_port() -> None:
    upstream = parse_dsn(f"https://{UPSTREAM_KEY}@o1.ingest.sentry.io/4501")
    assert upstream.envelope_url == "https://o1.ingest.sentry.io/api/4501/envelope/"
    assert (upstream.key, upstream.project_id, upstream.port) == (UPSTREAM_KEY, "4501", 443)
    assert UPSTREAM_KEY not in upstream.masked and "a1b2" in upstream.masked
    behind = parse_dsn("http://k@127.0.0.1:9000/sentry/7")
    assert behind.envelope_url == "http://127.0.0.1:9000/sentry/api/7/envelope/"
    assert parse_dsn("http://k@[::1]:9000/7").envelope_url == "http://[::1]:9000/api/7/envelope/"
    for bad, says in (("ftp://k@h/1", "not an http"), ("https://h/1", "no key"),
                      ("https://k@h/x", "project id"), (f"https://{UPSTREAM_KEY}@h:99999/1",
                                                        "invalid port")):
        with pytest.raises(ValueError, match=says) as caught:
            parse_dsn(bad)
        assert UPSTREAM_KEY not in str(caught.value)


def test_targets_and_item_types_settings() -> None:
    targets = parse_targets("1=http://a@up/10, 2=http://b@up/20")
    assert targets.of("1") and targets.of("1").project_id == "10"  # type: ignore[union-attr]
    assert targets.of("3") is None
    everyone = parse_targets("http://a@up/10")
    assert everyone.of("3") is not None and everyone.of("3").project_id == "10"  # type: ignore[union-attr]
    for bad in ("", "http://a@up/1,http://b@up/2", "1=http://a@up/1,1=http://a@up/2"):
        with pytest.raises(ValueError):
            parse_targets(bad)
    assert parse_item_types("event, check_in") == {"event", "check_in"}
    assert parse_item_types("event,all") is None
    with pytest.raises(ValueError, match="profile"):
        parse_item_types("event,profile")
    with pytest.raises(SettingsError, match="SHIM_FORWARD_DSN"):
        Settings.from_env({"SHIM_FORWARD_DSN": "not a dsn"})
    with pytest.raises(SettingsError, match="SHIM_FORWARD_SAMPLE_RATE"):
        Settings.from_env({"SHIM_FORWARD_SAMPLE_RATE": "1.5"})
    settings = Settings.from_env({"SHIM_FORWARD_DSN": "http://k@localhost:8000/1"})
    assert settings.forwards_to_itself() is not None  # the default port is 8000
    assert settings.replace(port=8001).forwards_to_itself() is None


def test_the_envelope_sent_keeps_each_payload_and_names_the_upstream() -> None:
    upstream = parse_dsn(f"http://{UPSTREAM_KEY}@up.example:9000/42")
    event = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"caf\\u00e9  x"}'
    received = b"\n".join([
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"http://key@here/1","sdk":{}}',
        b'{"type":"event","length":%d}' % len(event), event,
        b'{"type":"client_report"}', b'{"discarded_events":[]}',
        b'{"type":"check_in"}', b'{"check_in_id":"c","monitor_slug":"m","status":"ok"}',
        b'{"type":"transaction"}', b'{"type":"transaction","spans":[]}', b""])
    made = forwarded(parse_envelope(received), upstream, frozenset({"event", "check_in"}))
    assert made is not None
    body, categories = made
    assert categories == {"error", "monitor"}
    sent = parse_envelope(body)
    assert sent.headers["dsn"] == upstream.dsn and sent.headers["sdk"] == {}
    assert [(i.type, i.payload) for i in sent.items] == [
        ("event", event),  # byte for byte, escapes and spacing included
        ("check_in", b'{"check_in_id":"c","monitor_slug":"m","status":"ok"}')]
    assert forwarded(parse_envelope(received), upstream, frozenset({"log"})) is None
    everything = forwarded(parse_envelope(received), upstream, None)
    assert everything is not None and everything[1] == {"error", "monitor", "transaction"}


def test_rate_limits_hold_back_their_categories_only() -> None:
    limits = RateLimits()
    limits.note(429, "60:error;default:organization, 10::key", None, now=100.0)
    assert limits.wait({"error"}, 100.0) == 60.0
    assert limits.wait({"monitor"}, 100.0) == 10.0  # empty categories: all of them
    assert limits.wait({"monitor"}, 111.0) == 0.0
    assert limits.wait({"monitor", "error"}, 111.0) == 49.0  # an envelope goes whole
    assert limits.as_json(111.0) == {"error": 49.0, "default": 49.0}
    retry = RateLimits()
    retry.note(429, None, "7", now=0.0)
    assert retry.wait({"log_item"}, 0.0) == 7.0
    dated = RateLimits()
    dated.note(429, None, "Thu, 01 Jan 1970 00:00:30 GMT", now=10.0)
    assert dated.wait({"error"}, 10.0) == 20.0
    fallback = RateLimits()
    fallback.note(429, None, "soon", now=0.0)
    assert fallback.wait({"error"}, 0.0) == 60.0
    fine = RateLimits()
    fine.note(200, None, "5", now=0.0)
    assert fine.wait({"error"}, 0.0) == 0.0  # Retry-After counts on a 429 only


# --- the queue on disk ---------------------------------------------------------------------


def test_the_queue_survives_a_restart_and_drops_the_oldest_past_its_limits(tmp_path: Path
                                                                         ) -> None:
    now = [1000.0]
    spool = Spool(tmp_path, max_bytes=400, max_age=60, clock=lambda: now[0])
    for _ in range(3):
        spool.put(b"x" * 100, "1", frozenset({"error"}))
        now[0] += 1
    assert spool.pending == 2 and spool.dropped == {"queue_full": 1}  # 3 records > 400 bytes
    assert 200 < spool.pending_bytes <= 400
    first = next(spool.entries())
    spool.remove(first)
    spool.close()

    again = Spool(tmp_path, max_bytes=400, max_age=60, clock=lambda: now[0])
    assert again.pending == 1 and again.sent == 1 and again.dropped == {"queue_full": 1}
    [entry] = again.entries()
    assert again.read(entry) == b"x" * 100 and entry.categories == {"error"}
    now[0] += 61
    assert list(again.entries()) == [] and again.dropped["too_old"] == 1
    again.close()
    assert queue_summary(tmp_path) == {"pending": 0, "pending_bytes": 0, "sent": 1,
                                       "dropped": {"queue_full": 1, "too_old": 1},
                                       "last_error": None}


def test_what_was_sent_is_not_sent_again_and_a_torn_record_is_left_out(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, max_age=3600)
    for n in range(5):
        spool.put(b"envelope %d" % n, "1", frozenset({"error"}))
    sent = list(spool.entries())[:2]
    for entry in sent:
        spool.remove(entry)
    segment = spool.directory / sent[0].segment
    spool.close()
    with open(segment, "ab") as f:  # a crash in the middle of queuing a sixth
        f.write(b'{"t": 1, "p": "1", "c": ["error"], "n": 50}\nhalf an env')
    again = Spool(tmp_path, max_bytes=1 << 20, max_age=3600)
    assert [again.read(e) for e in again.entries()] == [b"envelope 2", b"envelope 3",
                                                         b"envelope 4"]
    for entry in list(again.entries()):
        again.remove(entry)
    again.put(b"next", "1", frozenset({"monitor"}))  # a new segment; the old one is done
    assert not segment.exists()
    assert (again.directory / "done.log").read_bytes().count(b"\n") == 0  # compacted
    again.close()


def test_each_process_claims_a_slot_and_orphans_are_taken_over(tmp_path: Path) -> None:
    one = Spool(tmp_path, max_bytes=1 << 20, max_age=60)
    two = Spool(tmp_path, max_bytes=1 << 20, max_age=60)
    assert one.directory != two.directory
    two.put(b"from two", "1", frozenset({"monitor"}))
    two.close()
    three = Spool(tmp_path, max_bytes=1 << 20, max_age=60)  # takes slot 1 back, or adopts it
    one.close()
    assert [three.read(e) for e in three.entries()] == [b"from two"]
    three.close()


# --- a real upstream -----------------------------------------------------------------------


def _health(server: LiveServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
        health: dict[str, Any] = json.loads(response.read())
        return health


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _upstream_dsn(port: int) -> str:
    return f"http://{PUBLIC_KEY}@127.0.0.1:{port}/{PROJECT_ID}"


SCAN_SCRIPT = script("""
    import os
    import sentry_sdk
    from sentry_sdk.crons import capture_checkin
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], environment="staging", release="scan@2")
    def read_page(number):
        raise ValueError(f"page {number} is blank")
    for number in range(int(os.environ.get("PAGES", "1"))):
        try:
            read_page(number)
        except ValueError:
            sentry_sdk.capture_exception()
    capture_checkin(monitor_slug="nightly-scan", status="ok", duration=1.5)
    sentry_sdk.flush()
""")


def test_events_and_check_ins_reach_a_real_upstream_as_they_were(tmp_path: Path) -> None:
    with start_server(tmp_path / "upstream", tmp_path / "upstream.log") as upstream, \
            start_server(tmp_path / "here", tmp_path / "here.log",
                         {"SHIM_FORWARD_DSN": upstream.dsn}) as here:
        expect_ok(run_script(SCAN_SCRIPT, here.dsn, env={"PAGES": "2"}))
        assert len(here.error_logs()) == 2
        _wait(lambda: len(upstream.error_logs()) == 2
              and bool(upstream.query("SELECT * FROM check_ins")), "the upstream's rows")
        fields = ("event_id", "log_level", "message", "error_type", "error_message",
                  "stack_trace", "fingerprint", "created_at")
        assert ([{f: r[f] for f in fields} for r in upstream.error_logs()]
                == [{f: r[f] for f in fields} for r in here.error_logs()])
        assert [orjson.loads(r["context"])["release"] for r in upstream.error_logs()] == [
            "scan@2", "scan@2"]
        check = ("check_in_id", "monitor_slug", "status", "duration")
        assert ([{f: r[f] for f in check} for r in upstream.query("SELECT * FROM check_ins")]
                == [{f: r[f] for f in check} for r in here.query("SELECT * FROM check_ins")])
        _wait(lambda: _health(here)["forward"]["sent"] == 3, "the sent count")
        forward = _health(here)["forward"]
        assert (forward["pending"], forward["dropped"], forward["last_error"]) == (0, {}, None)
        assert PUBLIC_KEY not in json.dumps(forward)  # the upstream's key is masked
        assert "forwarding to http://e2e0…@127.0.0.1" in here.log()
    assert "Traceback" not in here.log()


def test_an_upstream_down_for_a_while_gets_everything_once(tmp_path: Path) -> None:
    """Down while events arrive; the forwarding server restarted meanwhile; then up."""
    port = free_port()
    forward = {"SHIM_FORWARD_DSN": _upstream_dsn(port)}
    with start_server(tmp_path / "here", tmp_path / "here.log", forward) as here:
        expect_ok(run_script(SCAN_SCRIPT, here.dsn, env={"PAGES": "3"}))
        _wait(lambda: _health(here)["forward"]["last_error"] is not None, "a failed send")
        state = _health(here)["forward"]
        assert state["pending"] == 4 and state["sent"] == 0  # 3 event envelopes, 1 check-in
        assert "ConnectError" in state["last_error"] and state["backoff_seconds"] > 0
    stats = subprocess.run([sys.executable, "-m", "shim", "stats", "--json"], env={
        **_clean_env(), "SHIM_DATA_DIR": str(tmp_path / "here"), "SHIM_PUBLIC_KEYS": PUBLIC_KEY,
        **forward}, capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(stats.stdout)["forward"]["pending"] == 4
    with start_server(tmp_path / "here", tmp_path / "here2.log", forward) as here, \
            start_server(tmp_path / "upstream", tmp_path / "upstream.log", port=port) as upstream:
        _wait(lambda: _health(here)["forward"]["pending"] == 0, "the queue to drain", 90)
        assert sorted(r["event_id"] for r in upstream.error_logs()) == sorted(
            r["event_id"] for r in here.error_logs())
        assert len(upstream.error_logs()) == 3
        assert upstream.item_counts() == {"event": 3, "check_in": 1}  # each sent once
        assert _health(here)["forward"]["sent"] == 4


def test_a_server_refuses_to_forward_to_itself(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "shim", "serve", "--port", str(port)],
        env={**_clean_env(), "SHIM_DATA_DIR": str(tmp_path), "SHIM_PUBLIC_KEYS": PUBLIC_KEY,
             "SHIM_FORWARD_DSN": _upstream_dsn(port)},
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "names this server itself" in done.stderr and PUBLIC_KEY not in done.stderr


# --- an upstream that answers what a real one may ------------------------------------------


@dataclass
class Upstream:
    """A Starlette app playing hosted Sentry: it records each envelope and answers as told."""

    answer: Callable[[bytes], tuple[int, dict[str, str]]]
    seen: list[tuple[float, int, bytes, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    async def envelope(self, request: Request) -> Response:
        body = gzip.decompress(await request.body())
        status, headers = self.answer(body)
        self.seen.append((time.monotonic(), status, body, dict(request.headers)))
        if status == 200:
            return JSONResponse({"id": parse_envelope(body).headers.get("event_id")},
                                headers=headers)
        return JSONResponse({"detail": "refused"}, status_code=status,
                            headers={"X-Sentry-Error": "refused by the test", **headers})

    def types(self, status: int | None = None) -> list[list[str]]:
        return [[i.type for i in parse_envelope(body).items]
                for _, code, body, _ in self.seen if status is None or code == status]


@pytest.fixture
def fake_upstream() -> Iterator[Upstream]:
    upstream = Upstream(answer=lambda body: (200, {}))
    app = Starlette(routes=[Route("/api/{project}/envelope/", upstream.envelope,
                                  methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    upstream.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait(lambda: server.started, "the fake upstream")
    yield upstream
    server.should_exit = True
    thread.join(10)


def test_a_429_holds_back_only_the_categories_it_names(tmp_path: Path,
                                                      fake_upstream: Upstream) -> None:
    limited = [True]

    def answer(body: bytes) -> tuple[int, dict[str, str]]:
        if limited[0] and "event" in [i.type for i in parse_envelope(body).items]:
            limited[0] = False
            return 429, {"X-Sentry-Rate-Limits": "2:error:organization:quota_exceeded"}
        return 200, {}

    fake_upstream.answer = answer
    with start_server(tmp_path / "here", tmp_path / "here.log",
                      {"SHIM_FORWARD_DSN": _upstream_dsn(fake_upstream.port)}) as here:
        expect_ok(run_script(SCAN_SCRIPT, here.dsn))
        _wait(lambda: _health(here)["forward"]["sent"] == 2, "both envelopes")
        # The event was held back for 2 s; the check-in behind it went meanwhile.
        assert fake_upstream.types() == [["event"], ["check_in"], ["event"]]
        assert [code for _, code, _, _ in fake_upstream.seen] == [429, 200, 200]
        refused_at, retried_at = fake_upstream.seen[0][0], fake_upstream.seen[2][0]
        assert retried_at - refused_at >= 1.9  # the upstream's 2 s were honoured
        sent = fake_upstream.seen[2]
        assert f"sentry_key={PUBLIC_KEY}" in sent[3]["x-sentry-auth"]
        assert sent[3]["content-encoding"] == "gzip"
        assert here.error_logs()[0]["event_id"] == parse_envelope(sent[2]).headers["event_id"]


def test_an_envelope_the_upstream_refuses_for_good_is_dropped_and_told(
        tmp_path: Path, fake_upstream: Upstream) -> None:
    fake_upstream.answer = lambda body: (403, {})
    with start_server(tmp_path / "here", tmp_path / "here.log",
                      {"SHIM_FORWARD_DSN": _upstream_dsn(fake_upstream.port),
                       "SHIM_FORWARD_ITEM_TYPES": "event"}) as here:
        expect_ok(run_script(SCAN_SCRIPT, here.dsn))
        _wait(lambda: _health(here)["forward"]["dropped"] == {"rejected_403": 1}, "the drop")
        assert fake_upstream.types() == [["event"]]  # once, never retried; no check-in asked
        assert "403 refused by the test" in _health(here)["forward"]["last_error"]
        assert len(here.error_logs()) == 1  # kept here all the same
        shown = run_shim(here, "stats")
        assert "Forwarding to the upstream Sentry" in shown.stdout
    assert "forward: dropped an envelope" in here.log()
