"""``shim monitors``: what the stored check-ins say of each monitor (``shim.monitors.summary``),
judged at a given time; and the command itself against a real server fed by a real SDK's
``@monitor`` and by the HTTP check-in route."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import PUBLIC_KEY, LiveServer, expect_ok, run_script, run_shim, script

from shim.monitors.summary import summarise

NIGHTLY = {"schedule": {"type": "crontab", "value": "0 3 * * *"}, "checkin_margin": 5,
           "max_runtime": 30}
DAY = datetime(2026, 12, 8, tzinfo=UTC)


def row(status: str, at: datetime, check_in_id: str = "c1", config: Any = NIGHTLY,
        slug: str = "nightly", environment: str | None = "production") -> dict[str, Any]:
    return {"check_in_id": check_in_id, "project_id": "1", "monitor_slug": slug,
            "status": status, "environment": environment, "created_at": at.isoformat(),
            "monitor_config": json.dumps(config) if config else None, "duration": None}


def test_a_run_on_time_then_the_next_one_due() -> None:
    rows = [row("in_progress", DAY.replace(hour=3)), row("ok", DAY.replace(hour=3, minute=4))]
    [m] = summarise(rows, DAY.replace(hour=12))
    assert (m.schedule, m.state, m.last_status, m.check_ins) == ("0 3 * * *", "ok", "ok", 2)
    assert m.next_expected == (DAY + timedelta(days=1)).replace(hour=3).isoformat()


def test_a_run_that_never_came_is_missed_and_an_error_is_failing() -> None:
    rows = [row("ok", DAY.replace(hour=3))]
    [on_time] = summarise(rows, (DAY + timedelta(days=1)).replace(hour=3, minute=4))
    assert on_time.state == "ok"  # within the 5-minute margin
    [late] = summarise(rows, (DAY + timedelta(days=1)).replace(hour=3, minute=6))
    assert late.state in ("missed", "failing")  # one failure is the threshold: failing
    assert late.state == "failing"
    [failed] = summarise([row("error", DAY.replace(hour=3))], DAY.replace(hour=4))
    assert failed.state == "failing"


def test_a_run_past_its_max_runtime_timed_out() -> None:
    started = [row("in_progress", DAY.replace(hour=3))]
    [running] = summarise(started, DAY.replace(hour=3, minute=10))
    assert running.state == "in_progress"
    [stuck] = summarise(started, DAY.replace(hour=3, minute=40))
    assert stuck.state == "failing"  # a timeout is a failure


def test_a_script_that_only_pings_has_no_schedule() -> None:
    rows = [row("ok", DAY, config=None, slug="ping", environment=None),
            row("error", DAY + timedelta(hours=1), "c2", config=None, slug="ping",
                environment=None)]
    [m] = summarise(rows, DAY + timedelta(hours=2))
    assert (m.schedule, m.state, m.next_expected, m.environment) == (None, "error", None, None)


MONITORED = script("""
    import os
    import sentry_sdk
    from sentry_sdk.crons import monitor
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"])

    @monitor(monitor_slug="nightly-scan", monitor_config={
        "schedule": {"type": "crontab", "value": "0 3 * * *"}, "checkin_margin": 5,
        "max_runtime": 30, "timezone": "Europe/London"})
    def scan():
        return 42

    scan()
    sentry_sdk.flush()
""")


def test_shim_monitors_against_a_real_server(live_server: LiveServer) -> None:
    expect_ok(run_script(MONITORED, live_server.dsn))
    ping = f"{live_server.url}/api/1/cron/backup/{PUBLIC_KEY}/?status=ok"
    with urllib.request.urlopen(ping, timeout=5) as answer:
        assert answer.status == 202
    listed = run_shim(live_server, "monitors", "--json")
    assert listed.returncode == 0, listed.stderr
    by_slug = {m["slug"]: m for m in json.loads(listed.stdout)}
    assert set(by_slug) == {"nightly-scan", "backup"}
    nightly = by_slug["nightly-scan"]
    assert (nightly["schedule"], nightly["state"], nightly["check_ins"]) == (
        "0 3 * * * (Europe/London)", "ok", 1)  # in_progress, then ok: one row, updated
    expected = datetime.fromisoformat(nightly["next_expected"])
    assert expected > datetime.now(UTC) and expected.astimezone().minute == 0
    assert (by_slug["backup"]["schedule"], by_slug["backup"]["state"]) == (None, "ok")

    table = run_shim(live_server, "monitors")
    assert "nightly-scan" in table.stdout and "0 3 * * * (Europe/London)" in table.stdout
    assert "(none sent)" in table.stdout  # the ping-only monitor
    shown = run_shim(live_server, "monitors", "show", "nightly-scan")
    assert shown.returncode == 0 and "ok" in shown.stdout and "in_progress" not in shown.stdout
    missing = run_shim(live_server, "monitors", "show", "nope")
    assert missing.returncode == 1 and "no such monitor: nope" in missing.stderr


@pytest.mark.parametrize("args", [["show"], ["list"]])
def test_bad_monitors_arguments_say_what_to_type(live_server: LiveServer, args: list[str]
                                                 ) -> None:
    done = run_shim(live_server, "monitors", *args)
    assert done.returncode == 1 and "shim monitors show SLUG" in done.stderr
