"""The forward queue on disk, in ``<data dir>/forward/<slot>/``: envelopes appended to segment
files, and a log of those taken off the queue.

Queuing an envelope is one ``write`` to the open segment (a header line: when, the local project,
the rate-limit categories, the length; then the envelope): a file per envelope cost 5 to 30 times
as much, its creation and rename on every request. An envelope sent or dropped is one line in
``done.log``. A segment whose envelopes are all done is deleted (and its lines with it), so the
directory holds what is pending plus at most a segment's worth more. On start the segments are
read back, less what ``done.log`` lists; a record cut short by a crash mid-write is left out.

A server process (each of ``--workers N``) claims a slot of its own with a lock, and takes over
the segments of any slot no running process holds, so a restart with fewer workers leaves nothing
behind. Bounded: past ``max_bytes`` the oldest envelopes are dropped (``queue_full``), and those
older than ``max_age`` seconds when reached (``too_old``). Nothing is fsynced: the queue survives
the server process ending however it ends; an operating-system crash may lose its last seconds
(the events themselves are in the backup log and the store).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

_SEGMENT = ".seg"
_DONE = "done.log"
_STATE = "state.json"
SEGMENT_BYTES = 4 << 20  # a new segment past this size


@dataclass(frozen=True)
class Entry:
    """One queued envelope: where it is, and what the sender needs without reading it."""

    segment: str
    offset: int  # of its header line
    start: int  # of the envelope itself
    size: int  # the envelope's length
    queued_at: float  # seconds since the epoch
    project_id: str
    categories: frozenset[str]

    @property
    def key(self) -> tuple[str, int]:
        return self.segment, self.offset

    @property
    def stored_bytes(self) -> int:
        return self.start - self.offset + self.size + 1


def _record(body: bytes, queued_at: float, project_id: str, categories: frozenset[str]) -> bytes:
    header = orjson.dumps({"t": queued_at, "p": project_id, "c": sorted(categories),
                           "n": len(body)})
    return b"".join((header, b"\n", body, b"\n"))


def _read_segment(path: Path) -> Iterator[Entry]:
    """The records of a segment, in order, up to the first one that is not whole."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        if end < 0:
            return
        try:
            header = orjson.loads(data[offset:end])
            size = int(header["n"])
            entry = Entry(path.name, offset, end + 1, size, float(header["t"]), str(header["p"]),
                          frozenset(str(c) for c in header["c"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        if end + 1 + size >= len(data) or data[end + 1 + size:end + 2 + size] != b"\n":
            return  # cut short
        yield entry
        offset = end + 2 + size


def _done_keys(directory: Path) -> set[tuple[str, int]]:
    keys = set()
    with contextlib.suppress(FileNotFoundError), open(directory / _DONE, "rb") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and line.endswith(b"\n"):
                with contextlib.suppress(ValueError):
                    keys.add((parts[0].decode(), int(parts[1])))
    return keys


def _pending(directory: Path) -> list[Entry]:
    """What a slot still holds, oldest first (read-only: ``shim stats`` runs beside the server)."""
    done = _done_keys(directory)
    found: list[Entry] = []
    for path in sorted(directory.glob("*" + _SEGMENT)):
        found.extend(e for e in _read_segment(path) if e.key not in done)
    found.sort(key=lambda e: (e.queued_at, e.segment, e.offset))
    return found


class Spool:
    """A claimed slot of the forward queue (see the module doc)."""

    def __init__(self, base: Path, max_bytes: int, max_age: float,
                 clock: Callable[[], float] = time.time,
                 count: Callable[[str], None] | None = None) -> None:
        self.base = base
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock
        self._count = count  # told "sent" or the reason, for each envelope taken off
        base.mkdir(parents=True, exist_ok=True)
        self.directory, self._lock = self._claim()
        self._entries: dict[tuple[str, int], Entry] = {}  # pending, oldest first
        self._live: Counter[str] = Counter()  # pending entries per segment
        self._bytes = 0
        self._segment: str | None = None  # the one appended to
        self._segment_file: IO[bytes] | None = None
        self._segment_size = 0
        self.dropped: Counter[str] = Counter()
        self.sent = 0
        self.last_error: str | None = None
        self._merge_state(self.directory / _STATE)
        self._adopt_orphans()
        self._load()
        self._done = open(self.directory / _DONE, "ab")  # noqa: SIM115 (open for the spool's life)
        self._trim()

    # Slots.

    def _claim(self) -> tuple[Path, int]:
        for slot in itertools.count():
            directory = self.base / str(slot)
            directory.mkdir(exist_ok=True)
            fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return directory, fd
        raise AssertionError("unreachable")

    def _adopt_orphans(self) -> None:
        """Move the segments (and their done lines) of every slot no process holds into this one."""
        for directory in sorted(p for p in self.base.iterdir() if p.is_dir()):
            if directory == self.directory:
                continue
            with _held(directory) as held:
                if not held:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    lines = (directory / _DONE).read_bytes()
                    with open(self.directory / _DONE, "ab") as done:
                        done.write(lines if lines.endswith(b"\n") or not lines
                                   else lines[:lines.rfind(b"\n") + 1])
                    (directory / _DONE).unlink()
                for path in directory.glob("*" + _SEGMENT):
                    path.rename(self.directory / path.name)
                self._merge_state(directory / _STATE)

    def _load(self) -> None:
        for entry in _pending(self.directory):
            self._entries[entry.key] = entry
            self._live[entry.segment] += 1
            self._bytes += entry.stored_bytes
        for path in self.directory.glob("*" + _SEGMENT):
            if not self._live[path.name]:
                path.unlink()
        self._compact()

    def close(self) -> None:
        self.save_state()
        if self._segment_file is not None:
            self._segment_file.close()
        self._done.close()
        os.close(self._lock)

    # The queue.

    def put(self, body: bytes, project_id: str, categories: frozenset[str]) -> None:
        """Queue one envelope (the oldest are dropped when the queue is full)."""
        queued_at = self._clock()
        record = _record(body, queued_at, project_id, categories)
        if self._segment_file is None or self._segment_size + len(record) > SEGMENT_BYTES:
            self._rotate()
        assert self._segment_file is not None and self._segment is not None
        offset = self._segment_size
        self._segment_file.write(record)
        self._segment_file.flush()
        self._segment_size += len(record)
        entry = Entry(self._segment, offset, offset + len(record) - len(body) - 1, len(body),
                      queued_at, project_id, categories)
        self._entries[entry.key] = entry
        self._live[entry.segment] += 1
        self._bytes += len(record)
        self._trim()

    def _rotate(self) -> None:
        previous = self._segment
        if self._segment_file is not None:
            self._segment_file.close()
        self._segment = f"{time.time_ns():020d}-{os.getpid()}{_SEGMENT}"
        self._segment_file = open(self.directory / self._segment, "ab")  # noqa: SIM115
        self._segment_size = 0
        if previous is not None and not self._live[previous]:
            self._delete_segment(previous)

    def _trim(self) -> None:
        while self._entries and self._bytes > self.max_bytes:
            self.remove(next(iter(self._entries.values())), dropped="queue_full")

    def entries(self) -> Iterator[Entry]:
        """The queued envelopes, oldest first, those past ``max_age`` dropped first. Take none
        off the queue while iterating (collect them, then ``remove``)."""
        horizon = self._clock() - self.max_age
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.queued_at >= horizon:
                break
            self.remove(oldest, dropped="too_old")
        return iter(self._entries.values())

    def read(self, entry: Entry) -> bytes | None:
        if entry.key not in self._entries:
            return None  # (dropped meanwhile)
        with open(self.directory / entry.segment, "rb") as f:
            f.seek(entry.start)
            return f.read(entry.size)

    def remove(self, entry: Entry, dropped: str | None = None) -> None:
        """Take ``entry`` off the queue: sent, or ``dropped`` for that reason."""
        if self._entries.pop(entry.key, None) is None:
            return
        self._bytes -= entry.stored_bytes
        self._done.write(f"{entry.segment} {entry.offset} {dropped or 'sent'}\n".encode())
        self._done.flush()
        self._live[entry.segment] -= 1
        if not self._live[entry.segment] and entry.segment != self._segment:
            self._delete_segment(entry.segment)
        if dropped:
            self.dropped[dropped] += 1
        else:
            self.sent += 1
        if self._count is not None:
            self._count(dropped or "sent")

    def _delete_segment(self, name: str) -> None:
        del self._live[name]
        with contextlib.suppress(FileNotFoundError):
            (self.directory / name).unlink()
        self._compact()

    def _compact(self) -> None:
        """Rewrite ``done.log`` with only the lines of segments that still exist."""
        path = self.directory / _DONE
        with contextlib.suppress(FileNotFoundError):
            keep = [line for line in path.read_bytes().splitlines(keepends=True)
                    if line.endswith(b"\n") and line.split(b" ", 1)[0].decode() in self._live]
            temporary = path.with_name("." + _DONE)
            temporary.write_bytes(b"".join(keep))
            temporary.rename(path)
            if hasattr(self, "_done"):  # reopened: the old handle points at the replaced file
                self._done.close()
                self._done = open(path, "ab")  # noqa: SIM115

    @property
    def pending(self) -> int:
        return len(self._entries)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    # Counters, kept beside the queue for ``shim stats`` and across restarts.

    def save_state(self) -> None:
        path = self.directory / _STATE
        temporary = path.with_name("." + _STATE)
        temporary.write_bytes(orjson.dumps({"sent": self.sent, "dropped": dict(self.dropped),
                                            "last_error": self.last_error}))
        temporary.rename(path)

    def _merge_state(self, path: Path) -> None:
        try:
            state = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return
        self.sent += int(state.get("sent") or 0)
        self.dropped.update({str(k): int(v) for k, v in (state.get("dropped") or {}).items()})
        self.last_error = state.get("last_error") or self.last_error
        if path.parent != self.directory:
            path.unlink()


@contextlib.contextmanager
def _held(directory: Path) -> Iterator[bool]:
    """Hold ``directory``'s slot lock for the block, if no one else does (then True)."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def queue_summary(base: Path) -> dict[str, object]:
    """What every slot under ``base`` holds and has counted (for ``shim stats``, which runs
    beside the server rather than in it)."""
    pending = pending_bytes = sent = 0
    dropped: Counter[str] = Counter()
    errors = []
    if base.is_dir():
        for directory in sorted(p for p in base.iterdir() if p.is_dir()):
            for entry in _pending(directory):
                pending += 1
                pending_bytes += entry.stored_bytes
            try:
                state = orjson.loads((directory / _STATE).read_bytes())
            except (FileNotFoundError, orjson.JSONDecodeError):
                continue
            sent += int(state.get("sent") or 0)
            dropped.update({str(k): int(v) for k, v in (state.get("dropped") or {}).items()})
            if state.get("last_error"):
                errors.append(str(state["last_error"]))
    return {"pending": pending, "pending_bytes": pending_bytes, "sent": sent,
            "dropped": dict(dropped), "last_error": errors[-1] if errors else None}
