"""Error storms: past the threshold, repeats are stored slim but still counted exactly."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from conftest import LiveServer, expect_ok, run_script, script

from shim.core.event import normalize_event
from shim.core.records import ErrorLog
from shim.core.storm import WINDOW, StormGuard

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def crash(message: str = "boom 1") -> ErrorLog:
    return normalize_event({
        "level": "fatal", "message": message, "tags": {"component": "ocr"},
        "exception": {"values": [{"type": "ValueError", "value": message, "stacktrace": {
            "frames": [{"module": "ocr", "function": "scan", "lineno": 3, "in_app": True}]}}]},
        "extra": {"page": 3},
    }, event_id=uuid.uuid4().hex, project_id="1", received=RECEIVED, bug_level="critical")


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_full_until_the_threshold_then_slim_then_full_again_next_window() -> None:
    clock = Clock()
    guard = StormGuard(threshold=3, clock=clock)
    rows = guard.admit([crash(f"boom {i}") for i in range(5)])
    assert [r.stack_trace is not None for r in rows] == [True, True, True, False, False]
    slim = rows[-1]
    assert slim.fingerprint == rows[0].fingerprint and slim.error_type == "ValueError"
    context = slim.context_object()
    assert "extra" not in context and context["storm"]["slimmed"] is True
    assert context["tags"] == {"component": "ocr"}
    assert guard.slimmed == 2
    clock.now += WINDOW
    assert guard.admit([crash()])[0].stack_trace is not None


def test_a_slim_row_keeps_every_field_but_the_bulky_ones() -> None:
    """The slim row is built field by field: a field added to ErrorLog must not be lost here."""
    row = dataclasses.replace(crash("x" * 2000), request_id="req-1", workspace_id="ws-1",
                              item_type="store", fingerprint_v1="1" * 32)
    assert all(getattr(row, f.name) not in (None, "") for f in dataclasses.fields(ErrorLog))
    guard = StormGuard(threshold=1, clock=Clock())
    [_, slim] = guard.admit([crash(), row])
    bulky = {"message", "context", "stack_trace"}
    for field in dataclasses.fields(ErrorLog):
        if field.name not in bulky:
            assert getattr(slim, field.name) == getattr(row, field.name), field.name
    assert slim.message == row.message[:500] and slim.stack_trace is None
    assert slim.bug is row.bug is not None


def test_counters_stay_bounded_under_a_storm_of_distinct_fingerprints() -> None:
    clock = Clock()
    guard = StormGuard(threshold=1, clock=clock, max_fingerprints=50)
    storm = crash("storm")

    def full(fingerprint: str) -> bool:
        [row] = guard.admit([dataclasses.replace(storm, fingerprint=fingerprint)])
        return row.stack_trace is not None

    for n in range(500):  # all within one window: nothing has expired to make room
        assert full(f"fp-{n}")
        assert len(guard) <= 50
        clock.now += 0.01
    assert len(guard) == 50
    assert not full("fp-499")  # a recent fingerprint still has its counter: a repeat is slim
    assert full("fp-0")  # the oldest windows were dropped: an early one starts over, in full


def test_zero_means_always_in_full() -> None:
    rows = StormGuard(threshold=0).admit([crash() for _ in range(10)])
    assert all(r.stack_trace for r in rows)


@pytest.mark.parametrize("live_server", [{"SHIM_STORM_THRESHOLD": "5"}], indirect=True)
def test_a_storm_through_the_sdk_keeps_counts_exact(live_server: LiveServer) -> None:
    expect_ok(run_script(script("""
        import os, sentry_sdk
        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"])
        def scan(page):
            raise ValueError(f"page {page} unreadable")
        for page in range(30):
            try:
                scan(page)
            except ValueError:
                with sentry_sdk.new_scope() as scope:
                    scope.set_level("fatal")
                    sentry_sdk.capture_exception()
    """), live_server.dsn))
    rows = live_server.error_logs()
    [bug] = live_server.bugs()
    assert len(rows) == 30 and bug["occurrence_count"] == 30
    assert sum(1 for r in rows if r["stack_trace"]) == 5
    assert all(r["related_bug_id"] == bug["id"] for r in rows)
