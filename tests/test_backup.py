"""The backup log, the journal, the bugs snapshot and restore, on real files and real SQLite.

No server here: each test drives ``BackupLog``, ``Journal``, ``write_snapshot``, ``Exporter`` or
``restore`` directly, so a failure points at the piece that broke. The same behaviours are shown end
to end through a live server in ``test_recovery.py``.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import os
import sqlite3
import stat
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from shim.core.event import normalize_event
from shim.core.records import Batch, CheckIn, ErrorLog, StatusChange
from shim.settings import Settings
from shim.store import StoreUnavailable
from shim.store.sqlite import SQLiteStore
from shim.writer.exporter import Exporter
from shim.writer.journal import Journal
from shim.writer.log import MARKER, MARKER_SIZE, REJECTED, BackupLog, Position, batch_lines, parse_line
from shim.writer.restore import restore
from shim.writer.snapshot import COLUMNS, neutralise, to_csv, to_json, write_snapshot, write_streamed

DAY1 = datetime(2026, 11, 27, 23, 59, 58, tzinfo=UTC)
DAY2 = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
TABLES = ("bugs", "error_logs", "check_ins", "status_changes")


def event_row(message: str, received: datetime, level: str = "fatal", **event: Any) -> ErrorLog:
    return normalize_event({"message": message, "level": level, **event},
                           event_id=uuid.uuid4().hex, project_id="1", received=received,
                           bug_level="critical")


def exception_row(error_type: str, value: str, received: datetime, level: str = "error",
                  handled: bool = False) -> ErrorLog:
    return normalize_event({
        "level": level,
        "tags": {"component": "ocr", "workspace_id": "ws-7"},
        "exception": {"values": [{
            "type": error_type, "value": value,
            "mechanism": {"type": "excepthook", "handled": handled},
            "stacktrace": {"frames": [
                {"module": "scanner", "function": "main", "lineno": 3, "in_app": True},
                {"module": "scanner.ocr", "function": "read", "lineno": 40, "in_app": True},
            ]},
        }]},
    }, event_id=uuid.uuid4().hex, project_id="1", received=received, bug_level="critical")


def at(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def events(*rows: ErrorLog, received: datetime, counts: dict[str, int] | None = None) -> Batch:
    return Batch(error_logs=list(rows), item_counts=counts or {}, received_at=at(received))


def status(number: str, moment: datetime, new: str | None = None,
           assignee: str | None = None) -> Batch:
    change = StatusChange(change_id=uuid.uuid4().hex, bug_number=number, status=new,
                          assignee=assignee, at=at(moment), by="tester")
    return Batch(status_changes=[change], received_at=at(moment))


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def rows_of(path: Path, table: str) -> list[dict[str, Any]]:
    """Every column of every row, in primary-key order (so two databases compare as lists)."""
    key = {"bugs": "bug_number", "error_logs": "event_id", "check_ins": "check_in_id",
           "status_changes": "change_id"}[table]
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY {key}")]
    finally:
        db.close()


@pytest.fixture
def log(tmp_path: Path) -> BackupLog:
    return BackupLog(tmp_path / "bugs" / "logs")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    # A short busy timeout: a lock held by the test means "down" after 0.2 s, not 5 s.
    opened = SQLiteStore(str(tmp_path / "shim.db"), busy_timeout=0.2)
    yield opened
    opened.close()


@pytest.fixture
def locked_db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's view of the same file, holding the write lock until the test lets go."""
    SQLiteStore(str(tmp_path / "shim.db")).close()  # the schema exists before the lock is taken
    other = sqlite3.connect(tmp_path / "shim.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


# The backup log.

def test_append_returns_the_end_and_reads_back_from_any_position(log: BackupLog) -> None:
    first = log.append("2026-11-28", [b'{"n":1}\n', b'{"n":2}\n'])
    second = log.append("2026-11-28", [b'{"n":3}\n'])
    assert first == Position("2026-11-28.jsonl", 16)
    assert second == Position("2026-11-28.jsonl", 24) == log.end()
    assert log.path("2026-11-28.jsonl").read_bytes() == b'{"n":1}\n{"n":2}\n{"n":3}\n'

    everything = list(log.read_from(Position()))
    assert everything == [(Position("2026-11-28.jsonl", 8), b'{"n":1}\n'),
                          (first, b'{"n":2}\n'), (second, b'{"n":3}\n')]
    assert list(log.read_from(first)) == [(second, b'{"n":3}\n')]
    assert list(log.read_from(second)) == []


def test_day_files_added_by_another_process_are_seen(tmp_path: Path) -> None:
    """The listing of day files is kept between commits, but never past a change of the
    directory, even one that keeps the directory's time stamp while it is recent."""
    log, other = BackupLog(tmp_path), BackupLog(tmp_path)  # two processes' views of one log
    log.append("2026-11-27", [b"{}\n"])
    settled = time.time_ns() - 10 * 10**9
    os.utime(tmp_path, ns=(settled, settled))
    assert log.files() == ["2026-11-27.jsonl"]  # listed, and kept while nothing changes
    other.append("2026-11-28", [b"{}\n"])
    assert log.files() == ["2026-11-27.jsonl", "2026-11-28.jsonl"]
    assert log.end() == Position("2026-11-28.jsonl", 3)
    recent = time.time_ns()
    os.utime(tmp_path, ns=(recent, recent))
    assert log.files() == ["2026-11-27.jsonl", "2026-11-28.jsonl"]
    other.append("2026-11-29", [b"{}\n"])
    os.utime(tmp_path, ns=(recent, recent))  # the same time stamp as the last listing's
    assert log.files()[-1] == "2026-11-29.jsonl"
    (tmp_path / "2026-11-27.jsonl").unlink()  # pruned by an operator
    assert log.files() == ["2026-11-28.jsonl", "2026-11-29.jsonl"]


def test_batches_go_to_their_receive_day_and_reading_crosses_days(log: BackupLog) -> None:
    end = log.append_batches([
        events(event_row("late on day one", DAY1), received=DAY1),
        events(event_row("early on day two", DAY2), event_row("second", DAY2), received=DAY2),
    ])
    assert log.files() == ["2026-11-27.jsonl", "2026-11-28.jsonl"]
    assert end == log.end() == Position("2026-11-28.jsonl",
                                        log.path("2026-11-28.jsonl").stat().st_size)
    messages = [parse_line(line).error_logs[0].message for _, line in log.read_from(Position())]
    assert messages == ["late on day one", "early on day two", "second"]
    # From the end of day one, only day two is left.
    day_one_end = Position("2026-11-27.jsonl", log.path("2026-11-27.jsonl").stat().st_size)
    assert [p.file for p, _ in log.read_from(day_one_end)] == ["2026-11-28.jsonl"] * 2


def test_a_day_file_is_only_ever_appended_to(log: BackupLog) -> None:
    log.append_batches([events(event_row("one", DAY2), received=DAY2)])
    path = log.path("2026-11-28.jsonl")
    before, inode = path.read_bytes(), path.stat().st_ino
    log.append_batches([events(event_row("two", DAY2), received=DAY2)])
    after = path.read_bytes()
    assert path.stat().st_ino == inode  # the same file, not a replacement
    assert after.startswith(before) and len(after) > len(before)


def test_appends_are_fsynced_and_a_new_day_file_is_named_durably(
    log: BackupLog, monkeypatch: pytest.MonkeyPatch,
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    log.append("2026-11-28", [b'{"n":1}\n'])
    assert synced == ["file", "directory"]  # the data, then the directory entry naming it
    synced.clear()
    log.append("2026-11-28", [b'{"n":2}\n'])
    assert synced == ["file"]


def test_an_incomplete_last_line_is_not_read(log: BackupLog) -> None:
    end = log.append("2026-11-28", [b'{"n":1}\n'])
    with open(log.path("2026-11-28.jsonl"), "ab") as f:
        f.write(b'{"n":2, "half a li')  # a writer mid-append, or a crash
    assert list(log.read_from(Position())) == [(end, b'{"n":1}\n')]


def test_a_torn_line_is_cut_off_before_the_next_append(log: BackupLog) -> None:
    kept = batch_lines(events(event_row("kept", DAY2), received=DAY2))
    log.append("2026-11-28", kept)
    with open(log.path("2026-11-28.jsonl"), "ab") as f:
        f.write(kept[0][:40])  # torn by a crash: never fsynced, never acknowledged
    after = batch_lines(events(event_row("after the crash", DAY2), received=DAY2))
    end = log.append("2026-11-28", after)

    data = log.path("2026-11-28.jsonl").read_bytes()
    assert data == kept[0] + after[0]
    assert end == Position("2026-11-28.jsonl", len(data))
    assert [parse_line(line).error_logs[0].message for _, line in log.read_from(Position())] == [
        "kept", "after the crash"]


def test_the_end_of_the_log_ignores_a_torn_tail(log: BackupLog) -> None:
    end = log.append("2026-11-28", [b'{"n":1}\n'])
    log.mark_applied(end)
    with open(log.path("2026-11-28.jsonl"), "ab") as f:
        f.write(b'{"n":2, "torn')
    # Nothing complete is waiting, so the store is not behind (and /healthz is not degraded).
    assert log.end() == end
    assert Journal(log, None).lag() == (False, 0)  # type: ignore[arg-type]
    # Likewise a new day file holding only a torn line: the log still ends on the day before.
    with open(log.path("2026-11-29.jsonl"), "wb") as f:
        f.write(b'{"n":3, "torn')
    assert log.end() == end
    assert Journal(log, None).lag() == (False, 0)  # type: ignore[arg-type]


def test_a_torn_line_of_a_whole_file_is_cut_to_nothing(log: BackupLog) -> None:
    with open(log.path("2026-11-28.jsonl"), "wb") as f:
        f.write(b'{"v":1,"kind":"err')
    end = log.append("2026-11-28", [b'{"n":1}\n'])
    assert log.path("2026-11-28.jsonl").read_bytes() == b'{"n":1}\n'
    assert end == Position("2026-11-28.jsonl", 8)


def test_the_applied_marker(log: BackupLog) -> None:
    assert log.applied() == Position()
    log.mark_applied(Position("2026-11-28.jsonl", 1234))
    assert log.applied() == Position("2026-11-28.jsonl", 1234)
    log.mark_applied(Position("2026-11-29.jsonl", 7))
    assert log.applied() == Position("2026-11-29.jsonl", 7)
    # Overwritten in place, one fixed-size write: no longer marker leaves a tail behind.
    assert len(log.path(MARKER).read_bytes()) == MARKER_SIZE
    # A torn write can leave JSON that parses but mixes two positions: its check fails.
    marker = log.path(MARKER).read_bytes()
    log.path(MARKER).write_bytes(marker.replace(b'"offset":7', b'"offset":8'))
    assert log.applied() == Position()
    # A marker as the earlier versions wrote it (compact JSON, renamed into place) still reads.
    log.path(MARKER).write_bytes(b'{"file":"2026-11-30.jsonl","offset":5}')
    assert log.applied() == Position("2026-11-30.jsonl", 5)
    # An unreadable marker means "replay everything", which is safe (lines are idempotent).
    log.path(MARKER).write_bytes(b"{not json")
    assert log.applied() == Position()
    assert Position("2026-11-28.jsonl", 99) < Position("2026-11-29.jsonl", 0)


def test_every_kind_of_line_parses_back_to_what_was_logged() -> None:
    bug_row = exception_row("ValueError", "page 3 is empty", DAY2)
    assert bug_row.bug is not None
    check_in = CheckIn(check_in_id=uuid.uuid4().hex, project_id="1", monitor_slug="nightly",
                       status="ok", duration=1.5, environment="prod", release="r1",
                       monitor_config={"schedule": {"type": "crontab", "value": "0 * * * *"}},
                       created_at=at(DAY2))
    change = status("BUG-00001", DAY2, "resolved").status_changes[0]
    batch = Batch(error_logs=[bug_row], check_ins=[check_in], item_counts={"event": 1},
                  status_changes=[change], received_at=at(DAY2))

    parsed = [parse_line(line) for line in batch_lines(batch)]
    assert [p.error_logs for p in parsed] == [[bug_row], [], [], []]
    assert [p.check_ins for p in parsed] == [[], [check_in], [], []]
    assert [p.item_counts for p in parsed] == [{}, {}, {"event": 1}, {}]
    assert [p.status_changes for p in parsed] == [[], [], [], [change]]
    assert all(p.received_at == at(DAY2) for p in parsed)


@pytest.mark.parametrize("line", [
    b"not json\n",
    b"[1, 2]\n",
    b'{"v": 99, "kind": "error_log"}\n',
    b'{"v": 1, "kind": "teapot"}\n',
])
def test_a_bad_line_is_refused(line: bytes) -> None:
    with pytest.raises(ValueError):
        parse_line(line)


def test_a_rejected_batch_is_kept_beside_the_log_not_in_it(log: BackupLog) -> None:
    log.reject(events(event_row("poison", DAY2), received=DAY2), "IntegrityError: nope")
    assert log.files() == []
    [kept] = lines_of(log.path(REJECTED))
    assert kept["reason"] == "IntegrityError: nope"
    assert parse_line(kept["lines"][0].encode()).error_logs[0].message == "poison"


# The journal: log first, then the store; catch up from the marker.

def test_commit_logs_then_stores_and_moves_the_marker(log: BackupLog, store: SQLiteStore,
                                                      tmp_path: Path) -> None:
    journal = Journal(log, store)
    row = event_row("disk full", DAY2)
    [stored] = journal.commit([events(row, received=DAY2)]) or [[]]
    assert stored[0].event_id == row.event_id and not stored[0].duplicate
    assert stored[0].bug_number == "BUG-00001"
    assert log.applied() == log.end() != Position()
    assert journal.lag() == (False, 0)
    assert [r["event_id"] for r in rows_of(tmp_path / "shim.db", "error_logs")] == [row.event_id]
    [line] = lines_of(log.path("2026-11-28.jsonl"))
    assert line["row"]["event_id"] == row.event_id
    assert line["row"]["bug"]["title"] == "Critical: unknown - disk full"


def test_a_locked_store_only_logs_and_catches_up_once_free(
    log: BackupLog, store: SQLiteStore, locked_db: sqlite3.Connection, tmp_path: Path,
) -> None:
    journal = Journal(log, store)
    first = [event_row(f"store down {i}", DAY2) for i in range(3)]
    assert journal.commit([events(*first, received=DAY2)]) is None
    # Everything is in the log, nothing in the store, and the marker has not moved.
    assert [line["row"]["event_id"] for line in lines_of(log.path("2026-11-28.jsonl"))] == [
        r.event_id for r in first]
    assert log.applied() == Position()
    behind, lag = journal.lag()
    assert behind and lag == log.end().offset
    with pytest.raises(StoreUnavailable):
        journal.catch_up()

    locked_db.execute("ROLLBACK")  # the store is back
    # A new commit while behind is only logged too: the store applies the log in order.
    later = event_row("after the outage", DAY2)
    assert journal.commit([events(later, received=DAY2)]) is None
    assert rows_of(tmp_path / "shim.db", "error_logs") == []

    assert journal.catch_up() is True
    assert log.applied() == log.end()
    assert journal.lag() == (False, 0)
    stored = rows_of(tmp_path / "shim.db", "error_logs")
    assert sorted(r["event_id"] for r in stored) == sorted(r.event_id for r in [*first, later])
    bugs = rows_of(tmp_path / "shim.db", "bugs")
    assert [b["occurrence_count"] for b in bugs] == [3, 1]  # "store down <n>", "after the outage"

    # Catching up again applies nothing twice.
    assert journal.catch_up() is True
    assert len(rows_of(tmp_path / "shim.db", "error_logs")) == 4
    assert rows_of(tmp_path / "shim.db", "bugs") == bugs


def test_catch_up_works_in_steps_and_skips_an_unreadable_line(
    log: BackupLog, store: SQLiteStore, tmp_path: Path,
) -> None:
    rows = [event_row(f"note {i}", DAY2, level="info") for i in range(5)]
    log.append_batches([events(r, received=DAY2) for r in rows[:2]])
    log.append("2026-11-28", [b"this line is damaged\n"])
    log.append_batches([events(r, received=DAY2) for r in rows[2:]])
    journal = Journal(log, store)

    assert journal.catch_up(max_lines=2) is False
    assert len(rows_of(tmp_path / "shim.db", "error_logs")) == 2
    assert log.applied() < log.end()
    assert journal.catch_up(max_lines=2) is False
    assert journal.catch_up(max_lines=2) is True
    assert sorted(r["event_id"] for r in rows_of(tmp_path / "shim.db", "error_logs")) == sorted(
        r.event_id for r in rows)
    assert log.applied() == log.end()


# The bugs snapshot.

DANGEROUS = {
    "=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")",
    "+1+2": "'+1+2",
    "-2+3": "'-2+3",
    "@SUM(A1)": "'@SUM(A1)",
    "\tTAB": "'\tTAB",
    "\rCR": "'\rCR",
}
HARMLESS = {
    "Critical: ocr - ValueError": "Critical: ocr - ValueError",
    "a=b+c-d@e": "a=b+c-d@e",  # only the first character matters
    " =leading space": " =leading space",
    "Échec de lecture — 日本語 ✓": "Échec de lecture — 日本語 ✓",
    "": "",
}


@pytest.mark.parametrize(("value", "expected"), [
    *DANGEROUS.items(), *HARMLESS.items(),
    (None, ""), (7, "7"), (-3, "'-3"), (["a", "b"], '["a","b"]'),
])
def test_neutralise(value: object, expected: str) -> None:
    assert neutralise(value) == expected


def snapshot_bug(number: int, title: str, **fields: Any) -> dict[str, Any]:
    bug = {column: None for column in COLUMNS}
    bug.update(bug_number=f"BUG-{number:05d}", id=str(uuid.uuid4()), title=title,
               status="open", severity="critical", occurrence_count=number,
               related_log_ids=["a", "b"], **fields)
    return bug


def test_the_csv_snapshot_neutralises_formulas_and_is_utf8_with_a_header(tmp_path: Path) -> None:
    titles = [*DANGEROUS, *HARMLESS]
    bugs = [snapshot_bug(n, title, error_message=title, component="-ocr")
            for n, title in enumerate(titles, start=1)]
    write_snapshot(bugs, tmp_path)

    data = (tmp_path / "bugs.csv").read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert tuple(table[0]) == COLUMNS
    by_column = [dict(zip(COLUMNS, row, strict=True)) for row in table[1:]]
    assert [r["title"] for r in by_column] == [{**DANGEROUS, **HARMLESS}[t] for t in titles]
    assert [r["error_message"] for r in by_column] == [r["title"] for r in by_column]
    assert {r["component"] for r in by_column} == {"'-ocr"}
    assert by_column[0]["related_log_ids"] == '["a","b"]'
    assert by_column[0]["occurrence_count"] == "1"
    assert "Échec de lecture — 日本語 ✓".encode() in data
    for row in by_column:  # no cell a spreadsheet would evaluate
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())

    # The JSON snapshot keeps the values as they are (JSON is not evaluated).
    exported = orjson.loads((tmp_path / "bugs.json").read_bytes())
    assert [b["title"] for b in exported] == titles
    assert exported[0]["related_log_ids"] == ["a", "b"]
    assert list(exported[0]) == list(COLUMNS)


