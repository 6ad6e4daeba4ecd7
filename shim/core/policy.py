"""The bug policy: which events open or update a bug, and how that bug reads. Pure.

Levels, severities and priorities themselves are defined in ``shim.core.levels``.
"""

from __future__ import annotations

from shim.core.levels import LEVEL_RANK, PRIORITY, SEVERITY
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
