"""What the stored check-ins say of each monitor now: its schedule, state, last check-in and next
expected run. Pure: given the ``check_ins`` rows and the time to judge at.

Each monitor (project, slug, environment) is folded from its check-ins, oldest first, through
``record_check_in`` with its latest ``monitor_config``, then ``evaluate``d at ``now``, so a run
that was due and never came shows as missed and a run past its ``max_runtime`` as timed out, as
the detection in the server will decide them. A monitor whose check-ins never carried a
``monitor_config`` (a script that only pings) has no schedule: it shows its last result only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shim.monitors.evaluate import evaluate, new_monitor, record_check_in
from shim.monitors.schedule import MonitorConfig, MonitorConfigError, parse_monitor_config


@dataclass(frozen=True)
class MonitorSummary:
    project_id: str
    slug: str
    environment: str | None
    schedule: str | None  # ``0 3 * * *`` or ``every 10 minutes``; None: no monitor_config sent
    state: str  # ok, failing, missed, timeout, error, in_progress, active
    last_status: str
    last_check_in: str  # ISO 8601 UTC
    next_expected: str | None
    check_ins: int

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _moment(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _config(raw: object) -> MonitorConfig | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, dict) or not raw:
        return None
    try:
        return parse_monitor_config(raw)
    except MonitorConfigError:
        return None


def summarise(check_ins: list[dict[str, Any]], now: datetime) -> list[MonitorSummary]:
    """One summary per monitor, by slug then environment."""
    grouped: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    for row in check_ins:
        key = (str(row.get("project_id") or ""), str(row["monitor_slug"]), row.get("environment"))
        grouped.setdefault(key, []).append(row)
    found = []
    for (project_id, slug, environment), rows in grouped.items():
        rows.sort(key=lambda r: _moment(r["created_at"]))
        configs = [c for c in (_config(r.get("monitor_config")) for r in rows) if c is not None]
        latest = rows[-1]
        state_text = str(latest["status"])
        next_run = None
        if configs:
            state = new_monitor(configs[-1])
            for row in rows:
                if row["status"] in ("in_progress", "ok", "error"):
                    state, _ = record_check_in(state, str(row["check_in_id"]), str(row["status"]),
                                               _moment(row["created_at"]))
            state, findings = evaluate(state, now)
            kinds = [f.kind for f in findings]
            if state.failing:
                state_text = "failing"
            elif "timeout" in kinds or "missed" in kinds:
                state_text = "timeout" if "timeout" in kinds else "missed"
            elif state.open_runs:
                state_text = "in_progress"
            next_run = state.next_expected.isoformat() if state.next_expected else None
        found.append(MonitorSummary(
            project_id=project_id, slug=slug, environment=environment,
            schedule=configs[-1].describe() if configs else None, state=state_text,
            last_status=str(latest["status"]), last_check_in=_moment(latest["created_at"])
            .isoformat(), next_expected=next_run, check_ins=len(rows)))
    found.sort(key=lambda m: (m.slug, m.environment or "", m.project_id))
    return found
