"""What the stores share: bug ids, the filters and order of the reads, the rows they give back, and
the argument of the ``shim_ingest`` SQL function that the Postgres and Supabase stores both call.

Every backend imports this module and ``shim.store`` only, never another backend, so that the
choices below (which bugs a filter keeps, in which order, what a row looks like) are made once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from shim.core.levels import LEVEL_RANK, SEVERITIES
from shim.core.records import Batch, Stored

_BUG_NAMESPACE = uuid.UUID("6f1d5c3e-2b1a-4c8e-9d7f-0a1b2c3d4e5f")


def bug_id_for(fingerprint: str) -> str:
    """Bug ids follow from fingerprints, so a restore (or another process) gives the same id."""
    return str(uuid.uuid5(_BUG_NAMESPACE, fingerprint))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# Reads. A condition is (column, operator, value), the operator one of "=", ">=", ">", "in" and
# "is" (with None: the column is null); each backend writes the conditions in its own language
# (SQL, or PostgREST's filters).
Condition = tuple[str, str, Any]


def levels_from(level: str) -> list[str]:
    """``level`` and the levels above it."""
    return [name for name, rank in LEVEL_RANK.items() if rank >= LEVEL_RANK[level]]


def bug_conditions(status: str | None, component: str | None, workspace: str | None,
                   since: str | None) -> list[Condition]:
    """Which bugs ``list_bugs`` keeps: never one merged into another (its events count there)."""
    conditions: list[Condition] = [("merged_into", "is", None)] + [
        (column, "=", value) for column, value in (
            ("status", status), ("component", component), ("workspace_id", workspace))
        if value is not None]
    if since is not None:
        conditions.append(("last_occurred_at", ">=", since))
    return conditions


def bug_order(sort: str) -> list[tuple[str, bool]]:
    """The order of ``list_bugs``: (column, descending) pairs, most significant first."""
    if sort == "count":
        return [("occurrence_count", True), ("last_occurred_at", True)]
    return [("last_occurred_at", True)]


def log_conditions(level: str | None, component: str | None, bug_id: str | None,
                   after: int | None, cursor: str) -> list[Condition]:
    """Which logs ``list_logs`` keeps; ``cursor`` is the column its cursors are values of."""
    conditions: list[Condition] = []
    if level is not None:
        conditions.append(("log_level", "in", levels_from(level)))
    if component is not None:
        conditions.append(("component", "=", component))
    if bug_id is not None:
        conditions.append(("related_bug_id", "=", bug_id))
    if after is not None:
        conditions.append((cursor, ">", after))
    return conditions


def sql_where(conditions: Sequence[Condition], mark: str, prefix: str = "",
              casts: Mapping[str, str] | None = None) -> tuple[str, list[Any]]:
    """``conditions`` as an SQL condition with ``mark`` placeholders (``?`` or ``%s``), and its
    parameters. ``prefix`` qualifies the columns (``l.``); ``casts`` follow a column's placeholder
    (``::timestamptz``)."""
    parts: list[str] = []
    params: list[Any] = []
    for column, operator, value in conditions:
        placeholder = mark + (casts or {}).get(column, "")
        if operator == "in":
            parts.append(f"{prefix}{column} IN ({','.join([placeholder] * len(value))})")
            params.extend(value)
        elif operator == "is":
            parts.append(f"{prefix}{column} IS NULL")
        else:
            parts.append(f"{prefix}{column} {operator} {placeholder}")
            params.append(value)
    return " AND ".join(parts) or "1 = 1", params


def sql_order(order: Sequence[tuple[str, bool]]) -> str:
    return ", ".join(f"{column} DESC" if descending else column for column, descending in order)


def utc_text(moment: datetime) -> str:
    """The text the SQLite store keeps for a time, so every store reads back the same."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def plain(row: Mapping[str, Any], times: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A row as the SQLite store returns it: ids and times as text, flags and sums as integers.
    ``times``: columns whose times come as text in another form (PostgREST's, in the database's
    zone)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = utc_text(value)
        elif key in times and isinstance(value, str):
            value = utc_text(datetime.fromisoformat(value))
        elif isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, bool | Decimal):  # sum() of bigint comes back as numeric
            value = int(value)
        out[key] = value
    return out


