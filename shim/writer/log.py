"""The backup log: every stored event as one JSON line in ``bugs/logs/YYYY-MM-DD.jsonl``.

The writer appends a batch and fsyncs it before the store transaction, so the log always holds at
least what the database holds; the database can be rebuilt from it (``shim restore``) and catches up
from it after an outage. Day files are only ever appended to. ``.applied`` records the position up to
which the store has applied the log; everything after it is replayed, and replays are harmless
because every line is idempotent (``event_id`` and status-change ids are unique).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from shim.core.records import (
    Batch,
    BugMerge,
    BugSignal,
    CheckIn,
    ErrorLog,
    StatusChange,
    context_json,
)

FORMAT = 1
MARKER = ".applied"
MARKER_SIZE = 128  # the marker is one write of this many bytes, well within a disk sector
LOCK = ".lock"
REJECTED = "rejected.jsonl"  # not named after a day, so never read back as log
_DAY_FILE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\.jsonl")
# A listing of the directory is reused while the directory's modification time stays the same,
# once that time is this old: a change soon after it could carry the same time stamp.
_SETTLED_NS = 2_000_000_000


@dataclass(frozen=True, order=True)
class Position:
    """A place in the log: a day file's name and a byte offset in it."""

    file: str = ""
    offset: int = 0


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str)


def batch_lines(batch: Batch) -> list[bytes]:
    """The log lines of one batch, each ending in a newline."""
    lines = [
        _dumps({"v": FORMAT, "kind": "error_log", "received_at": batch.received_at,
                "row": _row(row)}) + b"\n"
        for row in batch.error_logs
    ]
    lines += [
        _dumps({"v": FORMAT, "kind": "check_in", "received_at": batch.received_at,
                "check_in": c}) + b"\n"
        for c in batch.check_ins
    ]
    if batch.item_counts:
        lines.append(_dumps({"v": FORMAT, "kind": "item_counts", "received_at": batch.received_at,
                             "counts": batch.item_counts}) + b"\n")
    lines += [
        _dumps({"v": FORMAT, "kind": "status", "change": change}) + b"\n"
        for change in batch.status_changes
    ]
    lines += [_dumps({"v": FORMAT, "kind": "merge", "merge": merge}) + b"\n"
              for merge in batch.merges]
    return lines


_ROW_FIELDS = tuple(f.name for f in fields(ErrorLog))


def _row(row: ErrorLog) -> dict[str, Any]:
    """The row's fields by name, its context the JSON text it already is."""
    values = {name: getattr(row, name) for name in _ROW_FIELDS}
    values["context"] = orjson.Fragment(row.context)
    return values


def _check(position: Position) -> int:
    return zlib.crc32(f"{position.file}:{position.offset}".encode())


