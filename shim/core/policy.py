"""Levels and the bug policy: which events open or update a bug, and how that bug reads. Pure."""

from __future__ import annotations

from shim.core.records import BugSignal
from shim.settings import LEVELS

RANK = {level: rank for rank, level in enumerate(LEVELS)}

_ALIASES = {
    "fatal": "critical", "critical": "critical", "error": "error", "err": "error",
    "warning": "warning", "warn": "warning", "info": "info", "log": "info", "debug": "debug",
    "trace": "debug", "notice": "info", "sample": "info",
}
# Python logging's numeric levels, which raven and old SDKs send as is.
_NUMERIC = ((50, "critical"), (40, "error"), (30, "warning"), (20, "info"), (0, "debug"))

SEVERITY = {"critical": "critical", "error": "high", "warning": "medium", "info": "low",
            "debug": "low"}
PRIORITY = {"critical": "urgent", "high": "high", "medium": "medium", "low": "low"}

TITLE_MAX = 200


def normalize_level(raw: object, default: str = "error") -> str:
    """Map any level an SDK sends (names, aliases, Python's 10-50) onto the five table levels."""
    if isinstance(raw, bool):
        return default
    if isinstance(raw, int | float):
        # Below 0 (and NaN) is no logging level at all: the default, like an unknown name.
        return next((name for floor, name in _NUMERIC if raw >= floor), default)
    if isinstance(raw, str):
        text = raw.strip().lower()
        # ASCII only: "²".isdigit() is true but int() rejects it. Four significant digits are
        # enough to rank any number (int() refuses more than 4300).
        if text.isascii() and text.isdigit():
            return normalize_level(int(text.lstrip("0")[:4] or "0"), default)
        return _ALIASES.get(text, default)
    return default


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
    if RANK[level] < RANK[bug_level] and not unhandled:
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