def test_the_snapshot_is_replaced_atomically(tmp_path: Path) -> None:
    write_snapshot([snapshot_bug(1, "old")], tmp_path)
    path = tmp_path / "bugs.csv"
    with open(path, "rb") as reader:  # a reader that opened the old snapshot
        write_snapshot([snapshot_bug(1, "new"), snapshot_bug(2, "another")], tmp_path)
        # It still reads the whole old file: the new one was renamed over it, not written into it.
        assert b"old" in reader.read()
    assert b"new" in path.read_bytes() and b"old" not in path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bugs.csv", "bugs.json"]

    # A write that fails halfway (here: reading the bugs fails) leaves the old files whole and
    # no temporary file behind.
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing() -> Iterator[dict[str, Any]]:
        yield snapshot_bug(1, "half")
        raise OSError("the store went away")

    with pytest.raises(OSError):
        write_snapshot(failing(), tmp_path)
    with pytest.raises(OSError):
        write_streamed(failing(), path, "csv")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_streamed_snapshot_is_byte_for_byte_to_csv_and_to_json(tmp_path: Path,
                                                                     count: int) -> None:
    bugs = [snapshot_bug(n, title, stack_trace="Traceback:\n  line\n", description="a,b\"c")
            for n, title in zip(range(1, count + 1), [*DANGEROUS, "caf\u00e9"], strict=False)]
    write_snapshot(iter(bugs), tmp_path)
    assert (tmp_path / "bugs.csv").read_bytes() == to_csv(bugs)
    assert (tmp_path / "bugs.json").read_bytes() == to_json(bugs)
    for fmt, whole in (("csv", to_csv(bugs)), ("json", to_json(bugs))):
        write_streamed(iter(bugs), tmp_path / f"one.{fmt}", fmt)
        assert (tmp_path / f"one.{fmt}").read_bytes() == whole
    assert orjson.loads((tmp_path / "bugs.json").read_bytes()) == [
        {c: b[c] for c in COLUMNS} for b in bugs]


