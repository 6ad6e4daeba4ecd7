"""The forward queue on disk: one file per envelope to send, in ``<data dir>/forward/<slot>/``.

A file is written under a temporary name and renamed, so a reader never sees half of one; its
name holds what the sender needs without opening it (when it was queued, the local project, the
rate-limit categories of its items). Sent or dropped, it is unlinked. A server process (each of
``--workers N``) claims a slot of its own with a lock, and takes over the files of any slot no
running process holds, so a restart with fewer workers leaves nothing behind.

Bounded: past ``max_bytes`` the oldest files are dropped (counted as ``queue_full``), and files
older than ``max_age`` seconds are dropped when reached (``too_old``). Files are not fsynced one by
one: the queue survives the server process ending however it ends; an operating-system crash may
lose the last seconds of it (the events themselves are in the backup log and the store).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

_SUFFIX = ".env"
_STATE = "state.json"


@dataclass(frozen=True)
class Entry:
    """One queued envelope, known by its file name."""

    name: str
    size: int
    queued_at: float  # seconds since the epoch
    project_id: str
    categories: frozenset[str]

    @classmethod
    def parse(cls, name: str, size: int) -> Entry | None:
        try:
            stamp, _, project, categories = name.removesuffix(_SUFFIX).split("-", 3)
            return cls(name, size, int(stamp[:20]) / 1e9, project,
                       frozenset(categories.split("+")) if categories else frozenset())
        except ValueError:
            return None


class Spool:
    """A claimed slot of the forward queue (see the module doc)."""

    def __init__(self, base: Path, max_bytes: int, max_age: float,
                 clock: Callable[[], float] = time.time,
                 count: Callable[[str], None] | None = None) -> None:
        self.base = base
        self._count = count  # told "sent" or the reason, for each envelope taken off
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock
        base.mkdir(parents=True, exist_ok=True)
        self.directory, self._lock = self._claim()
        self._entries: deque[Entry] = deque()
        self._bytes = 0
        self._sequence = itertools.count()
        self.dropped: Counter[str] = Counter()
        self.sent = 0
        self.last_error: str | None = None
        self._load_state()
        self._adopt_orphans()
        self._scan()

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
        """Move the files of every slot no process holds into this one."""
        for directory in sorted(p for p in self.base.iterdir() if p.is_dir()):
            if directory == self.directory:
                continue
            with _held(directory) as held:
                if not held:
                    continue
                for path in directory.glob("*" + _SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        path.rename(self.directory / path.name)
                self._merge_state(directory / _STATE)

    def _scan(self) -> None:
        found = []
        for path in self.directory.glob("*" + _SUFFIX):
            entry = Entry.parse(path.name, path.stat().st_size)
            if entry is None:
                path.unlink()
            else:
                found.append(entry)
        found.sort(key=lambda e: e.name)
        self._entries.extend(found)
        self._bytes = sum(e.size for e in found)
        self._trim()

    def close(self) -> None:
        self.save_state()
        os.close(self._lock)

    # The queue.

    def put(self, body: bytes, project_id: str, categories: frozenset[str]) -> None:
        """Queue one envelope (the oldest are dropped when the queue is full)."""
        stamp = time.time_ns() if self._clock is time.time else int(self._clock() * 1e9)
        name = (f"{stamp:020d}{next(self._sequence) % 1000:03d}-{os.getpid()}-{project_id}-"
                f"{'+'.join(sorted(categories))}{_SUFFIX}")
        temporary = self.directory / ("." + name)
        temporary.write_bytes(body)
        temporary.rename(self.directory / name)
        self._entries.append(Entry(name, len(body), stamp / 1e9, project_id, categories))
        self._bytes += len(body)
        self._trim()

    def _trim(self) -> None:
        while self._entries and self._bytes > self.max_bytes:
            self.remove(self._entries[0], dropped="queue_full")

    def entries(self) -> Iterator[Entry]:
        """The queued envelopes, oldest first; those past ``max_age`` are dropped on the way."""
        horizon = self._clock() - self.max_age
        while self._entries and self._entries[0].queued_at < horizon:
            self.remove(self._entries[0], dropped="too_old")
        yield from list(self._entries)

    def read(self, entry: Entry) -> bytes | None:
        try:
            return (self.directory / entry.name).read_bytes()
        except FileNotFoundError:  # (dropped meanwhile)
            return None

    def remove(self, entry: Entry, dropped: str | None = None) -> None:
        """Take ``entry`` off the queue: sent, or ``dropped`` for that reason."""
        with contextlib.suppress(ValueError):
            self._entries.remove(entry)
            self._bytes -= entry.size
        with contextlib.suppress(FileNotFoundError):
            (self.directory / entry.name).unlink()
        if dropped:
            self.dropped[dropped] += 1
        else:
            self.sent += 1
        if self._count is not None:
            self._count(dropped or "sent")

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

    def _load_state(self) -> None:
        self._merge_state(self.directory / _STATE)

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
            for path in directory.glob("*" + _SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    pending_bytes += path.stat().st_size
                    pending += 1
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
