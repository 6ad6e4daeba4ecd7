"""Refused requests are findable: counted by status in ``/healthz``, and a warning in the server
log per refused key, at most once a minute, naming at most the key's first 8 characters.

The end-to-end test runs real sentry-sdk scripts, each misconfigured in one way, against a real
``shim serve``; the unit tests drive ``shim.refusals`` with a clock of their own.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import PUBLIC_KEY, LiveServer, run_script, script
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from starlette.testclient import TestClient

from shim.app import create_app
from shim.core.auth import Keys
from shim.refusals import Refusals, key_prefix
from shim.settings import Settings

# Rate-limited at two events a minute; a key bound to project 2; a valid key for the big body.
OTHER_PROJECT_KEY = "0ther0project0key0000000000000000"
BIG_BODY_KEY = "b1gb0dy0key00000000000000000000000"
WRONG_KEY = "wr0ng0key0never0configured0000000"
SERVER = {"SHIM_PUBLIC_KEYS": f"{PUBLIC_KEY},{OTHER_PROJECT_KEY}:2,{BIG_BODY_KEY}",
          "SHIM_RATE_LIMIT_PER_KEY": "2", "SHIM_MAX_BODY_BYTES": "50000"}

SCANNER = script("""
    import os
    import sentry_sdk

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, send_client_reports=False)
    extra = os.urandom(int(os.environ["NOISE"])).hex()  # hex of random bytes: half compresses
    for n in range(int(os.environ["EVENTS"])):
        with sentry_sdk.new_scope() as scope:
            scope.set_extra("padding", extra)
            sentry_sdk.capture_message(f"scan {n} failed", level="error")
        sentry_sdk.flush()
