"""The journal in a process of its own, beside a server process that stores in SQLite.

SQLite commits inside the process that calls it, and much of a commit needs the GIL that request
handling needs too: the backup log's lines, binding each row, the Python around the statements.
Measured under load, the writer thread held the GIL about 30% of the time and the event loop
waited for it. Here the journal (``shim.writer.journal.Journal``, unchanged: log and fsync, then the store
transaction) runs in a child process; the server's writer thread sends it each commit and waits
without the GIL, as it waits on a database server, so commits overlap request handling.

The child is ``python -m shim.writer.process IN_FD OUT_FD``; requests and answers are pickles,
each after its length, over two pipes. A row crosses as the values of its fields in order (a tuple
pickles several times faster than a dataclass), its context already the JSON text the store
writes; the child makes the same ``ErrorLog`` of them.

Lifecycle: the child opens the store (migrating it) before the server takes requests, so a store
that cannot be opened stops the server at start, as in-process. It ignores SIGINT and SIGTERM (a
Ctrl-C or a service manager signals the whole group, and the server still has commits to hand it
while it shuts down) and exits when the server closes it or its request pipe (the server ended,
however it ended). If it dies during a call, that call fails with ``OSError``: the writer answers
503 (nothing was acknowledged; what the child had logged is applied from the log by the next
child). The next call starts a new child, as does a call that finds it died in between.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import IO, Any

from shim.core.records import Batch, BugSignal, ErrorLog, Stored

log = logging.getLogger("shim.journal_process")

_LENGTH = struct.Struct("!Q")
_PIPE_BYTES = 1 << 20  # a commit of many events crosses in one or a few writes
_CLOSE_WAIT = 30.0  # seconds the child may take to finish its last commit and close the store

# A row crosses as the values of its fields in order, its bug signal's as a tuple too.
_ROW_NAMES = tuple(f.name for f in fields(ErrorLog))
_ROW_VALUES = attrgetter(*_ROW_NAMES)
_BUG_VALUES = attrgetter(*(f.name for f in fields(BugSignal)))
_BUG_AT = _ROW_NAMES.index("bug")


@dataclass(frozen=True)
class Config:
    """What the child opens: the backup log's directory and the store."""

    log_dir: str
    database_url: str
    related_logs: int = 20
    processes: int = 1  # server processes sharing the store (SQLite's page cache is split)
    log_level: str = "warning"


def pack(batches: Sequence[Batch]) -> list[tuple[Any, ...]]:
    """Batches as plain tuples (what pickles fast)."""
    packed = []
    for batch in batches:
        rows = []
        for row in batch.error_logs:
            values = _ROW_VALUES(row)
            if row.bug is not None:
                values = (*values[:_BUG_AT], _BUG_VALUES(row.bug), *values[_BUG_AT + 1:])
            rows.append(values)
        packed.append((batch.received_at, rows, batch.check_ins, batch.item_counts,
                       batch.status_changes, batch.merges))
    return packed


def unpack(packed: list[tuple[Any, ...]]) -> list[Batch]:
    batches = []
    for received_at, rows, check_ins, item_counts, status_changes, merges in packed:
        error_logs = []
        for values in rows:
            bug = values[_BUG_AT]
            if bug is not None:
                values = (*values[:_BUG_AT], BugSignal(*bug), *values[_BUG_AT + 1:])
            error_logs.append(ErrorLog(*values))
        batches.append(Batch(error_logs=error_logs, check_ins=check_ins, item_counts=item_counts,
                             status_changes=status_changes, received_at=received_at,
                             merges=merges))
    return batches


