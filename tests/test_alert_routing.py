"""Which channels an alert goes to, how pending alerts become digests, and an alert's facts
from a bugs row and its stack trace (built from a real SDK event)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sentry_sdk
from alert_samples import bug_alert, monitor_alert
from conftest import sdk_events

from shim.alerts.channels import parse_channels
from shim.alerts.facts import bug_facts, top_frame
from shim.alerts.model import Alert, Digest
from shim.alerts.routing import channels_for, compose
from shim.core.event import normalize_event


def test_each_alert_goes_to_the_channels_whose_filters_it_passes() -> None:
    channels = parse_channels(
        "http://127.0.0.1:1/all?name=all,"
        "http://127.0.0.1:1/ocr?name=ocr&component=ocr*&level=critical,"
        "http://127.0.0.1:1/staging?name=staging&environment=staging,"
        "http://127.0.0.1:1/errors?name=errors&level=error&workspace=ws-7")
    names = lambda alert: [c.name for c in channels_for(alert, channels)]  # noqa: E731
    assert names(bug_alert()) == ["all", "ocr", "errors"]
    assert names(bug_alert(component="scanner")) == ["all", "errors"]
    assert names(bug_alert(level="warning", workspace="ws-1")) == ["all"]
    assert names(monitor_alert()) == ["all"]  # slug nightly-scan, production
    test = Alert(trigger="test", project_id="-", at="now")
    assert names(test) == ["all", "ocr", "staging", "errors"]


def test_pending_alerts_become_one_message_or_digests_of_a_bounded_size() -> None:
    one = bug_alert()
    assert compose([]) == [] and compose([one]) == [one]
    storm = [bug_alert(number=f"BUG-{n:05d}") for n in range(1, 1002)]
    messages = compose(storm)
    assert [type(m) for m in messages] == [Digest, Digest, Alert]
    assert [len(m.alerts) for m in messages if isinstance(m, Digest)] == [500, 500]
    assert messages[2] == storm[-1]


def scan_page() -> None:
    json.loads("{not json")


def test_the_top_frame_is_the_scanners_own_innermost_frame() -> None:
    with sdk_events() as events:
        try:
            scan_page()
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
    row = normalize_event(events[0], event_id=None, project_id="1",
                          received=datetime.now(UTC), bug_level="critical")
    assert row.stack_trace is not None and "json/decoder.py" in row.stack_trace
    frame = top_frame(row.stack_trace)
    assert frame is not None and frame.endswith(", in scan_page")
    assert frame.startswith('File "') and "test_alert_routing.py" in frame
    library_only = 'Traceback:\n  File "/usr/lib/python3.11/json/decoder.py", line 3, in decode\n'
    assert top_frame(library_only) == 'File "/usr/lib/python3.11/json/decoder.py", line 3, in decode'
    assert top_frame(None) is None and top_frame("ValueError: x") is None


def test_bug_facts_from_a_bugs_row() -> None:
    row = {"bug_number": "BUG-00003", "title": "Critical: ocr - KeyError", "status": "open",
           "component": "ocr", "workspace_id": None, "occurrence_count": 4,
           "first_occurred_at": "2026-12-07T10:00:00+00:00",
           "last_occurred_at": "2026-12-07T11:00:00+00:00", "error_type": "KeyError",
           "error_message": "'page'", "stack_trace": 'x\n  File "scan.py", line 9, in run\n'}
    facts = bug_facts(row, "critical")
    assert (facts.number, facts.occurrence_count, facts.top_frame) == (
        "BUG-00003", 4, 'File "scan.py", line 9, in run')
