"""What a monitor's check-ins, and the time that passes without them, mean. Pure: every function
takes a ``MonitorState`` and returns a new one with the ``Finding`` values to act on.

- A run starts with an ``in_progress`` check-in, or with an ``ok``/``error`` check-in that
  closes no open run (a heartbeat). Each start sets the next expected time (``next_expected``
  after the start).
- ``ok``/``error`` with the id of an open run closes it; without a known id it closes the most
  recent open run (a script's HTTP check-ins without ``check_in_id``), else it is a heartbeat.
- ``evaluate(state, now)``: an open run older than ``max_runtime`` times out; an expected start
  whose window (``next expected + checkin_margin``) has passed is missed, once per scheduled
  slot. ``now`` is the time the server has caught up to; a slot expected before
  ``listening_since`` (the server was down or not yet started) is skipped, not missed.
- ``error``, ``missed`` and ``timeout`` are failures. When the last ``failure_issue_threshold``
  results are all failures the monitor starts ``failing``; a failing monitor ``recovered`` after
  ``recovery_threshold`` ``ok`` results in a row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shim.monitors.schedule import MonitorConfig, next_expected, parse_monitor_config

FAILURES = frozenset({"error", "missed", "timeout"})
MAX_MISSED_PER_EVALUATION = 1000  # a long outage of a per-minute job: the rest are skipped
KEPT_RESULTS = 50
KEPT_TIMED_OUT = 20


@dataclass(frozen=True)
class Run:
    check_in_id: str
    started: datetime


@dataclass(frozen=True)
class Finding:
    """Something to store or tell: ``kind`` is ``ok``, ``error``, ``missed``, ``timeout``,
    ``failing`` or ``recovered``; ``at`` is when it happened (for ``missed``, the window's end);
    ``expected`` is the slot a ``missed`` run was due; ``reason`` is a ``failing`` monitor's
    last failure (``error``, ``missed``, ``timeout``)."""

    kind: str
    at: datetime
    check_in_id: str | None = None
    expected: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class MonitorState:
    config: MonitorConfig
    next_expected: datetime | None = None
    open_runs: tuple[Run, ...] = ()
    results: tuple[str, ...] = ()  # ok | error | missed | timeout, oldest first
    failing: bool = False
    last_check_in: datetime | None = None
    timed_out: tuple[str, ...] = ()  # runs closed as timed out: their late end is ignored

    @property
    def status(self) -> str:
        """``failing``, ``ok`` (the last result was good), ``active`` (no result yet)."""
        if self.failing:
            return "failing"
        return "ok" if self.results else "active"

    def as_json(self) -> dict[str, Any]:
        """Plain JSON, for a monitors table; ``state_from_json`` reads it back."""
        return {"config": self.config.as_json(), "next_expected": _text(self.next_expected),
                "open_runs": [[r.check_in_id, r.started.isoformat()] for r in self.open_runs],
                "results": list(self.results), "failing": self.failing,
                "last_check_in": _text(self.last_check_in), "timed_out": list(self.timed_out)}

    def consecutive_failures(self) -> int:
        count = 0
        for result in reversed(self.results):
            if result not in FAILURES:
                break
            count += 1
        return count


def state_from_json(data: dict[str, Any]) -> MonitorState:
    return MonitorState(
        config=parse_monitor_config(data["config"]),
        next_expected=_moment(data.get("next_expected")),
        open_runs=tuple(Run(i, datetime.fromisoformat(t)) for i, t in data.get("open_runs", [])),
        results=tuple(data.get("results", ())), failing=bool(data.get("failing")),
        last_check_in=_moment(data.get("last_check_in")),
        timed_out=tuple(data.get("timed_out", ())))


def _text(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def new_monitor(config: MonitorConfig) -> MonitorState:
    """A monitor seen for the first time: it expects nothing until its first check-in."""
    return MonitorState(config=config)


def update_config(state: MonitorState, config: MonitorConfig) -> MonitorState:
    """A check-in brought another ``monitor_config``: the next expected time follows the new
    schedule from the last check-in."""
    if config == state.config:
        return state
    expected = (next_expected(config, state.last_check_in) if state.last_check_in
                else state.next_expected)
    return replace(state, config=config, next_expected=expected)


def record_check_in(state: MonitorState, check_in_id: str, status: str, at: datetime
                    ) -> tuple[MonitorState, list[Finding]]:
    """One stored check-in (``in_progress``, ``ok`` or ``error``) at ``at``."""
    if status == "in_progress":
        if any(run.check_in_id == check_in_id for run in state.open_runs):
            return state, []  # the same start again
        return _start(state, at, (*state.open_runs, Run(check_in_id, at))), []
    if status not in ("ok", "error"):
        raise ValueError(f"unknown check-in status {status!r}")
    if check_in_id in state.timed_out:
        return state, []  # its end came after we gave up on it: already counted as timeout
    open_runs = list(state.open_runs)
    closing = next((r for r in open_runs if r.check_in_id == check_in_id), None)
    if closing is None and open_runs:
        closing = max(open_runs, key=lambda r: r.started)
    if closing is not None:
        open_runs.remove(closing)
        state = replace(state, open_runs=tuple(open_runs), last_check_in=at)
    else:
        state = _start(state, at, state.open_runs)
    return _result(state, status, Finding(status, at, check_in_id))


def evaluate(state: MonitorState, now: datetime, listening_since: datetime | None = None
             ) -> tuple[MonitorState, list[Finding]]:
    """Runs past their ``max_runtime`` and starts missed by ``now``."""
    findings: list[Finding] = []
    for run in sorted(state.open_runs, key=lambda r: r.started):
        if run.started + state.config.max_runtime <= now:
            state = replace(state, open_runs=tuple(r for r in state.open_runs if r != run),
                            timed_out=(*state.timed_out, run.check_in_id)[-KEPT_TIMED_OUT:])
            state, found = _result(state, "timeout", Finding(
                "timeout", run.started + state.config.max_runtime, run.check_in_id))
            findings += found
    missed = 0
    while (state.next_expected is not None
           and state.next_expected + state.config.checkin_margin <= now):
        slot = state.next_expected
        state = replace(state, next_expected=next_expected(state.config, slot))
        if listening_since is not None and slot < listening_since:
            continue  # the run may have checked in while nobody was listening
        missed += 1
        if missed > MAX_MISSED_PER_EVALUATION:
            continue
        state, found = _result(state, "missed", Finding(
            "missed", slot + state.config.checkin_margin, expected=slot))
        findings += found
    return state, findings


def bug_title(slug: str, reason: str | None) -> str:
    """The title of the bug a failing monitor opens (its component is the slug)."""
    return f"Missed check-in: {slug}" if reason == "missed" else f"Cron failure: {slug}"


def _start(state: MonitorState, at: datetime, open_runs: tuple[Run, ...]) -> MonitorState:
    return replace(state, open_runs=open_runs, last_check_in=at,
                   next_expected=next_expected(state.config, at))


def _result(state: MonitorState, result: str, finding: Finding
            ) -> tuple[MonitorState, list[Finding]]:
    """Append ``result`` and say whether the monitor starts failing or recovers."""
    results = (*state.results, result)[-KEPT_RESULTS:]
    state = replace(state, results=results)
    findings = [finding]
    config = state.config
    last_failures = results[-config.failure_issue_threshold:]
    last_goods = results[-config.recovery_threshold:]
    if (not state.failing and len(last_failures) == config.failure_issue_threshold
            and all(r in FAILURES for r in last_failures)):
        state = replace(state, failing=True)
        findings.append(Finding("failing", finding.at, finding.check_in_id, finding.expected,
                                reason=result))
    elif (state.failing and len(last_goods) == config.recovery_threshold
          and all(r == "ok" for r in last_goods)):
        state = replace(state, failing=False)
        findings.append(Finding("recovered", finding.at, finding.check_in_id))
    return state, findings
