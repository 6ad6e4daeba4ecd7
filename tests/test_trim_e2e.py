"""Oversized events from real sentry-sdk clients (each major) to a real ``shim serve``: trimmed and
stored, whatever the SDK's compression, and through the legacy store endpoint; bodies over the
body caps still refused.

The scripts make their events big the way real ones get big: large frame local variables, a long
breadcrumb trail and a big ``extra``; one sends a 5 MB message.
"""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PUBLIC_KEY,
    LiveServer,
    answers_of,
    expect_ok,
    run_script,
    script,
    sdk_python,
    start_server,
)
from sentry_sdk.envelope import Envelope, Item, PayloadRef

from shim.core.trim import STEPS

MB = 1 << 20
CAP = MB  # SHIM_MAX_EVENT_BYTES's default
STEP_NAMES = [name for name, _ in STEPS]
SIZES = {"small": 30_000, "1.5 MB": 3 * MB // 2, "5 MB": 5 * MB}

# Sends one fatal ValueError per size in TRIM_SIZES, each from the same code (so one bug), made
# big by a third each of frame locals, breadcrumbs and extra; TRIM_MESSAGE adds a message event of
# that many characters. TRIM_COMPRESSION picks the SDK's compression (identity: level 0).
SENDER = script("""
    import os
    import sentry_sdk
    import probe

    compression = os.environ["TRIM_COMPRESSION"]
    experiments = ({"transport_compression_level": 0} if compression == "identity"
                   else {"transport_compression_algo": compression})
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, max_breadcrumbs=100,
                    _experiments=experiments)
    probe.record_answers()
    sentry_sdk.set_tag("component", "exporter")

    def export_rows(rows):
        buffer = rows.upper()  # another big local
        raise ValueError("export failed")

    for size in [int(s) for s in os.environ["TRIM_SIZES"].split(",") if s]:
        third = size // 3
        with sentry_sdk.isolation_scope() as scope:
            scope.set_level("fatal")
            for step in range(100):
                sentry_sdk.add_breadcrumb(category="export", message=f"row batch {step} "
                                          + "b" * (third // 100))
            scope.set_extra("request_body", "e" * third)
            try:
                export_rows("r" * (third // 2))
            except ValueError:
                sentry_sdk.capture_exception()
    if os.environ.get("TRIM_MESSAGE"):
        sentry_sdk.capture_message("Export stalled for workspace 7: "
                                   + "m" * int(os.environ["TRIM_MESSAGE"]), level="fatal")
    probe.print_answers()
""")


@pytest.fixture(scope="session")
def brotli_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory holding only the test environment's brotli module: on a child's PYTHONPATH it
    stands for a scanner machine with brotli installed, with which the SDK can send ``br`` (the
    SDK environments hold sentry-sdk and its own dependencies alone)."""
    import _brotli  # type: ignore[import-not-found]
    import brotli

    directory = tmp_path_factory.mktemp("brotli")
    for module in (brotli, _brotli):
        assert module.__file__ is not None
        (directory / Path(module.__file__).name).symlink_to(module.__file__)
    return str(directory)


def send(server: LiveServer, major: str, compression: str, brotli_dir: str, sizes: list[int],
         message: int = 0) -> list[dict[str, Any]]:
    """Run SENDER with sentry-sdk ``major``.x; the answers to its requests, all checked 200."""
    path = f"{brotli_dir}:{Path(__file__).parent / 'scripts'}"
    result = run_script(SENDER, server.dsn, python=sdk_python(major), timeout=120, env={
        "TRIM_COMPRESSION": compression, "TRIM_SIZES": ",".join(map(str, sizes)),
        "TRIM_MESSAGE": str(message or ""), "PYTHONPATH": path})
    expect_ok(result)
    answers = answers_of(result)
    assert [a["status"] for a in answers] == [200] * (len(sizes) + bool(message)), answers
    assert {a["encoding"] for a in answers} == {None if compression == "identity"
                                                else compression}
    return answers


def healthz(server: LiveServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def row_of(server: LiveServer, event_id: str) -> dict[str, Any]:
    rows = server.error_logs("event_id = ?", (event_id,))
    assert len(rows) == 1, event_id
    row = rows[0]
    row["context"] = json.loads(row["context"])
    return row


def steps_of(row: dict[str, Any]) -> list[str]:
    return [step["cut"] for step in row["context"]["_trimmed"]["steps"]]


@pytest.mark.parametrize("compression", ["gzip", "br", "identity"])
def test_sdk_events_over_the_cap_are_trimmed_and_join_their_bug(
        live_server: LiveServer, sdk_major: str, compression: str, brotli_dir: str) -> None:
    answers = send(live_server, sdk_major, compression, brotli_dir, list(SIZES.values()))
    small, medium, large = (row_of(live_server, json.loads(a["body"])["id"]) for a in answers)

    assert "_trimmed" not in small["context"]
    assert len(small["context"]["breadcrumbs"]) == 100 and "extra" in small["context"]
    for row, size in ((medium, SIZES["1.5 MB"]), (large, SIZES["5 MB"])):
        record = row["context"]["_trimmed"]
        assert record["max_bytes"] == CAP and record["stored_bytes"] <= CAP
        assert size < record["received_bytes"] < size * 1.2  # the event item as the SDK sent it
        steps = steps_of(row)
        # Cut in order, only the cheap parts: the frames' unread fields and locals first.
        assert steps == sorted(steps, key=STEP_NAMES.index) and steps[:2] == ["unread", "vars"]
        assert not {"strings", "frames", "core"} & set(steps)
        # The columns are whole: nothing they are made of was cut.
        for column in ("log_level", "component", "message", "error_type", "error_message",
                       "stack_trace", "request_id", "fingerprint"):
            assert row[column] == small[column], column
    assert set(steps_of(large)) >= {"breadcrumbs", "extra"}
    assert len(large["context"]["breadcrumbs"]) == 10 and "extra" not in large["context"]
    assert large["context"]["breadcrumbs"][-1]["message"].startswith("row batch 99 ")

    bugs = live_server.bugs()
    assert [(b["occurrence_count"], b["fingerprint"], b["error_type"]) for b in bugs] == [
        (3, small["fingerprint"], "ValueError")]
    assert healthz(live_server)["events_trimmed"] == 2


def test_a_5_mb_message_is_cut_and_groups_as_it_would_whole(
        tmp_path: Path, sdk_major: str, brotli_dir: str) -> None:
    """The same script sends a 5 MB message to a server with the default cap and to one whose cap
    takes it whole: the rows differ by the cut, the fingerprints (and bugs) do not."""
    rows = {}
    for name, extra in (("cut", {}), ("whole", {"SHIM_MAX_EVENT_BYTES": str(64 * MB)})):
        with start_server(tmp_path / name, tmp_path / f"{name}.log", extra) as server:
            answers = send(server, sdk_major, "gzip", brotli_dir, [], message=5 * MB)
            rows[name] = row_of(server, json.loads(answers[0]["body"])["id"])
            rows[name]["bug"] = server.bugs()
            rows[name]["trimmed"] = healthz(server)["events_trimmed"]
    cut, whole = rows["cut"], rows["whole"]
    assert "strings" in steps_of(cut) and "_trimmed" not in whole["context"]
    assert (cut["trimmed"], whole["trimmed"]) == (1, 0)
    assert len(whole["message"]) > 5 * MB
    assert cut["message"].startswith("Export stalled for workspace 7: mmm")
    assert cut["message"].endswith("...") and len(cut["message"]) < CAP
    assert cut["fingerprint"] == whole["fingerprint"]
    assert [b["fingerprint"] for b in cut["bug"]] == [b["fingerprint"] for b in whole["bug"]] == [
        whole["fingerprint"]]


# -- the legacy store endpoint: the SDK's own event JSON, posted as old clients post it ----

DUMPER = script("""
    import json
    import os
    import sys
    import sentry_sdk

    def keep(event, hint):
        print(json.dumps(event, default=str))
        return None

    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], before_send=keep, max_breadcrumbs=100)
    sentry_sdk.set_tag("component", "exporter")

    def export_rows(rows):
        raise ValueError("export failed")

    for size in (30_000, 3 * 1024 * 1024 // 2):
        with sentry_sdk.isolation_scope() as scope:
            scope.set_level("fatal")
            for step in range(100):
                sentry_sdk.add_breadcrumb(category="export", message="b" * (size // 300))
            scope.set_extra("request_body", "e" * (size // 3))
            try:
                export_rows("r" * (size // 3))
            except ValueError:
                sentry_sdk.capture_exception()
""")


def post(url: str, body: bytes, headers: dict[str, str], early: bool = False
         ) -> tuple[int, dict[str, Any]]:
    """POST ``body``; with ``early`` only its headers are sent before the answer is read (a
    ``Content-Length`` over the cap is answered at once, and the connection closed)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        conn.putrequest("POST", parts.path)
        for name, value in {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={PUBLIC_KEY}",
                            "Content-Length": str(len(body)), **headers}.items():
            conn.putheader(name, value)
        conn.endheaders()
        if not early:
            conn.send(body)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_the_store_endpoint_trims_a_real_sdk_event(live_server: LiveServer,
                                                   sdk_major: str) -> None:
    result = run_script(DUMPER, live_server.dsn, python=sdk_python(sdk_major))
    assert result.returncode == 0, result.stderr
    small, big = (line.encode() for line in result.stdout.splitlines())
    assert len(small) < CAP < len(big)
    answers = [post(f"{live_server.url}/api/1/store/", body,
                    {"Content-Type": "application/json"}) for body in (small, big)]
    assert [status for status, _ in answers] == [200, 200]
    small_row, big_row = (row_of(live_server, answer["id"]) for _, answer in answers)
    assert big_row["context"]["_trimmed"]["received_bytes"] == len(big)
    assert steps_of(big_row)[:2] == ["unread", "vars"]
    assert "_trimmed" not in small_row["context"]
    assert big_row["fingerprint"] == small_row["fingerprint"]
    assert [b["occurrence_count"] for b in live_server.bugs()] == [2]
    assert healthz(live_server)["events_trimmed"] == 1


# -- the body caps still refuse, before any trimming ----

def _envelope(extra_bytes: int) -> bytes:
    event_id = uuid.uuid4().hex
    event = {"event_id": event_id, "level": "fatal", "platform": "python",
             "exception": {"values": [{"type": "ValueError", "value": "export failed"}]},
             "extra": {"request_body": "e" * extra_bytes}}
    return Envelope(headers={"event_id": event_id},
                    items=[Item(payload=PayloadRef(json=event), type="event")]).serialize()


@pytest.mark.parametrize("live_server", [{"SHIM_MAX_BODY_BYTES": str(2 * MB),
                                          "SHIM_MAX_DECODED_BYTES": str(3 * MB)}],
                         indirect=True)
def test_bodies_over_the_body_caps_are_still_refused(live_server: LiveServer) -> None:
    url = f"{live_server.url}/api/1/envelope/"
    over_body = _envelope(5 * MB // 2)
    status, body = post(url, over_body, {}, early=True)
    assert (status, body["code"]) == (413, "payload_too_large")
    assert "larger than 2097152 bytes" in body["detail"]
    # Small when sent, over the decoded cap once inflated: the decompression bomb guard.
    over_decoded = gzip.compress(_envelope(4 * MB))
    assert len(over_decoded) < 2 * MB
    status, body = post(url, over_decoded, {"Content-Encoding": "gzip"})
    assert (status, body["code"]) == (413, "payload_too_large")
    assert "once decompressed" in body["detail"]
    status, body = post(f"{live_server.url}/api/1/store/", b'{"message": "' + b"m" * 3 * MB
                        + b'"}', {}, early=True)
    assert status == 413
    # Under both caps, the same event over SHIM_MAX_EVENT_BYTES is trimmed and stored.
    status, body = post(url, gzip.compress(_envelope(3 * MB // 2)), {"Content-Encoding": "gzip"})
    assert status == 200
    assert steps_of(row_of(live_server, body["id"])) == ["extra"]
    assert live_server.query("SELECT count(*) AS n FROM error_logs") == [{"n": 1}]
    assert healthz(live_server)["events_trimmed"] == 1
