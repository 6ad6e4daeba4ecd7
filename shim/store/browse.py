"""What the web page asks of a store beyond the CLI's reads, decided once for every backend: the
bug list's filters, orders and keyset cursors (``BugQuery``), the order of a bug's events, and the
shape of per-hour counts.

The backends' own halves are ``sqlite_browse``, ``postgres_browse`` and ``supabase_browse`` (mixed
into each store class), so these reads stay apart from the write path. Imports the core's
vocabularies only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shim.core.levels import SEVERITIES, STATUSES

SORTS = {"last": "last_occurred_at", "first": "first_occurred_at", "count": "occurrence_count"}
"""The bug list's sorts: the column each orders by, newest (or largest) first, then bug number."""
UNRESOLVED = ("open", "in_progress")
GOES = ("first", "prev", "next", "latest", "this")
"""Moves between a bug's events, ordered by event time, then arrival (``this``: stay on the one
named)."""
RECENT_LOGS = 2000
"""How many of the latest events the filter choices (environments, releases) are drawn from."""
ENVIRONMENT_WINDOW = 20_000
"""The bug list's environment and release filters keep the bugs of the latest this many events
in them (neither is a column of bugs, and reading every event's context would not scale); on
Supabase, of the latest ``RECENT_LOGS`` events that match."""


@dataclass(frozen=True)
class BugQuery:
    """One page of the bug list: which bugs, in which order, after which one.

    ``after`` is the keyset cursor: the sort column's value and the bug number of the last bug on
    the previous page; the page holds the bugs after it in the order, so new bugs arriving
    meanwhile never shift a page."""

    statuses: tuple[str, ...] = ()
    severity: str | None = None
    component: str | None = None
    workspace: str | None = None
    environment: str | None = None
    release: str | None = None
    text: str | None = None
    new_since: str | None = None  # first seen at or after this time
    regressions: bool = False
    sort: str = "last"
    after: tuple[Any, str] | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        if any(s not in STATUSES for s in self.statuses):
            raise ValueError(f"status must be among {', '.join(STATUSES)}")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")

    @property
    def column(self) -> str:
        return SORTS[self.sort]

    def cursor_of(self, bug: dict[str, Any]) -> tuple[Any, str]:
        """The cursor that continues after ``bug``."""
        return bug[self.column], str(bug["bug_number"])

    def equal_columns(self) -> list[tuple[str, Any]]:
        """The plain ``column = value`` filters (each backend adds the rest in its own terms)."""
        pairs = [("severity", self.severity), ("component", self.component),
                 ("workspace_id", self.workspace)]
        found: list[tuple[str, Any]] = [(c, v) for c, v in pairs if v is not None]
        if self.regressions:
            found.append(("is_regression", True))
        return found


def like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its own ``%``, ``_`` and ``\\`` escaped
    (with ``ESCAPE '\\'``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def hour_of(moment: str) -> str:
    """The hour key of a time as the stores give it: ``2026-11-28T13`` (UTC)."""
    return moment[:13]


def add_hour(table: dict[str, dict[str, int]], key: str, moment: str, n: int = 1) -> None:
    per = table.setdefault(key, {})
    per[hour_of(moment)] = per.get(hour_of(moment), 0) + n
