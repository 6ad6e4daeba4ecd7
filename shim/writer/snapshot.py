"""The bugs snapshot: ``bugs/bugs.csv`` and ``bugs/bugs.json``, rewritten whole and atomically,
written as the bugs stream by (a page of them in memory, however many there are).

Written off the request path, at most every ``SHIM_EXPORT_INTERVAL`` seconds and only when a bug
changed, so the per-event cost does not grow with the number of bugs. CSV cells that a spreadsheet
would run as a formula are neutralised. ``export`` writes it on demand (``shim export``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from shim.store import Store, iter_bugs

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


def _csv_row(values: Iterable[object]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode("utf-8")


def _csv_lines(bugs: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    yield _csv_row(COLUMNS)
    for bug in bugs:
        yield _csv_row(neutralise(bug.get(column)) for column in COLUMNS)


def _json_element(bug: dict[str, Any], first: bool) -> bytes:
    """One bug as an element of the indented array ``orjson.dumps(bugs, OPT_INDENT_2)`` writes
    (JSON text never holds a raw newline inside a string, so indenting line by line is safe)."""
    text = orjson.dumps({c: bug.get(c) for c in COLUMNS}, option=orjson.OPT_INDENT_2)
    return (b"\n  " if first else b",\n  ") + text.replace(b"\n", b"\n  ")


def _json_chunks(bugs: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    yield b"["
    first = True
    for bug in bugs:
        yield _json_element(bug, first)
        first = False
    yield b"]" if first else b"\n]"


def chunks(bugs: Iterable[dict[str, Any]], fmt: str) -> Iterator[bytes]:
    """One format (``csv`` or ``json``) as it streams, a bug at a time."""
    return _json_chunks(bugs) if fmt == "json" else _csv_lines(bugs)


def to_csv(bugs: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(_csv_lines(bugs))


def to_json(bugs: Iterable[dict[str, Any]]) -> bytes:
    return orjson.dumps([{c: bug.get(c) for c in COLUMNS} for bug in bugs],
                        option=orjson.OPT_INDENT_2)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A file to write ``path``'s new content into: fsynced and renamed over ``path`` when the
    block ends, removed (``path`` untouched) when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the server and a command may race
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_streamed(bugs: Iterable[dict[str, Any]], path: Path, fmt: str) -> None:
    """One format into ``path``, as the bugs stream by, then renamed into place."""
    with _replacing(path) as f:
        f.writelines(chunks(bugs, fmt))


def write_snapshot(bugs: Iterable[dict[str, Any]], directory: Path) -> None:
    """Both files, written as the bugs stream by (a page of them in memory at a time, however
    many there are), then each renamed into place. The bytes are those of ``to_csv`` and
    ``to_json``."""
    with (_replacing(directory / "bugs.csv") as csv_file,
          _replacing(directory / "bugs.json") as json_file):
        # One pass over the bugs: the two formats advance together, a bug at a time.
        for_csv, for_json = itertools.tee(bugs)
        for csv_chunk, json_chunk in itertools.zip_longest(chunks(for_csv, "csv"),
                                                           chunks(for_json, "json")):
            csv_file.write(csv_chunk or b"")
            json_file.write(json_chunk or b"")


def export(store: Store, directory: Path, fmt: str | None = None,
           out: Path | None = None) -> list[Path]:
    """Write the snapshot: both files into ``directory``, or one format to ``out``; either way
    streamed, a page of bugs at a time."""
    if fmt is None and out is None:
        write_snapshot(iter_bugs(store), directory)
        return [directory / "bugs.csv", directory / "bugs.json"]
    fmt = fmt or ("json" if out is not None and out.suffix == ".json" else "csv")
    target = out or directory / f"bugs.{fmt}"
    write_streamed(iter_bugs(store), target, fmt)
    return [target]
