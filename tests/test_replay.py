"""Replay: requests recorded from real clients, and ``shim replay``, against real servers.

``tests/fixtures/envelopes/`` holds what real SDKs sent (``scripts/record_fixtures.py`` records them
again), each request as its body bytes and its headers, and a manifest of what each must produce.
Every scenario is posted to its own live server with a small poster of this module (so the fixtures
are checked independently of ``shim replay``); ``shim replay`` itself is run as the operator runs it:
on the fixture directory, on a backup log moved from one server to another, as a load test with
fresh ids, and with a wrong key.
"""

from __future__ import annotations

import gzip
import json
import re
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli
import pytest
from conftest import (
    PUBLIC_KEY,
    LiveServer,
    free_port,
    run_shim,
    start_server,
)
from sentry_sdk.envelope import Envelope, Item, PayloadRef

from shim.cli.replay import ReplayError, Request, Target, prepare, with_new_ids
from shim.cli.replay_inputs import event_from_row, read_inputs
from shim.core.envelope import parse_envelope
from shim.core.event import normalize_event

FIXTURES = Path(__file__).parent / "fixtures" / "envelopes"
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text())
SCENARIOS = MANIFEST["scenarios"]
TOTALS = MANIFEST["totals"]
ROW_FIELDS = ("event_id", "item_type", "log_level", "component", "error_type", "error_message",
              "message", "workspace_id", "bug")


# Reading a server's rows in the manifest's terms (as scripts/record_fixtures.py writes them).


def stored_rows(server: LiveServer) -> list[dict[str, Any]]:
    return server.query(
        "SELECT e.*, b.title AS bug FROM error_logs e LEFT JOIN bugs b ON b.id = e.related_bug_id "
        "ORDER BY e.created_at, e.rowid")


def stored_bugs(server: LiveServer) -> list[dict[str, Any]]:
    return server.query("SELECT title, severity, component, error_type, occurrence_count "
                        "FROM bugs ORDER BY bug_number")


def stored_check_ins(server: LiveServer) -> list[dict[str, Any]]:
    return server.query("SELECT monitor_slug, status FROM check_ins ORDER BY created_at, rowid")