""")


def dsn_with(server: LiveServer, key: str, project: str = "1") -> str:
    return server.dsn.replace(PUBLIC_KEY, key).rsplit("/", 1)[0] + f"/{project}"


def healthz(server: LiveServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@pytest.mark.parametrize("live_server", [SERVER], indirect=True)
def test_misconfigured_scanners_are_counted_and_logged_once_a_minute_per_key(
        live_server: LiveServer) -> None:
    assert healthz(live_server)["refused"] == {"401": 0, "403": 0, "413": 0, "429": 0}
    scanners = [
        (dsn_with(live_server, WRONG_KEY), 3, 0),  # a wrong key: 401 each time
        (dsn_with(live_server, OTHER_PROJECT_KEY), 2, 0),  # another project's key: 403
        (dsn_with(live_server, BIG_BODY_KEY), 2, 100_000),  # 200 kB of hex: 413
        (live_server.dsn, 3, 0),  # the third in a minute: 429 (then the SDK holds back)
    ]
    for dsn, events, noise in scanners:
        result = run_script(SCANNER, dsn, env={"EVENTS": str(events), "NOISE": str(noise)})
        assert result.returncode == 0, result.stderr

    assert healthz(live_server)["refused"] == {"401": 3, "403": 2, "413": 2, "429": 1}
    assert len(live_server.error_logs()) == 2  # the two events within the rate limit

    warnings = [line for line in live_server.log().splitlines() if " refused " in line]
    shown = {key: [line for line in warnings if f"key {key[:8]}…" in line]
             for key in (WRONG_KEY, OTHER_PROJECT_KEY, BIG_BODY_KEY, PUBLIC_KEY)}
    assert {key: len(lines) for key, lines in shown.items()} == dict.fromkeys(shown, 1), warnings
    assert len(warnings) == 4
    assert "refused 401" in shown[WRONG_KEY][0] and "unknown DSN key" in shown[WRONG_KEY][0]
    assert "refused 403" in shown[OTHER_PROJECT_KEY][0]
    assert "refused 413" in shown[BIG_BODY_KEY][0]
    assert "refused 429" in shown[PUBLIC_KEY][0]
    assert all(" WARNING shim: refused " in line for line in warnings), warnings
    # Never a whole key: not in the warnings, and the unknown one nowhere in the log (the
    # configured ones are in the DSNs printed at start).
    for key in shown:
        assert not any(key in line for line in warnings)
        assert not any(key[:9] in line for line in warnings)
    assert WRONG_KEY not in live_server.log()


# The parts, with a clock of our own.


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_key_is_warned_about_at_most_once_a_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = Refusals(clock)
    caplog.set_level(logging.WARNING, logger="shim")
    for _ in range(3):
        refusals.note(401, "a" * 32, "unknown DSN key", "/api/1/envelope/")
    refusals.note(429, "b" * 32, "rate limit", "/api/1/envelope/")
    refusals.note(403, None, "missing key", "/api/1/store/")
    refusals.note(400, "c" * 32, "malformed", "/api/1/envelope/")  # not a refusal
    assert refusals.as_json() == {"401": 3, "403": 1, "413": 0, "429": 1}
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "refused 401 for key aaaaaaaa… on /api/1/envelope/",
        "refused 429 for key bbbbbbbb… on /api/1/envelope/",
        "refused 403 for key (no key) on /api/1/store/"]

    caplog.clear()
    clock.now += 59.9
    refusals.note(401, "a" * 32, "unknown DSN key", "/api/1/envelope/")
    assert caplog.records == []
    clock.now += 0.2
    refusals.note(413, "a" * 32, "body is larger than 50000 bytes", "/api/1/envelope/")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "refused 413 for key aaaaaaaa…" in record.getMessage()
    assert "(3 more refused since the last warning)" in record.getMessage()
    assert refusals.as_json() == {"401": 4, "403": 1, "413": 1, "429": 1}


@pytest.mark.parametrize(("key", "shown"), [
    ("e2e0123456789abcdef0123456789abc", "e2e01234…"),
    ("0123456789abcdef", "01234567…"),
    ("abc", "a…"),  # a short key shows half of itself, never all of it
    ("x", "…"),
    ("ab\ncd\x1b[31mefgh", "ab?cd??…"),  # what a client sends is not written raw
    (None, "(no key)"),
    ("", "(no key)"),
])
def test_a_key_is_named_by_a_prefix_only(key: str | None, shown: str) -> None:
    assert key_prefix(key) == shown
    if key:
        assert key not in shown


def test_client_text_stays_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="shim")
    Refusals(Clock()).note(413, "k" * 32, "item 1 (ev\nent): too large", "/api/1/\nenvelope/")
    [record] = caplog.records
    assert "\n" not in record.getMessage()
    assert re.search(r"on /api/1/\?envelope/: item 1 \(ev\?ent\)", record.getMessage())


# Both doors of the app (the direct envelope door and Starlette's), in-process.


def test_refusals_through_either_door_are_counted_with_the_key_they_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({"SHIM_DATA_DIR": str(tmp_path), "SHIM_MAX_BODY_BYTES": "1000"})
    caplog.set_level(logging.WARNING, logger="shim")
    tunnelled = "5ca1ab1e0tunnel0key000000000000"
    body = Envelope(headers={"dsn": f"http://{tunnelled}@example.com/1"}, items=[
        Item(payload=PayloadRef(json={"message": "from a browser"}), type="event")]).serialize()
    with TestClient(create_app(settings, Keys(((PUBLIC_KEY, None),)))) as client:
        auth = {"X-Sentry-Auth": f"Sentry sentry_key={WRONG_KEY}"}
        assert client.post("/api/1/store/", content=b"{}", headers=auth).status_code == 401
        # With an Origin (a browser's tunnel) it is Starlette's door; the key is in the envelope.
        assert client.post("/api/1/envelope/", content=body,
                           headers={"Origin": "https://app.example"}).status_code == 401
        assert client.post("/api/1/envelope/", content=b"x" * 2000, headers={
            "X-Sentry-Auth": f"Sentry sentry_key={PUBLIC_KEY}"}).status_code == 413
        assert client.get("/healthz").json()["refused"] == {
            "401": 2, "403": 0, "413": 1, "429": 0}
    messages = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert [m.split(":")[0] for m in messages] == [
        f"refused 401 for key {WRONG_KEY[:8]}… on /api/1/store/",
        f"refused 401 for key {tunnelled[:8]}… on /api/1/envelope/",
        f"refused 413 for key {PUBLIC_KEY[:8]}… on /api/1/envelope/"]
