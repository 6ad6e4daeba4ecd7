"""What ingestion produces for the store: plain, frozen records named after the tables.

The pure core builds these from envelopes; a store writes them. Nothing here does I/O.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

# A row id is a version 7 UUID (RFC 9562): the time in milliseconds, then 74 random bits. Ids made
# one after the other sort together, so each insert into the primary key's index lands on its last
# pages instead of on a random page of an index as large as the table (fewer pages to write to
# SQLite's WAL, or Postgres's, per commit; bench.stages: commit ~10% less CPU).
_RANDOM = ((1 << 80) - 1) & ~(0xF << 76) & ~(0b11 << 62)
_VERSION_7 = (0x7 << 76) | (0b10 << 62)


def new_row_id() -> str:
    """A new ``error_logs.id``: a UUID, in the order rows are made. (Written out by hand: a
    ``uuid.UUID`` made only to be turned into text costs as much again.)"""
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big") & _RANDOM
    digits = "%032x" % ((millis << 80) | random | _VERSION_7)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def context_json(context: dict[str, Any]) -> bytes:
    """A row's context as the JSON text ``ErrorLog.context`` holds: keys that are not strings
    written as text, values JSON has no form for as their ``str()``."""
    return orjson.dumps(context, option=orjson.OPT_NON_STR_KEYS, default=str)


@dataclass(frozen=True)
class BugSignal:
    """The part of an event that opens or updates a bug (the bug policy said it should)."""

    title: str
    description: str
    severity: str  # critical | high | medium | low
    priority: str  # urgent | high | medium | low
    grouping_version: int


GROUPING_KEY = "_grouping"
"""The key of a row's context that says why the event grouped as it did (``Grouped.info``):
reserved like ``_trimmed``, as no SDK key starts with an underscore."""


@dataclass(frozen=True, slots=True)
class Grouped:
    """An event's grouping: version 2's hash (the row's ``fingerprint``), version 1's during the
    transition from it, and why it grouped so (``shim.core.grouping_v2.Grouping.info``)."""

    fingerprint: str
    fingerprint_v1: str | None
    version: int
    info: dict[str, Any]


@dataclass(frozen=True)
class ErrorLog:
    """One row of ``error_logs``; ``bug`` is set when this event also counts towards a bug.

    The same record crosses every boundary: the journal process's pipe (its fields in order,
    ``shim.writer.process``), the backup log (its fields by name, ``shim.writer.log``) and the
    stores. ``context`` is already the column's JSON text, serialised once where the row is made,
    so none of them serialises or parses it again."""

    id: str
    event_id: str
    project_id: str
    log_level: str
    component: str
    message: str
    context: bytes  # a JSON object's text (``context_json``)
    error_type: str | None
    error_message: str | None
    stack_trace: str | None
    request_id: str | None
    workspace_id: str | None
    fingerprint: str
    created_at: str  # ISO 8601, UTC, microseconds
    item_type: str = "event"  # event | log | store
    bug: BugSignal | None = None
    # Version 1's hash during the transition to version 2 (``shim.core.event``): a store that
    # finds no bug by ``fingerprint`` attaches the event to the bug of this one.
    fingerprint_v1: str | None = None

    def context_object(self) -> dict[str, Any]:
        """``context`` read back, for the few that look inside it (storm slimming, tests)."""
        value: dict[str, Any] = orjson.loads(self.context)
        return value


@dataclass(frozen=True)
class CheckIn:
    """One cron monitor check-in; a later check-in with the same id updates it."""

    check_in_id: str
    project_id: str
    monitor_slug: str
    status: str
    duration: float | None
    environment: str | None
    release: str | None
    monitor_config: dict[str, Any] | None
    created_at: str


@dataclass(frozen=True)
class StatusChange:
    """An operator's change to a bug (status and/or assignee), logged like an event so that a
    restore replays it in order. ``change_id`` makes applying it twice harmless."""

    change_id: str
    bug_number: str
    status: str | None  # open | in_progress | resolved | closed; None keeps the status
    assignee: str | None  # None keeps the assignee; "" clears it
    at: str
    by: str | None = None


@dataclass(frozen=True)
class BugMerge:
    """An operator's merge or unmerge, logged like a status change so that a restore replays it
    in order; ``change_id`` makes applying it twice harmless.

    ``merge``: the bugs ``others`` are folded into ``bug`` (their counts, times, logs and hashes;
    each is left marked ``merged_into`` it), so later events of any of them count on ``bug``.
    ``unmerge``: each of ``hashes`` leaves ``bug`` with the logs of that fingerprint, for the bug
    it was merged from (which comes back) or else a new bug."""

    change_id: str
    kind: str  # merge | unmerge
    bug_number: str
    others: tuple[str, ...] = ()  # merge: the bug numbers folded in
    hashes: tuple[str, ...] = ()  # unmerge: the hashes split out
    at: str = ""
    by: str | None = None


@dataclass(frozen=True)
class Batch:
    """Everything one request (or one CLI command) hands to the writer."""

    error_logs: list[ErrorLog] = field(default_factory=list)
    check_ins: list[CheckIn] = field(default_factory=list)
    item_counts: dict[str, int] = field(default_factory=dict)
    status_changes: list[StatusChange] = field(default_factory=list)
    received_at: str = ""  # ISO 8601 UTC; the store's received_at, created_at and updated_at
    merges: list[BugMerge] = field(default_factory=list)

    @property
    def day(self) -> str:
        """The backup log file this batch goes to (its receive day, UTC)."""
        return self.received_at[:10]

    def is_empty(self) -> bool:
        return not (self.error_logs or self.check_ins or self.item_counts or self.status_changes
                    or self.merges)

    @property
    def changes_bugs(self) -> bool:
        """An operator's change (status, assignee, merge): applied after the batch's events,
        between the events before and after it."""
        return bool(self.status_changes or self.merges)


@dataclass(frozen=True)
class Stored:
    """What the store did with one error_logs record."""

    event_id: str
    duplicate: bool  # the event_id was already stored; nothing changed
    bug_id: str | None
    bug_number: str | None
