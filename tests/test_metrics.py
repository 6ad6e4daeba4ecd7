"""``GET /metrics``: a real server under a real SDK's traffic reports numbers that agree with its
database, with one worker and with ``--workers 2`` (each scrape adds up every process); the token
guards it; it is off without one; no label carries an id.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    PUBLIC_KEY,
    LiveServer,
    answers_of,
    expect_ok,
    run_script,
    run_scripts,
    script,
    start_server,
)
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from shim.app import create_app
from shim.core.auth import Keys
from shim.settings import Settings

TOKEN = "metrics-token-0123456789abcdef"

TRAFFIC = script("""
    import logging, os
    import probe
    import sentry_sdk
    from sentry_sdk.crons import capture_checkin
    # (no client reports: one sent at exit, after the answers are printed, would go uncounted)
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], send_client_reports=False)
    probe.record_answers()
    for page in range(3):
        try:
            raise ValueError(f"page {page} is blank")
        except ValueError:
            sentry_sdk.capture_exception()
    sentry_sdk.capture_message("queue is slow", level="warning")
    sentry_sdk.capture_message("scan finished", level="info")
    check = capture_checkin(monitor_slug="nightly", status="in_progress")
    capture_checkin(monitor_slug="nightly", check_in_id=check, status="ok", duration=2.0)
    probe.print_answers()
""")


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: LiveServer, token: str | None = TOKEN) -> Samples:
    """Every sample of one scrape, by name and labels."""
    request = urllib.request.Request(f"{server.url}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    assert not re.search(r'="[0-9a-f]{32}"', text), "an id as a label value"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (sample, labels), value in samples.items()
            if sample == name and value}


def agrees_with_the_database(server: LiveServer, envelopes: int) -> None:
    samples = scrape(server)
    levels = {r["log_level"]: r["n"] for r in server.query(
        "SELECT log_level, count(*) AS n FROM error_logs GROUP BY log_level")}
    assert by_label(samples, "shim_events_stored_total", "level") == levels
    assert by_label(samples, "shim_items_total", "type") == server.item_counts()
    assert by_label(samples, "shim_envelopes_total", "status") == {"200": envelopes}
    assert samples[("shim_request_duration_seconds_count", ())] == envelopes
    assert samples[("shim_write_batch_requests_sum", ())] == envelopes  # each committed once
    assert samples[("shim_write_duration_seconds_count", ())] >= 1
    assert samples[("shim_writer_queue_requests", ())] == 0


@pytest.mark.parametrize("live_server", [{"SHIM_METRICS_TOKEN": TOKEN}], indirect=True)
def test_the_numbers_agree_with_the_database(live_server: LiveServer) -> None:
    result = run_script(TRAFFIC, live_server.dsn)
    expect_ok(result)
    envelopes = len(answers_of(result))
    assert envelopes == 7  # 3 exceptions, 2 messages, 2 check-ins
    agrees_with_the_database(live_server, envelopes)
    samples = scrape(live_server)
    assert by_label(samples, "shim_check_ins_total", "status") == {"in_progress": 1, "ok": 1}
    assert samples[("shim_store_lag_bytes", ())] == 0

    wrong = run_script(TRAFFIC, live_server.dsn.replace(PUBLIC_KEY, "f" * 32))
    assert {a["status"] for a in answers_of(wrong)} == {401}
    refused = by_label(scrape(live_server), "shim_envelopes_total", "status")
    assert refused == {"200": envelopes, "401": len(answers_of(wrong))}
    assert {labels for (name, labels) in scrape(live_server)
            if name == "shim_envelopes_total"} >= {
        (("result", "rejected"), ("status", "401")), (("result", "accepted"), ("status", "200"))}


def test_two_workers_report_one_whole_server(tmp_path: Path) -> None:
    with start_server(tmp_path / "data", tmp_path / "server.log", {"SHIM_METRICS_TOKEN": TOKEN},
                      args=["--workers", "2"]) as server:
        results = run_scripts([TRAFFIC] * 4, server.dsn)
        for result in results:
            expect_ok(result)
        envelopes = sum(len(answers_of(r)) for r in results)
        assert envelopes == 28
        for _ in range(6):  # whichever worker answers the scrape, the whole server is in it
            agrees_with_the_database(server, envelopes)
        assert len(server.error_logs()) == 20
        assert len(list((tmp_path / "data" / "metrics").glob("*.db"))) >= 2  # both counted


@pytest.mark.parametrize("live_server", [{"SHIM_METRICS_TOKEN": TOKEN}], indirect=True)
def test_the_token_guards_the_metrics(live_server: LiveServer) -> None:
    for token in (None, "wrong-token-0123456789abcdef", TOKEN[:-1]):
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(live_server, token)
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"] == "Bearer"
    assert scrape(live_server)  # and with it, the numbers
    with urllib.request.urlopen(f"{live_server.url}/healthz", timeout=5) as response:
        refused = json.loads(response.read())["refused"]
    assert refused["401"] == 0  # not taken for a scanner's bad DSN key


def test_without_a_token_there_is_no_metrics_route(tmp_path: Path) -> None:
    settings = Settings.from_env({"SHIM_DATA_DIR": str(tmp_path), "SHIM_JOURNAL_PROCESS": "0"})
    with TestClient(create_app(settings, Keys([("k" * 32, None)]))) as client:
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 404
        assert answer.json()["code"] == "not_found"
    with pytest.raises(ValueError, match="at least 16"):
        Settings.from_env({"SHIM_METRICS_TOKEN": "short"})
