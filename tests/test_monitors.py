"""Cron monitors, the pure part: ``monitor_config`` read and checked, the next expected time
(crontabs in a time zone across daylight-saving nights, intervals), and the evaluator's scenarios
with the time given, never read: on time, late, missed, timeout, error, recovery, a server that
was down for an hour, and DST nights."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shim.monitors.evaluate import (
    Finding,
    MonitorState,
    bug_title,
    evaluate,
    new_monitor,
    record_check_in,
    state_from_json,
    update_config,
)
from shim.monitors.schedule import (
    Crontab,
    Interval,
    MonitorConfig,
    MonitorConfigError,
    next_expected,
    parse_monitor_config,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def config(schedule: dict[str, Any] | None = None, **options: Any) -> MonitorConfig:
    return parse_monitor_config({"schedule": schedule or {"type": "crontab",
                                                          "value": "0 3 * * *"}, **options})


def test_a_full_monitor_config() -> None:
    parsed = parse_monitor_config({
        "schedule": {"type": "crontab", "value": " 30  2 * * * "}, "checkin_margin": 5,
        "max_runtime": 90, "timezone": "Europe/London", "failure_issue_threshold": 3,
        "recovery_threshold": 2.0, "owner": "ops"})
    assert parsed == MonitorConfig(Crontab("30 2 * * *"), timedelta(minutes=5),
                                   timedelta(minutes=90), "Europe/London", 3, 2)
    assert parsed.describe() == "30 2 * * * (Europe/London)"
    defaults = parse_monitor_config({"schedule": {"type": "interval", "value": 10,
                                                  "unit": "minute"}})
    assert defaults == MonitorConfig(Interval(10, "minute"))
    assert (defaults.checkin_margin, defaults.max_runtime) == (timedelta(minutes=1),
                                                              timedelta(minutes=30))
    assert defaults.describe() == "every 10 minutes"


@pytest.mark.parametrize(("raw", "problem"), [
    ("0 3 * * *", "monitor_config must be an object"),
    ({}, "schedule must be an object"),
    ({"schedule": {"type": "cron", "value": "x"}}, "schedule type must be crontab or interval"),
    ({"schedule": {"type": "crontab", "value": "61 3 * * *"}}, "crontab '61 3 * * *'"),
    ({"schedule": {"type": "crontab", "value": ""}}, "value must be a crontab string"),
    ({"schedule": {"type": "interval", "value": 0, "unit": "hour"}}, "positive integer"),
    ({"schedule": {"type": "interval", "value": 1.5, "unit": "hour"}}, "positive integer"),
    ({"schedule": {"type": "interval", "value": True, "unit": "hour"}}, "positive integer"),
    ({"schedule": {"type": "interval", "value": 2, "unit": "fortnight"}}, "unit must be one of"),
    ({"schedule": {"type": "interval", "value": 2, "unit": "day"}, "timezone": "Mars/Olympus"},
     "not a known time zone"),
    ({"schedule": {"type": "interval", "value": 2, "unit": "day"}, "checkin_margin": -1},
     "checkin_margin must be a number of minutes"),
    ({"schedule": {"type": "interval", "value": 2, "unit": "day"}, "max_runtime": "30"},
     "max_runtime must be a number of minutes"),
    ({"schedule": {"type": "interval", "value": 2, "unit": "day"},
      "failure_issue_threshold": 0}, "failure_issue_threshold must be a whole number"),
])
def test_a_bad_monitor_config_names_the_field(raw: Any, problem: str) -> None:
    with pytest.raises(MonitorConfigError, match=re.escape(problem)):
        parse_monitor_config(raw)


@pytest.mark.parametrize(("zone", "crontab", "after", "expected"), [
    # Europe/London, spring forward on 2027-03-28 (01:00 GMT -> 02:00 BST): 02:30 exists, BST.
    ("Europe/London", "30 2 * * *", utc(2027, 3, 27, 3), utc(2027, 3, 28, 1, 30)),
    ("Europe/London", "30 2 * * *", utc(2027, 3, 28, 1, 30), utc(2027, 3, 29, 1, 30)),
    # 01:30 does not exist that night: cron runs it right after the change (02:00 BST).
    ("Europe/London", "30 1 * * *", utc(2027, 3, 27, 12), utc(2027, 3, 28, 1, 0)),
    # Fall back on 2027-10-31 (02:00 BST -> 01:00 GMT): 02:30 once (GMT); 01:30 once (the first).
    ("Europe/London", "30 2 * * *", utc(2027, 10, 30, 12), utc(2027, 10, 31, 2, 30)),
    ("Europe/London", "30 1 * * *", utc(2027, 10, 30, 12), utc(2027, 10, 31, 0, 30)),
    ("Europe/London", "30 1 * * *", utc(2027, 10, 31, 0, 30), utc(2027, 11, 1, 1, 30)),
    # America/New_York, spring forward on 2027-03-14 (02:00 EST -> 03:00 EDT): no 02:30 that
    # night, so the 02:30 job runs at 03:00 EDT (07:00 UTC); the next night at 02:30 EDT.
    ("America/New_York", "30 2 * * *", utc(2027, 3, 13, 7, 30), utc(2027, 3, 14, 7, 0)),
    ("America/New_York", "30 2 * * *", utc(2027, 3, 14, 7, 0), utc(2027, 3, 15, 6, 30)),
    # Fall back on 2027-11-07 (02:00 EDT -> 01:00 EST): 01:30 runs once, 02:30 is EST.
    ("America/New_York", "30 1 * * *", utc(2027, 11, 6, 12), utc(2027, 11, 7, 5, 30)),
    ("America/New_York", "30 1 * * *", utc(2027, 11, 7, 5, 30), utc(2027, 11, 8, 6, 30)),
    ("America/New_York", "30 2 * * *", utc(2027, 11, 6, 12), utc(2027, 11, 7, 7, 30)),
    ("UTC", "0 3 * * *", utc(2026, 12, 7, 3), utc(2026, 12, 8, 3)),  # strictly after
    ("UTC", "*/15 * * * *", utc(2026, 12, 7, 3, 7, 42), utc(2026, 12, 7, 3, 15)),
])
def test_crontabs_follow_the_time_zone_across_dst(zone: str, crontab: str, after: datetime,
                                                  expected: datetime) -> None:
    schedule = config({"type": "crontab", "value": crontab}, timezone=zone)
    assert next_expected(schedule, after) == expected


@pytest.mark.parametrize(("zone", "start"), [
    ("America/New_York", utc(2027, 3, 14, 4)), ("America/New_York", utc(2027, 11, 7, 3)),
    ("Europe/London", utc(2027, 3, 27, 22)), ("Europe/London", utc(2027, 10, 30, 22)),
])
def test_an_hourly_job_runs_every_real_hour_on_dst_nights(zone: str, start: datetime) -> None:
    hourly = config({"type": "crontab", "value": "0 * * * *"}, timezone=zone)
    moments = [start]
    for _ in range(6):
        moments.append(next_expected(hourly, moments[-1]))
    assert [b - a for a, b in itertools.pairwise(moments[1:])] == [
        timedelta(hours=1)] * 5


def test_intervals() -> None:
    every = lambda value, unit, zone="UTC": config(  # noqa: E731
        {"type": "interval", "value": value, "unit": unit}, timezone=zone)
    assert next_expected(every(10, "minute"), utc(2026, 12, 7, 12, 3)) == utc(2026, 12, 7, 12, 13)
    assert next_expected(every(2, "hour"), utc(2026, 12, 7, 23)) == utc(2026, 12, 8, 1)
    # A day keeps the local time of day across the spring-forward night (23 real hours).
    assert next_expected(every(1, "day", "America/New_York"),
                         utc(2027, 3, 13, 12)) == utc(2027, 3, 14, 11)
    assert next_expected(every(1, "week"), utc(2026, 12, 7, 3)) == utc(2026, 12, 14, 3)
    assert next_expected(every(1, "month"), utc(2027, 1, 31, 3)) == utc(2027, 2, 28, 3)
    assert next_expected(every(1, "year"), utc(2028, 2, 29, 3)) == utc(2029, 2, 28, 3)


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


def started(state: MonitorState, check_in_id: str, at: datetime) -> MonitorState:
    state, found = record_check_in(state, check_in_id, "in_progress", at)
    assert found == []
    return state


def test_on_time_and_late_within_the_margin_raise_nothing() -> None:
    state = new_monitor(config(checkin_margin=5))
    assert evaluate(state, utc(2026, 12, 9))[1] == []  # expects nothing before its first run
    state = started(state, "a", utc(2026, 12, 7, 3, 0, 10))
    state, found = record_check_in(state, "a", "ok", utc(2026, 12, 7, 3, 4))
    assert kinds(found) == ["ok"] and state.next_expected == utc(2026, 12, 8, 3)
    state, found = evaluate(state, utc(2026, 12, 8, 3, 4, 59))
    assert found == []
    state = started(state, "b", utc(2026, 12, 8, 3, 4, 30))  # late, within the margin
    state, found = evaluate(state, utc(2026, 12, 8, 3, 30))
    assert found == [] and state.status == "ok"


def test_a_missed_run_opens_a_failure_then_recovers() -> None:
    state = started(new_monitor(config()), "a", utc(2026, 12, 7, 3))
    state, _ = record_check_in(state, "a", "ok", utc(2026, 12, 7, 3, 2))
    state, found = evaluate(state, utc(2026, 12, 8, 3, 0, 59))
    assert found == []
    state, found = evaluate(state, utc(2026, 12, 8, 3, 1))
    assert found == [Finding("missed", utc(2026, 12, 8, 3, 1), expected=utc(2026, 12, 8, 3)),
                     Finding("failing", utc(2026, 12, 8, 3, 1), expected=utc(2026, 12, 8, 3),
                             reason="missed")]
    assert state.status == "failing" and state.next_expected == utc(2026, 12, 9, 3)
    assert bug_title("nightly-scan", found[1].reason) == "Missed check-in: nightly-scan"
    state, found = evaluate(state, utc(2026, 12, 8, 12))
    assert found == []  # one missed per slot, not one per evaluation
    state, found = record_check_in(state, "c", "ok", utc(2026, 12, 8, 12, 5))  # run by hand
    assert kinds(found) == ["ok", "recovered"] and state.status == "ok"


def test_a_run_past_its_max_runtime_times_out_and_its_late_end_is_ignored() -> None:
    state = started(new_monitor(config(max_runtime=30)), "a", utc(2026, 12, 7, 3))
    state, found = evaluate(state, utc(2026, 12, 7, 3, 29, 59))
    assert found == []
    state, found = evaluate(state, utc(2026, 12, 7, 3, 30))
    assert kinds(found) == ["timeout", "failing"] and found[0].check_in_id == "a"
    assert bug_title("sync", found[1].reason) == "Cron failure: sync"
    state, found = record_check_in(state, "a", "ok", utc(2026, 12, 7, 3, 45))
    assert found == [] and state.open_runs == ()


def test_errors_open_a_failure_at_the_threshold_and_recovery_needs_its_count() -> None:
    hourly = config({"type": "crontab", "value": "0 * * * *"}, failure_issue_threshold=2,
                    recovery_threshold=2)
    state = new_monitor(hourly)
    outcomes = []
    for hour, status in enumerate(["ok", "error", "error", "error", "ok", "ok", "error"]):
        state = started(state, f"run{hour}", utc(2026, 12, 7, hour))
        state, found = record_check_in(state, f"run{hour}", status,
                                       utc(2026, 12, 7, hour, 10))
        state, more = evaluate(state, utc(2026, 12, 7, hour, 30))
        outcomes.append(kinds(found + more))
    assert outcomes == [["ok"], ["error"], ["error", "failing"], ["error"], ["ok"],
                        ["ok", "recovered"], ["error"]]
    assert state.consecutive_failures() == 1


def test_script_check_ins_without_ids_close_the_latest_open_run() -> None:
    state = started(new_monitor(config()), "generated-1", utc(2026, 12, 7, 3))
    state, found = record_check_in(state, "generated-2", "error", utc(2026, 12, 7, 3, 5))
    assert kinds(found) == ["error", "failing"] and state.open_runs == ()
    assert state.next_expected == utc(2026, 12, 8, 3)  # the end is not a second start
    state, found = record_check_in(state, "heartbeat", "ok", utc(2026, 12, 8, 3))
    assert kinds(found) == ["ok", "recovered"]
    assert state.next_expected == utc(2026, 12, 9, 3)  # a heartbeat is a start


def test_a_server_down_for_an_hour_raises_no_false_missed_runs() -> None:
    hourly = config({"type": "crontab", "value": "0 * * * *"}, checkin_margin=2)
    state = started(new_monitor(hourly), "a", utc(2026, 12, 7, 9))
    state, _ = record_check_in(state, "a", "ok", utc(2026, 12, 7, 9, 1))
    # Down from 09:30 to 11:00: the 10:00 run may have checked in while nobody listened.
    state, found = evaluate(state, utc(2026, 12, 7, 11, 1), listening_since=utc(2026, 12, 7, 11))
    assert found == [] and state.next_expected == utc(2026, 12, 7, 11)
    # Caught up to 11:01:59 (the store was behind the wall clock): the 11:00 window is open.
    state, found = evaluate(state, utc(2026, 12, 7, 11, 1, 59), utc(2026, 12, 7, 11))
    assert found == []
    state, found = evaluate(state, utc(2026, 12, 7, 11, 2), utc(2026, 12, 7, 11))
    assert kinds(found) == ["missed", "failing"] and found[0].expected == utc(2026, 12, 7, 11)


def test_a_long_outage_of_a_minutely_job_is_bounded() -> None:
    minutely = config({"type": "interval", "value": 1, "unit": "minute"}, checkin_margin=0)
    state = started(new_monitor(minutely), "a", utc(2026, 12, 7))
    state, found = evaluate(state, utc(2026, 12, 10))
    assert kinds(found).count("missed") == 1000
    assert state.next_expected == utc(2026, 12, 10, 0, 1)


def test_a_nightly_new_york_job_through_both_dst_nights() -> None:
    """A 02:30 job (America/New_York) run by cron every night from March to November: it never
    misses, and the night 02:30 does not exist it is expected at 03:00 EDT."""
    nightly = config({"type": "crontab", "value": "30 2 * * *"}, timezone="America/New_York")
    state = started(new_monitor(nightly), "first", utc(2027, 3, 10, 7, 30))
    state, _ = record_check_in(state, "first", "ok", utc(2027, 3, 10, 7, 33))
    runs = 0
    while state.next_expected is not None and state.next_expected < utc(2027, 11, 10):
        due = state.next_expected
        state, found = evaluate(state, due + timedelta(seconds=30))
        assert found == []
        state = started(state, f"run{runs}", due + timedelta(seconds=20))
        state, found = record_check_in(state, f"run{runs}", "ok", due + timedelta(minutes=3))
        assert kinds(found) == ["ok"]
        local = due.astimezone(nightly.zone)
        assert (local.hour, local.minute) == ((3, 0) if due.date() == utc(2027, 3, 14).date()
                                              else (2, 30))
        runs += 1
    assert runs == 244  # every night from 2027-03-11 to 2027-11-09, none twice


def test_a_monitors_state_goes_to_json_and_back() -> None:
    london = config({"type": "crontab", "value": "30 2 * * *"}, timezone="Europe/London",
                    checkin_margin=2.5, max_runtime=90, failure_issue_threshold=2)
    state = started(new_monitor(london), "a", utc(2027, 3, 28, 1, 30))
    state, _ = record_check_in(state, "b", "error", utc(2027, 3, 28, 1, 31))
    state = started(state, "c", utc(2027, 3, 29, 1, 30))
    assert state.failing is False and state.open_runs
    again = state_from_json(json.loads(json.dumps(state.as_json())))
    assert again == state
    assert parse_monitor_config(london.as_json()) == london


def test_a_new_config_moves_the_next_expected_time() -> None:
    state = started(new_monitor(config()), "a", utc(2026, 12, 7, 3))
    assert state.next_expected == utc(2026, 12, 8, 3)
    state = update_config(state, config({"type": "interval", "value": 6, "unit": "hour"}))
    assert state.next_expected == utc(2026, 12, 7, 9)
    assert update_config(state, state.config) is state