def test_the_snapshot_of_many_bugs_is_written_without_holding_them(tmp_path: Path) -> None:
    """20 MB of bugs streamed from a generator: memory stays at one bug's worth, not all."""
    def bugs() -> Iterator[dict[str, Any]]:
        for n in range(1, 5001):
            yield snapshot_bug(n, f"bug {n}", stack_trace="x" * 4000)

    tracemalloc.start()
    try:
        write_snapshot(bugs(), tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "bugs.csv").stat().st_size > 20_000_000
    assert len(orjson.loads((tmp_path / "bugs.json").read_bytes())) == 5000
    assert peak < 2_000_000


def test_to_csv_of_no_bugs_is_just_the_header() -> None:
    assert to_csv([]).decode().splitlines() == [",".join(COLUMNS)]


# The exporter: only when a bug changed, and at shutdown.

def test_the_exporter_writes_only_after_a_change_and_at_stop(tmp_path: Path) -> None:
    db = str(tmp_path / "shim.db")
    out = tmp_path / "bugs"
    changes = [0]

    async def scenario() -> None:
        store = SQLiteStore(db)
        journal = Journal(BackupLog(out / "logs"), store)
        settings = Settings.from_env({"SHIM_DATA_DIR": str(tmp_path),
                                      "SHIM_EXPORT_INTERVAL": "3600"})
        exporter = Exporter(settings, changes=lambda: changes[0])
        try:
            # Nothing has changed since start: no snapshot, not even an empty one.
            await exporter.export_if_changed()
            assert not (out / "bugs.csv").exists() and exporter.exports == 0
            journal.commit([events(event_row("disk full", DAY2), received=DAY2)])
            changes[0] += 1
            assert await exporter.export_if_changed() is True
            assert exporter.exports == 1
            assert b"BUG-00001" in (out / "bugs.csv").read_bytes()
            mtime = (out / "bugs.csv").stat().st_mtime_ns
            assert await exporter.export_if_changed() is False  # no change, no rewrite
            assert (out / "bugs.csv").stat().st_mtime_ns == mtime
            journal.commit([events(event_row("disk full", DAY2), received=DAY2)])
            changes[0] += 1
            await exporter.stop()  # the last change is written at shutdown
            assert exporter.exports == 2
        finally:
            store.close()
        [bug] = orjson.loads((out / "bugs.json").read_bytes())
        assert bug["occurrence_count"] == 2

    asyncio.run(scenario())