def _send(out: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    out.write(_LENGTH.pack(len(data)))
    out.write(data)
    out.flush()


def _receive(source: IO[bytes]) -> Any:
    """The next message; ``EOFError`` when the other side has gone."""
    head = source.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (size,) = _LENGTH.unpack(head)
    data = source.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _widen(fd: int) -> None:
    with contextlib.suppress(AttributeError, OSError):  # Linux only; a smaller pipe still works
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


class JournalProcess:
    """``Journal``'s calls (``commit``, ``lag``, ``catch_up``), answered by a child process.

    Called from one thread at a time (the writer's); a lock makes sure of it."""

    overlaps_commits = True  # the writer waits on another process, as on a database server

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._requests: IO[bytes] | None = None
        self._answers: IO[bytes] | None = None
        self._summary: dict[str, Any] = {}
        with self._lock:
            self._start()

    def _start(self) -> None:
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        _widen(request_write)
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "shim.writer.process", str(request_read),
                 str(answer_write)],
                pass_fds=(request_read, answer_write), stdin=subprocess.DEVNULL)
        except BaseException:
            for fd in (request_write, answer_read):
                os.close(fd)
            raise
        finally:
            os.close(request_read)
            os.close(answer_write)
        self._requests = os.fdopen(request_write, "wb")
        self._answers = os.fdopen(answer_read, "rb")
        try:
            self._summary = self._ask("open", self.config)
        except BaseException:
            self._ended()
            raise

    def _ask(self, op: str, *args: Any) -> Any:
        assert self._requests is not None and self._answers is not None
        try:
            _send(self._requests, (op, args))
            ok, value = _receive(self._answers)
        except (EOFError, OSError) as exc:
            self._ended()
            raise OSError(f"the journal process ended ({exc or 'no answer'})") from None
        if not ok:
            raise value
        return value

    def _call(self, op: str, *args: Any) -> Any:
        with self._lock:
            if self._child is not None and self._child.poll() is not None:
                # It died between calls (killed, out of memory): no request needs to fail for it.
                log.warning("the journal process ended (exit status %s); starting another",
                            self._child.returncode)
                self._ended()
            if self._child is None:
                self._start()
            return self._ask(op, *args)

    def _ended(self) -> None:
        """Forget a child that stopped answering (a new one starts on the next call)."""
        child, self._child = self._child, None
        for stream in (self._requests, self._answers):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._requests = self._answers = None
        if child is not None:
            with contextlib.suppress(OSError):
                child.kill()
            child.wait()

    def commit(self, batches: Sequence[Batch]) -> list[list[Stored]] | None:
        answer = self._call("commit", pack(batches))
        if answer is None:
            return None
        return [[Stored(*values) for values in stored] for stored in answer]

    def lag(self) -> tuple[bool, int]:
        behind, size = self._call("lag")
        return bool(behind), int(size)

    def catch_up(self, max_lines: int = 2000) -> bool:
        return bool(self._call("catch_up", max_lines))

    def summary(self) -> dict[str, Any]:
        return dict(self._summary)

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def close(self) -> None:
        """Let the child finish and close the store; it is killed if it does not within 30 s."""
        with self._lock:
            child = self._child
            if child is None:
                return
            with contextlib.suppress(OSError, EOFError):
                assert self._requests is not None
                _send(self._requests, ("close", ()))
            with contextlib.suppress(OSError):
                assert self._requests is not None
                self._requests.close()
            try:
                child.wait(_CLOSE_WAIT)
            except subprocess.TimeoutExpired:
                log.error("the journal process did not stop within %.0f s; killed", _CLOSE_WAIT)
            self._ended()


# The child.

def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    from shim.store import open_store
    from shim.writer.journal import Journal
    from shim.writer.log import BackupLog

    journal: Journal | None = None
    while True:
        try:
            op, args = _receive(requests)
        except EOFError:
            break
        try:
            if op == "open":
                config: Config = args[0]
                logging.getLogger().setLevel(config.log_level.upper())
                store = open_store(config.database_url, related_logs=config.related_logs,
                                   server=True, processes=config.processes)
                journal = Journal(BackupLog(Path(config.log_dir)), store)
                answer: Any = store.summary()
            elif op == "close":
                break
            elif journal is None:
                raise RuntimeError("the journal process was not opened")
            elif op == "commit":
                results = journal.commit(unpack(args[0]))
                answer = None if results is None else [
                    [(s.event_id, s.duplicate, s.bug_id, s.bug_number) for s in stored]
                    for stored in results]
            elif op == "lag":
                answer = journal.lag()
            elif op == "catch_up":
                answer = journal.catch_up(*args)
            else:
                raise ValueError(f"unknown request {op!r}")
            reply: tuple[bool, Any] = (True, answer)
        except Exception as exc:  # handed to the server, which decides what it means
            # Not the disk nor the store (StoreUnavailable is an OSError too): a bug.
            if not isinstance(exc, OSError):
                log.exception("%s failed", op)  # its traceback does not cross the pipe
            reply = (False, _portable(exc))
        try:
            _send(answers, reply)
        except OSError:  # the server has gone (killed): what was committed stays committed
            break
    if journal is not None:
        journal.close()


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling, else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def main(argv: list[str]) -> None:
    # The server shuts down first and then closes us; a signal to the whole group must not stop
    # the commits it hands over meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(format="shim journal process: %(levelname)s %(name)s: %(message)s")
    requests = os.fdopen(int(argv[0]), "rb")
    answers = os.fdopen(int(argv[1]), "wb")
    _widen(answers.fileno())
    try:
        _serve(requests, answers)
    finally:
        for stream in (requests, answers):
            with contextlib.suppress(OSError):  # an answer the killed server never read
                stream.close()


if __name__ == "__main__":
    main(sys.argv[1:])
