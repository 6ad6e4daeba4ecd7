"""The bugs snapshot: ``bugs/bugs.csv`` and ``bugs/bugs.json``, rewritten whole and atomically.

Written off the request path, at most every ``SHIM_EXPORT_INTERVAL`` seconds and only when a bug
changed, so the per-event cost does not grow with the number of bugs. CSV cells that a spreadsheet
would run as a formula are neutralised.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

COLUMNS = (
    "bug_number", "id", "title", "description", "severity", "priority", "status", "assignee",
    "component", "workspace_id", "error_type", "error_message", "stack_trace", "fingerprint",
    "grouping_version", "occurrence_count", "first_occurred_at", "last_occurred_at",
    "related_log_ids", "is_regression", "resolved_at", "created_at", "updated_at",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str:
    """A CSV cell a spreadsheet will show as text, never evaluate."""
    if value is None:
        return ""
    text = orjson.dumps(value).decode() if isinstance(value, list | dict) else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(bugs: Iterable[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for bug in bugs:
        writer.writerow([neutralise(bug.get(column)) for column in COLUMNS])
    return out.getvalue().encode("utf-8")


def to_json(bugs: Iterable[dict[str, Any]]) -> bytes:
    return orjson.dumps([{c: bug.get(c) for c in COLUMNS} for bug in bugs],
                        option=orjson.OPT_INDENT_2)


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the server and a command may race
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_snapshot(bugs: list[dict[str, Any]], directory: Path) -> None:
    write_atomically(directory / "bugs.csv", to_csv(bugs))
    write_atomically(directory / "bugs.json", to_json(bugs))