def post_recorded(server: LiveServer, body_path: Path) -> tuple[int, dict[str, Any]]:
    """Send one recorded request as it was, with the server's key in place of the recording key."""
    record = json.loads(body_path.with_suffix(".json").read_text())
    recording_key = MANIFEST["recording_key"]
    query = urllib.parse.urlencode([
        (k, PUBLIC_KEY if k == "sentry_key" else v)
        for k, v in urllib.parse.parse_qsl(record["query"], keep_blank_values=True)])
    headers = {k: v.replace(recording_key, PUBLIC_KEY) for k, v in record["headers"]
               if k.lower() not in ("host", "content-length", "transfer-encoding", "connection")}
    request = urllib.request.Request(server.url + record["path"] + (f"?{query}" if query else ""),
                                     data=body_path.read_bytes(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"{}")


def replay_json(server: LiveServer, *args: str,
                env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run ``shim replay ARGS --json`` (as the operator, with ``server``'s settings)."""
    result = run_shim(server, "replay", *args, "--json", env=env, timeout=60)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A second ``shim serve`` (own data dir, same key) to move events into."""
    with start_server(tmp_path / "other" / "data", tmp_path / "other" / "server.log") as server:
        yield server


# The fixtures themselves.


def test_the_manifest_lists_every_fixture_and_they_stay_small() -> None:
    listed = {f["file"] for s in SCENARIOS for f in s["fixtures"]}
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/*.bin")}
    assert listed == on_disk
    assert all(p.with_suffix(".json").exists() for p in FIXTURES.glob("*/*.bin"))
    assert sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file()) < 1024 * 1024
    clients = {s["client"].rsplit("-", 1)[0] for s in SCENARIOS}
    assert {"sentry-python", "sentry-javascript-node", "sentry-cli"} <= clients
    encodings = {(f["endpoint"], f["content_encoding"]) for s in SCENARIOS for f in s["fixtures"]}
    assert {("envelope", "gzip"), ("envelope", "br"), ("envelope", "identity"),
            ("store", "gzip")} <= encodings
    assert TOTALS["requests"] == len(on_disk)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s['client']}/{s['scenario']}"
                                                      for s in SCENARIOS])
def test_recorded_scenario_stores_what_the_manifest_says(
        live_server: LiveServer, scenario: dict[str, Any]) -> None:
    seen: set[str] = set()
    items: Counter[str] = Counter()
    for fixture in scenario["fixtures"]:
        status, answer = post_recorded(live_server, FIXTURES / fixture["file"])
        expect = fixture["expect"]
        assert status == expect["status"], fixture["file"]
        added = [r for r in stored_rows(live_server) if r["event_id"] not in seen]
        seen.update(r["event_id"] for r in added)
        assert [{k: r[k] for k in ROW_FIELDS} for r in added] == expect["error_logs"], (
            fixture["file"])
        if added and added[0]["item_type"] != "log":
            assert answer == {"id": added[0]["event_id"]}
        items.update(expect["items"])
        assert live_server.item_counts() == dict(items), fixture["file"]
    assert stored_bugs(live_server) == scenario["expect"]["bugs"]
    assert stored_check_ins(live_server) == scenario["expect"]["check_ins"]
    assert len(stored_rows(live_server)) == scenario["expect"]["error_logs"]


# shim replay.


def totals_of(server: LiveServer) -> dict[str, Any]:
    rows = stored_rows(server)
    return {
        "error_logs": len(rows),
        "levels": dict(sorted(Counter(r["log_level"] for r in rows).items())),
        "items": dict(sorted(server.item_counts().items())),
        "bugs": sorted(({"title": b["title"], "occurrence_count": b["occurrence_count"]}
                        for b in stored_bugs(server)), key=lambda b: b["title"]),
        "check_ins": len(stored_check_ins(server)),
    }


def test_replay_of_the_fixture_directory_stores_the_manifest_totals(
        live_server: LiveServer) -> None:
    port = urllib.parse.urlsplit(live_server.url).port
    # No --url and no --key: SHIM_PORT and SHIM_PUBLIC_KEYS say where and with what, as for serve.
    code, summary = replay_json(live_server, str(FIXTURES), env={"SHIM_PORT": str(port)})
    assert code == 0, summary
    assert summary["sent"] == TOTALS["requests"]
    assert summary["statuses"] == {"200": TOTALS["requests"]}
    assert summary["failures"] == [] and summary["unreadable"] == []
    assert summary["skipped"] == {"other files": 1}  # manifest.json
    assert totals_of(live_server) == {k: v for k, v in TOTALS.items() if k != "requests"}

    result = run_shim(live_server, "replay", str(FIXTURES), "--url", live_server.url)
    assert result.returncode == 0, result.stderr
    assert re.match(rf"sent {TOTALS['requests']} requests in [\d.]+s \(\d+/s\): "
                    rf"{TOTALS['requests']} x 200\n", result.stdout), result.stdout
    assert totals_of(live_server)["error_logs"] == TOTALS["error_logs"]  # the same event ids


def test_backup_log_moved_to_another_server_reproduces_rows_and_bugs(
        live_server: LiveServer, other_server: LiveServer) -> None:
    code, _ = replay_json(live_server, str(FIXTURES), "--url", live_server.url)
    assert code == 0
    resolved = run_shim(live_server, "resolve", "BUG-00001")
    assert resolved.returncode == 0, resolved.stderr
    logs = live_server.data_dir / "bugs" / "logs"
    assert list(logs.glob("*.jsonl")) and (logs / ".applied").exists()

    code, summary = replay_json(other_server, str(logs), "--url", other_server.url)
    assert code == 0, summary
    assert summary["skipped"] == {"item_counts lines": TOTALS["requests"], "status lines": 1}
    assert summary["statuses"] == {"200": summary["sent"]}

    source, copy = stored_rows(live_server), stored_rows(other_server)
    assert len(copy) == len(source) == TOTALS["error_logs"]
    same = ("item_type", "log_level", "component", "error_type", "error_message", "message",
            "workspace_id", "request_id", "created_at", "bug")
    by_id = {r["event_id"]: r for r in copy}
    events = [r for r in source if r["item_type"] != "log"]
    for row in events:  # events keep their event_id
        assert {k: by_id[row["event_id"]][k] for k in same} == {k: row[k] for k in same}
    traced = next(r for r in events if r["stack_trace"] and "line" in r["stack_trace"])
    assert json.loads(by_id[traced["event_id"]]["context"])["extra"]["stack_trace"] == (
        traced["stack_trace"])
    # Sentry Logs records carry no id; a replayed one names the id its row has: same rows, same ids.
    def log_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(tuple(r[k] for k in ("event_id", *same)) for r in rows
                      if r["item_type"] == "log")
    assert log_rows(copy) == log_rows(source) and log_rows(source)

    bug_fields = "bug_number, title, severity, priority, component, error_type, " \
                 "occurrence_count, first_occurred_at, last_occurred_at"
    source_bugs = live_server.query(f"SELECT {bug_fields} FROM bugs ORDER BY bug_number")
    assert other_server.query(f"SELECT {bug_fields} FROM bugs ORDER BY bug_number") == source_bugs
    assert live_server.bugs()[0]["status"] == "resolved"
    assert {b["status"] for b in other_server.bugs()} == {"open"}  # status lines are not replayed
    check_in_fields = "SELECT check_in_id, monitor_slug, status, duration, created_at " \
                      "FROM check_ins ORDER BY check_in_id"
    assert other_server.query(check_in_fields) == live_server.query(check_in_fields)

    # Replaying the same day files again changes nothing.
    code, again = replay_json(other_server, str(logs), "--url", other_server.url)
    assert code == 0 and again["sent"] == summary["sent"]
    assert stored_rows(other_server) == copy
    assert other_server.query(f"SELECT {bug_fields} FROM bugs ORDER BY bug_number") == source_bugs


def test_new_ids_and_repeat_multiply_the_rows(live_server: LiveServer) -> None:
    code, summary = replay_json(live_server, str(FIXTURES), "--url", live_server.url,
                                "--new-ids", "--repeat", "3", "--concurrency", "4")
    assert code == 0, summary
    assert summary["sent"] == 3 * TOTALS["requests"]
    assert summary["statuses"] == {"200": 3 * TOTALS["requests"]}
    rows = stored_rows(live_server)
    logs = [r for r in rows if r["item_type"] == "log"]  # records carry no id: deduplicated
    assert len(rows) - len(logs) == 3 * (TOTALS["error_logs"] - len(logs))
    assert totals_of(live_server)["bugs"] == [
        {**bug, "occurrence_count": 3 * bug["occurrence_count"]} for bug in TOTALS["bugs"]]


def test_a_refused_replay_exits_1_with_the_statuses(live_server: LiveServer) -> None:
    code, summary = replay_json(live_server, str(FIXTURES), "--url", live_server.url,
                                "--key", "0000wrong0000")
    assert code == 1
    assert summary["ok"] is False
    assert summary["statuses"] == {"401": TOTALS["requests"]}
    assert len(summary["failures"]) == min(TOTALS["requests"], 20)
    assert summary["failures"][0]["detail"] == "unknown DSN key"
    assert stored_rows(live_server) == []

    result = run_shim(live_server, "replay", str(FIXTURES / "nowhere"), "--url", live_server.url)
    assert result.returncode == 1
    assert "no such file or directory" in result.stdout

    nobody = f"http://127.0.0.1:{free_port()}"
    code, summary = replay_json(live_server, str(FIXTURES / "sentry-cli-3.8.0"), "--url", nobody)
    assert code == 1
    assert summary["connection_errors"] == summary["sent"] == 2 and summary["statuses"] == {}
    assert all("ConnectionRefusedError" in f["detail"] for f in summary["failures"])


def test_replay_of_envelope_and_store_files_with_a_dsn(live_server: LiveServer,
                                                       tmp_path: Path) -> None:
    event_id = "4f0c6e4d8bd84c5b9c1e3d0a2b1c0d9e"
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_item(Item(type="event", payload=PayloadRef(json={
        "event_id": event_id, "level": "fatal", "message": "Scanner crashed",
        "tags": {"component": "scanner"}, "timestamp": "2026-01-02T03:04:05Z"})))
    (tmp_path / "crash.envelope").write_bytes(envelope.serialize())
    (tmp_path / "old.json").write_text(json.dumps({
        "event_id": "a" * 32, "level": 30, "message": "Old raven warning",
        "logger": "legacy-job"}))
    code, summary = replay_json(live_server, str(tmp_path / "crash.envelope"),
                                str(tmp_path / "old.json"), "--dsn", live_server.dsn)
    assert code == 0, summary
    rows = {r["event_id"]: r for r in stored_rows(live_server)}
    assert rows[event_id]["log_level"] == "critical"
    assert rows[event_id]["component"] == "scanner"
    assert rows[event_id]["created_at"] == "2026-01-02T03:04:05.000000+00:00"
    assert rows["a" * 32]["item_type"] == "store"
    assert rows["a" * 32]["log_level"] == "warning"
    assert rows["a" * 32]["component"] == "legacy-job"
    assert [b["title"] for b in live_server.bugs()] == ["Critical: scanner - Scanner crashed"]


# The pure parts, without a server.


ROW = {
    "id": "1", "event_id": "0123456789abcdef0123456789abcdef", "project_id": "1",
    "log_level": "error", "component": "ocr-analyser", "message": "ValueError: page 3 is empty",
    "context": {"tags": {"component": "ocr-analyser", "region": "eu"}, "extra": {"attempt": 2},
                "contexts": {"trace": {"trace_id": "feedfacefeedfacefeedfacefeedface"}},
                "environment": "production", "breadcrumbs": [{"message": "opened"}]},
    "error_type": "ValueError", "error_message": "page 3 is empty",
    "stack_trace": 'Traceback (most recent call last):\n  File "a.py", line 3, in <module>\n'
                   "ValueError: page 3 is empty",
    "request_id": "feedfacefeedfacefeedfacefeedface", "workspace_id": None,
    "fingerprint": "f" * 64, "created_at": "2026-11-28T13:48:28.340852+00:00",
    "item_type": "event", "bug": None,
}
BUG = {"title": "t", "description": "d", "severity": "critical", "priority": "urgent",
       "grouping_version": 1}


@pytest.mark.parametrize("row", [
    ROW,
    {**ROW, "log_level": "critical", "bug": BUG},
    {**ROW, "bug": BUG},  # a bug below critical: an unhandled exception
    {**ROW, "component": "cron", "workspace_id": "ws-1", "request_id": "req-9",
     "context": {"logger": "cron"}},
    {**ROW, "component": "unknown", "context": {}, "error_type": None, "error_message": None,
     "stack_trace": None, "message": "Disk almost full", "request_id": None,
     "log_level": "warning"},
], ids=["handled", "critical", "unhandled", "tags", "message"])
def test_a_rebuilt_event_normalises_to_the_same_row(row: dict[str, Any]) -> None:
    event = event_from_row(row)
    again = normalize_event(event, event_id=None, project_id="1", received=datetime.now(UTC),
                            bug_level="critical")
    for name in ("event_id", "log_level", "component", "message", "error_type", "error_message",
                 "request_id", "workspace_id", "created_at"):
        assert getattr(again, name) == row[name], name
    assert (again.bug is not None) == (row["bug"] is not None)
    assert again.context_object().get("extra", {}).get("stack_trace") == row["stack_trace"]
    assert again.context_object().get("environment") == row["context"].get("environment")


def test_prepare_puts_the_target_key_where_the_request_had_one() -> None:
    target = Target("http://127.0.0.1:9/prefix/", "newkey", "7")
    header = Request("a", "envelope", b"x", (
        ("Host", "old:1"), ("Content-Length", "1"),
        ("X-Sentry-Auth", "Sentry sentry_key=oldkey, sentry_version=7")))
    path, headers, body = prepare(header, target)
    assert path == "/prefix/api/7/envelope/" and body == b"x"
    assert headers == {"X-Sentry-Auth": "Sentry sentry_key=newkey, sentry_version=7"}

    query = Request("b", "store", b"x", (), (("sentry_version", "7"), ("sentry_key", "oldkey")))
    path, headers, _ = prepare(query, target)
    assert path == "/prefix/api/7/store/?sentry_version=7&sentry_key=newkey" and headers == {}

    path, headers, _ = prepare(Request("c", "envelope", b"x"), target)
    assert headers["X-Sentry-Auth"].startswith("Sentry sentry_key=newkey,")


def test_targets_from_dsns() -> None:
    assert Target.from_dsn("https://abc@errors.example:8443/sentry/3") == Target(
        "https://errors.example:8443/sentry", "abc", "3")
    with pytest.raises(ReplayError):
        Target.from_dsn("http://errors.example/3")


@pytest.mark.parametrize("name", ["sentry-python-2.75.0/exception_gzip.bin",
                                  "sentry-python-2.75.0/unhandled_br.bin",
                                  "sentry-python-1.45.1/exception_store.bin"])
def test_new_ids_rewrite_every_event_id_and_keep_the_encoding(name: str) -> None:
    [request] = read_inputs([FIXTURES / name]).requests
    renewed = with_new_ids(request)
    assert renewed.headers == request.headers
    encoding = dict(request.headers).get("Content-Encoding")
    decode = {"gzip": gzip.decompress, "br": brotli.decompress}[str(encoding)]
    old, new = decode(request.body), decode(renewed.body)
    if request.endpoint == "store":
        old_event, new_event = json.loads(old), json.loads(new)
    else:
        old_envelope, new_envelope = parse_envelope(old), parse_envelope(new)
        assert new_envelope.event_id != old_envelope.event_id
        old_event, new_event = old_envelope.items[0].json(), new_envelope.items[0].json()
        assert new_event["event_id"] == new_envelope.event_id
    assert new_event.pop("event_id") != old_event.pop("event_id")
    assert new_event == old_event


def test_inputs_are_read_by_kind(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / ".applied").write_text("{}")
    row_line = json.dumps({"v": 1, "kind": "error_log", "received_at": "x", "row": ROW})
    (logs / "2026-11-28.jsonl").write_text("\n".join([
        row_line,
        json.dumps({"v": 1, "kind": "item_counts", "received_at": "x", "counts": {"event": 1}}),
        json.dumps({"v": 1, "kind": "check_in", "received_at": "x", "check_in": {
            "check_in_id": "c" * 32, "project_id": "1", "monitor_slug": "nightly",
            "status": "ok", "duration": 1.5, "environment": None, "release": None,
            "monitor_config": None, "created_at": "2026-11-28T01:00:00+00:00"}}),
        "{bad",
        '{"v": 1, "kind": "error_log", "row": {"tor',
    ]))
    (logs / "rejected.jsonl").write_text(json.dumps(
        {"v": 1, "kind": "rejected", "reason": "r", "lines": [row_line]}) + "\n")
    (logs / "notes.txt").write_text("not a request")
    inputs = read_inputs([logs])
    assert [r.source.rsplit("/", 1)[1] for r in inputs.requests] == [
        "2026-11-28.jsonl:1", "2026-11-28.jsonl:3", "rejected.jsonl:1"]
    assert inputs.skipped == {"item_counts lines": 1, "incomplete lines": 1, "other files": 1}
    assert len(inputs.unreadable) == 1 and "2026-11-28.jsonl:4" in inputs.unreadable[0]
    check_in = parse_envelope(inputs.requests[1].body).items[0]
    assert check_in.type == "check_in" and check_in.json()["check_in_id"] == "c" * 32

    named = read_inputs([logs / "notes.txt"])
    assert named.requests == [] and "neither an envelope" in named.unreadable[0]