def log_row(row: dict[str, Any], bug_number: str | None) -> dict[str, Any]:
    """A row of ``list_logs`` from an ``error_logs`` row with its ``seq``: the cursor first (as
    SQLite's rowid, which is not a column either), the bug's number last."""
    return {"cursor": row.pop("seq"), **row, "bug_number": bug_number}


# Writes through shim_ingest (migrations/postgres/0001_initial.sql, replaced by 0003, then 0004).

def _without_nul(value: Any) -> Any:
    """Postgres text and jsonb cannot hold U+0000, which SDK payloads may carry."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str)


def ingest_payload(batches: Sequence[Batch], related_logs: int, reuse_json: bool = True) -> str:
    """The argument of ``shim_ingest``: the batches as JSON, each bug row with its bug id.
    Contexts go in as already serialised for the backup log, unless ``reuse_json`` is off."""
    payload = {
        "related_logs": related_logs,
        "severities": SEVERITIES,  # the policy's order: shim_ingest holds none of its own
        "batches": [{
            "received_at": batch.received_at,
            "error_logs": [{
                "id": row.id, "event_id": row.event_id, "project_id": row.project_id,
                "log_level": row.log_level, "component": row.component, "message": row.message,
                "context": orjson.Fragment(row.context) if reuse_json else row.context_object(),
                "error_type": row.error_type,
                "error_message": row.error_message, "stack_trace": row.stack_trace,
                "request_id": row.request_id, "workspace_id": row.workspace_id,
                "fingerprint": row.fingerprint, "fingerprint_v1": row.fingerprint_v1,
                "item_type": row.item_type,
                "created_at": row.created_at,
                "bug": None if row.bug is None else {
                    "title": row.bug.title, "description": row.bug.description,
                    "severity": row.bug.severity, "priority": row.bug.priority,
                    "grouping_version": row.bug.grouping_version},
                "bug_id": None if row.bug is None else bug_id_for(row.fingerprint),
            } for row in batch.error_logs],
            "check_ins": [{
                "check_in_id": c.check_in_id, "project_id": c.project_id,
                "monitor_slug": c.monitor_slug, "status": c.status, "duration": c.duration,
                "environment": c.environment, "release": c.release,
                "monitor_config": c.monitor_config or None, "created_at": c.created_at,
            } for c in batch.check_ins],
            "item_counts": batch.item_counts,
            "status_changes": [{
                "change_id": s.change_id, "bug_number": s.bug_number, "status": s.status,
                "assignee": s.assignee, "at": s.at, "by": s.by,
            } for s in batch.status_changes],
            "merges": [{
                "change_id": m.change_id, "kind": m.kind, "bug_number": m.bug_number,
                "others": list(m.others), "hashes": list(m.hashes), "at": m.at, "by": m.by,
                # the id a hash split out into a new bug gets (the store has no uuid5)
                "new_ids": {h: bug_id_for(h) for h in m.hashes},
            } for m in batch.merges],
        } for batch in batches],
    }
    text = _dumps(payload)
    if b"\\u0000" in text:  # rare: only then pay for a second pass
        if reuse_json:
            return ingest_payload(batches, related_logs, reuse_json=False)
        text = _dumps(_without_nul(payload))
    return text.decode()


def stored_from(batches: Sequence[Batch], outcomes: Sequence[Any]) -> list[list[Stored]]:
    """What ``shim_ingest`` returned (per batch, per event: duplicate, bug id, bug number), as the
    Store protocol says it."""
    return [
        [Stored(event_id=log_row.event_id, duplicate=bool(duplicate),
                bug_id=None if bug_id is None else str(bug_id), bug_number=bug_number)
         for log_row, (duplicate, bug_id, bug_number) in zip(batch.error_logs, results, strict=True)]
        for batch, results in zip(batches, outcomes, strict=True)]
