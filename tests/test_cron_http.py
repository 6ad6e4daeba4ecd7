"""The HTTP check-in route scripts without an SDK use (``GET|POST
/api/<project>/cron/<slug>/<key>/?status=...``), against a real ``shim serve``: it stores the
same ``check_ins`` row an SDK's check-in does, finishes a run by ``check_in_id``, and refuses a
bad status or key with the JSON errors used everywhere else."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from conftest import PUBLIC_KEY, LiveServer, expect_ok, run_script, script, sdk_python

from shim.monitors.schedule import Crontab, Interval, MonitorConfig, parse_monitor_config

OTHER_PROJECT_KEY = "f0123456789abcdef0123456789abcde"


def call(server: LiveServer, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{server.url}{path}", data=body,
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_an_http_check_in_is_stored_as_an_sdk_check_in_is(live_server: LiveServer,
                                                          sdk_major: str) -> None:
    expect_ok(run_script(script("""
        import os
        import sentry_sdk
        from sentry_sdk.crons import MonitorStatus, capture_checkin

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, release="scanner@2.1")
        capture_checkin(monitor_slug="sdk-job", status=MonitorStatus.OK)
    """), live_server.dsn, python=sdk_python(sdk_major)))
    status, answer = call(live_server,
                          f"/api/1/cron/http-job/{PUBLIC_KEY}/?status=ok&release=scanner@2.1")
    assert status == 202 and len(answer["id"]) == 32
    rows = {r.pop("monitor_slug"): r for r in live_server.query("SELECT * FROM check_ins")}
    sdk, http = rows["sdk-job"], rows["http-job"]
    assert http["check_in_id"] == answer["id"]
    for row in (sdk, http):
        for column in ("check_in_id", "created_at", "updated_at"):
            assert row.pop(column)
    assert http == sdk == {"project_id": "1", "status": "ok", "duration": None,
                           "environment": "production", "release": "scanner@2.1",
                           "monitor_config": None}
    assert live_server.item_counts() == {"check_in": 2}


def test_a_run_started_by_get_is_finished_by_post_with_its_id(live_server: LiveServer) -> None:
    path = f"/api/1/cron/nightly-scan/{PUBLIC_KEY}/"
    status, started = call(live_server, f"{path}?status=in_progress&environment=staging")
    assert status == 202
    config = {"schedule": {"type": "crontab", "value": "0 3 * * *"}, "checkin_margin": 5}
    body = json.dumps({"status": "error", "duration": 12.5, "monitor_config": config}).encode()
    # As with Sentry, each call names its environment (production when it does not).
    status, finished = call(live_server, f"{path}?check_in_id={started['id']}&environment=staging",
                            body)
    assert (status, finished) == (202, started)
    [row] = live_server.query("SELECT * FROM check_ins")
    assert (row["status"], row["duration"], row["environment"]) == ("error", 12.5, "staging")
    assert json.loads(row["monitor_config"]) == config
    status, again = call(live_server, f"{path}?status=ok")  # no id: a new check-in
    assert status == 202 and again["id"] != started["id"]
    assert len(live_server.query("SELECT * FROM check_ins")) == 2


@pytest.mark.parametrize("live_server", [{"SHIM_PUBLIC_KEYS":
                                          f"{PUBLIC_KEY},{OTHER_PROJECT_KEY}:2"}],
                         indirect=True)
def test_bad_input_and_keys_are_refused_as_everywhere_else(live_server: LiveServer) -> None:
    path = f"/api/1/cron/job/{PUBLIC_KEY}/"
    assert call(live_server, f"{path}?status=done") == (400, {
        "detail": "status 'done' must be one of in_progress, ok, error", "code": "bad_request",
        "field": "status"})
    assert call(live_server, path)[1]["field"] == "status"
    status, answer = call(live_server, f"{path}?status=ok&check_in_id=nope")
    assert (status, answer["detail"]) == (400, "check_in_id 'nope' is not a UUID")
    status, answer = call(live_server, f"{path}?status=ok&duration=long")
    assert (status, answer["field"]) == (400, "duration")
    status, answer = call(live_server, path, b"status=ok")
    assert (status, answer["code"]) == (400, "bad_request")
    for body, field in (({"status": "ok", "duration": "nan"}, "duration"),
                        ({"status": "ok", "duration": -1}, "duration"),
                        ({"status": "ok", "environment": {"name": "x"}}, "environment"),
                        ({"status": "ok", "monitor_config": "0 3 * * *"}, "monitor_config"),
                        ({"status": "ok", "check_in_id": 7}, "check_in_id")):
        status, answer = call(live_server, path, json.dumps(body).encode())
        assert (status, answer["field"]) == (400, field), body
    status, answer = call(live_server, f"{path}?status=ok&environment={'e' * 65}")
    assert (status, answer["detail"]) == (
        400, "check_in environment is longer than 64 characters")
    status, answer = call(live_server, path, json.dumps({"status": "ok",
                                                         "release": "r" * 201}).encode())
    assert (status, answer["detail"]) == (400, "check_in release is longer than 200 characters")
    status, answer = call(live_server, "/api/x/cron/job/k/?status=ok")
    assert (status, answer["detail"]) == (400, "project id 'x' must be a number")
    assert call(live_server, "/api/1/cron/job/0000deadbeef/?status=ok") == (401, {
        "detail": "unknown DSN key", "code": "unauthorized"})
    assert call(live_server, f"/api/1/cron/job/{OTHER_PROJECT_KEY}/?status=ok") == (403, {
        "detail": "this DSN key is not valid for project 1", "code": "forbidden"})
    assert live_server.query("SELECT * FROM check_ins") == []


NOTIFY = ("https://hooks.slack.com/services/T01/B02/XXslackSECRETxx?level=critical,"
          "telegram+http://127.0.0.1:9/bot1:XXtelegramSECRETxx/sendMessage?chat_id=5,"
          "smtp://ops%40x.org:XXmailSECRETxx@127.0.0.1:9/?to=a@x.org")


@pytest.mark.parametrize("live_server", [{"SHIM_NOTIFY": NOTIFY, "SHIM_LOG_LEVEL": "debug",
                                          "SHIM_WEBHOOK_SECRET": "XXwebhookSECRETxx0123"}],
                         indirect=True)
def test_healthz_lists_the_channels_masked_and_no_secret_reaches_the_log(
        live_server: LiveServer) -> None:
    with urllib.request.urlopen(f"{live_server.url}/healthz", timeout=10) as answer:
        health = answer.read().decode()
    assert json.loads(health)["alerts"]["channels"] == [
        {"name": "slack", "kind": "slack", "url": "slack+https://hooks.slack.com/services/***",
         "filters": "level>=critical"},
        {"name": "telegram", "kind": "telegram",
         "url": "telegram+http://127.0.0.1:9/bot***/sendMessage?chat_id=5", "filters": ""},
        {"name": "email", "kind": "email", "url": "smtp://ops%40x.org:***@127.0.0.1:9/?to=a@x.org",
         "filters": ""}]
    assert call(live_server, f"/api/1/cron/job/{PUBLIC_KEY}/?status=ok")[0] == 202
    assert "SECRET" not in health + live_server.log()


def test_an_sdk_monitor_config_is_read_as_the_sdk_sends_it(live_server: LiveServer,
                                                           sdk_major: str) -> None:
    expect_ok(run_script(script("""
        import os
        import sentry_sdk
        from sentry_sdk.crons import monitor

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True)
        config = {"schedule": {"type": "crontab", "value": "30 2 * * *"}, "checkin_margin": 5,
                  "max_runtime": 45, "timezone": "America/New_York",
                  "failure_issue_threshold": 2, "recovery_threshold": 3}

        @monitor(monitor_slug="nightly", monitor_config=config)
        def nightly():
            pass

        @monitor(monitor_slug="often", monitor_config={
            "schedule": {"type": "interval", "value": 10, "unit": "minute"}})
        def often():
            pass

        nightly()
        often()
    """), live_server.dsn, python=sdk_python(sdk_major)))
    rows = {r["monitor_slug"]: r for r in live_server.query("SELECT * FROM check_ins")}
    nightly = parse_monitor_config(json.loads(rows["nightly"]["monitor_config"]))
    assert nightly == MonitorConfig(Crontab("30 2 * * *"), timedelta(minutes=5),
                                    timedelta(minutes=45), "America/New_York", 2, 3)
    often = parse_monitor_config(json.loads(rows["often"]["monitor_config"]))
    assert often.schedule == Interval(10, "minute")