def parse_line(line: bytes) -> Batch:
    """One log line back into a (one-record) ``Batch``; raises ``ValueError`` on a bad line."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != FORMAT:
        raise ValueError("not a backup line of a known format")
    kind = data.get("kind")
    received_at = str(data.get("received_at") or "")
    if kind == "error_log":
        row = dict(data["row"])
        bug = row.pop("bug", None)
        return Batch(error_logs=[ErrorLog(**row | {"context": context_json(row["context"])},
                                          bug=BugSignal(**bug) if bug else None)],
                     received_at=received_at)
    if kind == "check_in":
        return Batch(check_ins=[CheckIn(**data["check_in"])], received_at=received_at)
    if kind == "item_counts":
        return Batch(item_counts={str(k): int(v) for k, v in data["counts"].items()},
                     received_at=received_at)
    if kind == "status":
        change = StatusChange(**data["change"])
        return Batch(status_changes=[change], received_at=change.at)
    if kind == "merge":
        fields = data["merge"]
        merge = BugMerge(**fields | {"others": tuple(fields.get("others") or ()),
                                     "hashes": tuple(fields.get("hashes") or ())})
        return Batch(merges=[merge], received_at=merge.at)
    raise ValueError(f"unknown line kind {kind!r}")


class BackupLog:
    """Appends to today's file (by the batch's receive day) and reads back from a position."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._listing: tuple[int, list[str]] | None = None  # (directory mtime, day files)

    def path(self, name: str) -> Path:
        return self.directory / name

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the log's lock: appends, the marker and the store are then ours alone.

        The server's writer and CLI commands (status changes) both go through it, so the order of
        the lines in the log is the order in which the store applied them.
        """
        fd = os.open(self.path(LOCK), os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def append(self, day: str, lines: list[bytes]) -> Position:
        """Append ``lines`` to the day's file and fsync; return the position after them.

        Call with the lock held. A line torn by a crash mid-append (never acknowledged, since the
        fsync did not return) is cut off first, so it cannot swallow the next line.
        """
        name = f"{day}.jsonl"
        fd = os.open(self.path(name), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                size = self._last_line_end(fd, size)
                os.ftruncate(fd, size)
            view = memoryview(b"".join(lines))
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            end = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size == 0:  # a new day file: its name must be on disk too, not only its data
            self._sync_directory()
        return Position(name, end)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _last_line_end(fd: int, size: int) -> int:
        step = 64 * 1024
        end = size
        while end > 0:
            start = max(0, end - step)
            block = os.pread(fd, end - start, start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
        return 0

    def append_batches(self, batches: list[Batch]) -> Position:
        """Append every batch (in order, each to its receive day's file); the end position."""
        end: Position | None = None
        day, lines = "", list[bytes]()
        for batch in batches:
            if batch.day != day and lines:
                end = self.append(day, lines)
                lines = []
            day = batch.day
            lines.extend(batch_lines(batch))
        if lines:
            end = self.append(day, lines)
        return end if end is not None else self.end()

    def reject(self, batch: Batch, reason: str) -> None:
        """Keep a batch the store refused (while working) beside the log, for the operator."""
        line = _dumps({"v": FORMAT, "kind": "rejected", "reason": reason,
                       "lines": [ln.decode() for ln in batch_lines(batch)]}) + b"\n"
        with open(self.path(REJECTED), "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def files(self) -> list[str]:
        """The day files, oldest first. Every commit asks (``end``), and files are only ever
        added or removed, which changes the directory's modification time: the listing is read
        again only then (a glob of the directory cost a commit more than its own fsync'd line)."""
        mtime = os.stat(self.directory).st_mtime_ns
        if self._listing is not None and self._listing[0] == mtime:
            return list(self._listing[1])
        names = sorted(n for n in os.listdir(self.directory) if _DAY_FILE.fullmatch(n))
        if time.time_ns() - mtime > _SETTLED_NS:
            self._listing = (mtime, names)
        return list(names)

    def end(self) -> Position:
        """The position after the last complete line (a torn tail is not part of the log)."""
        for name in reversed(self.files()):
            fd = os.open(self.path(name), os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    size = self._last_line_end(fd, size)
            finally:
                os.close(fd)
            if size:
                return Position(name, size)
        return Position()

    def torn_tail(self, name: str) -> tuple[int, int] | None:
        """Where the day file ``name`` stops being whole lines: ``(offset, size)`` when it ends in
        a line without its newline (torn by a crash mid-append, or still being written), else
        ``None``. ``read_from`` leaves such a line out."""
        fd = os.open(self.path(name), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if not size or os.pread(fd, 1, size - 1) == b"\n":
                return None
            return self._last_line_end(fd, size), size
        finally:
            os.close(fd)

    def read_from(self, start: Position) -> Iterator[tuple[Position, bytes]]:
        """Every complete line after ``start``, with the position just after it."""
        for name in self.files():
            if name < start.file:
                continue
            offset = start.offset if name == start.file else 0
            with open(self.path(name), "rb") as f:
                f.seek(offset)
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # a line still being written (or torn by a crash): not yet
                    offset += len(line)
                    yield Position(name, offset), line

    def applied_files_before(self, day: str) -> list[str]:
        """The day files older than ``day`` (``YYYY-MM-DD``) that the store has applied whole:
        those ``shim restore`` alone would still need (retention may remove them)."""
        applied = self.applied()
        done = []
        for name in self.files():
            if name >= f"{day}.jsonl" or applied.file < name:
                break
            if applied.file > name or applied.offset >= os.stat(self.path(name)).st_size:
                done.append(name)
        return done

    def remove(self, names: list[str]) -> None:
        """Delete day files (retention); call with the lock held."""
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(name))
        if names:
            self._sync_directory()

    # The applied-position marker.

    def applied(self) -> Position:
        try:
            fd = os.open(self.path(MARKER), os.O_RDONLY)
        except FileNotFoundError:
            return Position()
        try:
            data = orjson.loads(os.pread(fd, 64 * 1024, 0))
            position = Position(str(data["file"]), int(data["offset"]))
        except (ValueError, KeyError, TypeError):
            return Position()  # unreadable: replaying from the start is safe, only slower
        finally:
            os.close(fd)
        if "check" in data and data["check"] != _check(position):  # (older markers have none)
            return Position()  # a torn write that still parses: from the start, as above
        return position

    def mark_applied(self, position: Position) -> None:
        """Overwrite the marker in place with one small write. It need not be durable (an older
        marker only replays lines the store already has: event ids are unique) nor can a torn
        one mislead (it does not read, or fails its check, so the log is replayed from its
        start). A rename per batch cost more than the fsynced append of the batch itself."""
        record = _dumps({"file": position.file, "offset": position.offset,
                         "check": _check(position)})
        fd = os.open(self.path(MARKER), os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            os.pwrite(fd, record.ljust(MARKER_SIZE - 1) + b"\n", 0)
        finally:
            os.close(fd)
