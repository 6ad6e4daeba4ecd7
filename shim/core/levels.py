"""The fixed vocabularies of the tables, defined once: log levels and their ranks, how an SDK's
level names and numbers map onto them, bug severities with their ranks and the priority each
implies, and bug statuses. Pure.

The schemas' CHECK constraints spell the same lists in SQL (``shim/store/migrations/``); the
Postgres bug upsert takes the order of severities and each bug's priority from the batch
(migration 0003). A shipped migration is never edited, so a change here needs a new one there.
"""

from __future__ import annotations

LEVELS = ("debug", "info", "warning", "error", "critical")
"""The five ``error_logs.log_level`` values, lowest first."""
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}

_ALIASES = {
    "fatal": "critical", "critical": "critical", "error": "error", "err": "error",
    "warning": "warning", "warn": "warning", "info": "info", "log": "info", "debug": "debug",
    "trace": "debug", "notice": "info", "sample": "info",
}
# Python logging's numeric levels, which raven and old SDKs send as is: (floor, level).
_PYTHON_LEVELS = ((50, "critical"), (40, "error"), (30, "warning"), (20, "info"), (0, "debug"))
# OpenTelemetry severity numbers (1-24), which a Sentry Logs record may give instead of a name.
_OTEL_SEVERITIES = ((21, "critical"), (17, "error"), (13, "warning"), (9, "info"), (0, "debug"))

SEVERITIES = ("low", "medium", "high", "critical")
"""The four ``bugs.severity`` values, lowest first."""
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}
SEVERITY = {"critical": "critical", "error": "high", "warning": "medium", "info": "low",
            "debug": "low"}
"""The severity of a bug opened by an event of each level."""
PRIORITY = {"critical": "urgent", "high": "high", "medium": "medium", "low": "low"}
"""The ``bugs.priority`` of each severity."""

STATUSES = ("open", "in_progress", "resolved", "closed")
"""The four ``bugs.status`` values, in the order of a bug's life."""


def normalize_level(raw: object, default: str = "error") -> str:
    """Map any level an SDK sends (names, aliases, Python's 10-50) onto the five table levels."""
    if isinstance(raw, bool):
        return default
    if isinstance(raw, int | float):
        # Below 0 (and NaN) is no logging level at all: the default, like an unknown name.
        return next((name for floor, name in _PYTHON_LEVELS if raw >= floor), default)
    if isinstance(raw, str):
        text = raw.strip().lower()
        # ASCII only: "²".isdigit() is true but int() rejects it. Four significant digits are
        # enough to rank any number (int() refuses more than 4300).
        if text.isascii() and text.isdigit():
            return normalize_level(int(text.lstrip("0")[:4] or "0"), default)
        return _ALIASES.get(text, default)
    return default


def otel_level(severity_number: int) -> str:
    """The table level of an OpenTelemetry severity number (anything below 9 is debug)."""
    return next((name for floor, name in _OTEL_SEVERITIES if severity_number >= floor), "debug")