# Restore, at the store level.

def test_restore_rebuilds_the_same_rows_and_a_second_restore_changes_nothing(
    tmp_path: Path,
) -> None:
    live_path = tmp_path / "live.db"
    log = BackupLog(tmp_path / "bugs" / "logs")
    live = SQLiteStore(str(live_path))
    journal = Journal(log, live)
    t = DAY1
    step = timedelta(seconds=1)

    crash = exception_row("ValueError", "page 3 is empty", t)
    journal.commit([events(crash, received=t, counts={"event": 1})])
    journal.commit([events(exception_row("ValueError", "page 9 is empty", t + step),
                           event_row("just a note", t + step, level="info"),
                           received=t + step, counts={"event": 2})])
    # Two requests in one transaction, one of them a retry of an event already stored: answered
    # as a duplicate, and left out of the log.
    lines = sum(len(log.path(name).read_bytes().splitlines()) for name in log.files())
    [[fresh_row], [retried]] = journal.commit([
        events(event_row("disk 1 full", DAY2), received=DAY2),
        events(crash, received=DAY2, counts={"event": 1})])
    assert not fresh_row.duplicate and retried.duplicate
    assert sum(len(log.path(name).read_bytes().splitlines()) for name in log.files()) == lines + 1
    journal.commit([status("BUG-00001", DAY2 + step, "resolved")])
    journal.commit([events(exception_row("ValueError", "page 4 is empty", DAY2 + 2 * step),
                           received=DAY2 + 2 * step)])  # a regression
    journal.commit([status("BUG-00002", DAY2 + 3 * step, assignee="alice"),
                    status("BUG-00002", DAY2 + 3 * step, "in_progress")])
    check_in_id = uuid.uuid4().hex
    for state, duration in (("in_progress", None), ("ok", 2.5)):
        journal.commit([Batch(check_ins=[CheckIn(
            check_in_id=check_in_id, project_id="1", monitor_slug="nightly", status=state,
            duration=duration, environment="prod", release=None, monitor_config=None,
            created_at=at(DAY2))], item_counts={"check_in": 1}, received_at=at(DAY2 + 4 * step))])
    live.close()
    live_rows = {table: rows_of(live_path, table) for table in TABLES}
    [first_bug, second_bug] = live_rows["bugs"]
    assert (first_bug["status"], first_bug["is_regression"], first_bug["occurrence_count"]) == (
        "open", 1, 3)
    assert (second_bug["status"], second_bug["assignee"]) == ("in_progress", "alice")
    assert len(live_rows["status_changes"]) == 3

    fresh_path = tmp_path / "restored.db"
    fresh = SQLiteStore(str(fresh_path))
    try:
        report = restore(log.directory, fresh)
        assert (report.events, report.duplicates, report.check_ins, report.status_changes) == (
            5, 0, 2, 3)
        assert report.unreadable == []
        restored = {table: rows_of(fresh_path, table) for table in TABLES}
        assert restored == live_rows

        again = restore(log.directory, fresh)
        assert (again.events, again.duplicates) == (0, 5)
        assert {table: rows_of(fresh_path, table) for table in TABLES} == live_rows
        # Per-hour item counts are statistics, not events: not replayed.
        assert fresh.stats(hour_ago="2000", day_ago="2000")["items"]["day"] == {}
    finally:
        fresh.close()


