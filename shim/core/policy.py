"""The bug policy: which events open or update a bug, how that bug reads, and how its severity
and priority move as events arrive. Pure. The stores apply what is decided here and decide nothing
themselves: the SQLite store calls ``escalated``; the Postgres upsert (``shim_ingest``, migration
0003) applies the same rule in SQL to the order and the priorities the batch carries
(``shim.store.rows.ingest_payload``), so it holds no list of its own.

Levels, severities and priorities themselves are defined in ``shim.core.levels``.
"""

from __future__ import annotations

from collections.abc import Iterable

from shim.core.levels import LEVEL_RANK, PRIORITY, SEVERITY, SEVERITY_RANK
from shim.core.records import BugSignal

TITLE_MAX = 200


def bug_signal(
    level: str,
    unhandled: bool,
    bug_level: str,
    component: str,
    error_type: str | None,
    message: str,
    description: str,
    grouping_version: int,
) -> BugSignal | None:
    """A ``BugSignal`` when the event is at or above ``bug_level`` or is an unhandled exception.

    An unhandled exception ended a process or a request, so its bug is critical whatever level the
    SDK gave the event.
    """
    if LEVEL_RANK[level] < LEVEL_RANK[bug_level] and not unhandled:
        return None
    severity = "critical" if unhandled else SEVERITY[level]
    prefix = "Critical" if severity == "critical" else level.capitalize()
    subject = error_type or (message.strip().splitlines() or ["(no message)"])[0]
    title = f"{prefix}: {component} - {subject}"
    if len(title) > TITLE_MAX:
        title = title[: TITLE_MAX - 1] + "…"
    return BugSignal(
        title=title,
        description=description,
        severity=severity,
        priority=PRIORITY[severity],
        grouping_version=grouping_version,
    )


def escalated(signals: Iterable[BugSignal], current: tuple[str, str] | None = None
              ) -> tuple[str, str]:
    """A bug's (severity, priority) once these events count: the most severe of what it had
    (``current``, none for a new bug) and what any of them says, each with its own priority.
    A bug never becomes less severe by itself; the first of equally severe signals wins."""
    best = max(signals, key=lambda signal: SEVERITY_RANK[signal.severity])
    if current is not None and SEVERITY_RANK[current[0]] >= SEVERITY_RANK[best.severity]:
        return current
    return best.severity, best.priority