def test_restore_reports_unreadable_lines_and_a_missing_directory(tmp_path: Path) -> None:
    log = BackupLog(tmp_path / "logs")
    log.append_batches([events(event_row("kept", DAY2), received=DAY2)])
    log.append("2026-11-28", [b"garbage\n"])
    store = SQLiteStore(str(tmp_path / "restored.db"))
    try:
        report = restore(log.directory, store)
        assert report.events == 1 and len(report.unreadable) == 1
        assert "2026-11-28.jsonl" in report.unreadable[0]
        with pytest.raises(FileNotFoundError):
            restore(tmp_path / "nowhere", store)
    finally:
        store.close()


def test_restore_uses_only_day_files(tmp_path: Path) -> None:
    log = BackupLog(tmp_path / "logs")
    log.append_batches([events(event_row("kept", DAY2), received=DAY2)])
    log.reject(events(dataclasses.replace(event_row("poison", DAY2), log_level="bogus"),
                      received=DAY2), "refused")
    log.mark_applied(log.end())
    store = SQLiteStore(str(tmp_path / "restored.db"))
    try:
        assert restore(log.directory, store).events == 1
    finally:
        store.close()
    assert [r["message"] for r in rows_of(tmp_path / "restored.db", "error_logs")] == ["kept"]
    assert os.path.exists(log.path(REJECTED))
