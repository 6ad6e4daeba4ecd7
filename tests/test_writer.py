"""The writer against a real SQLite file and backup log: concurrent requests share one
transaction, each is answered only after the commit, and one bad batch cannot fail the others it
was grouped with (it is set aside in rejected.jsonl instead)."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shim.core.event import normalize_event
from shim.core.records import Batch, ErrorLog, Stored
from shim.store import StoreUnavailable
from shim.store.sqlite import SQLiteStore
from shim.writer.group import Writer
from shim.writer.journal import Journal
from shim.writer.log import REJECTED, BackupLog, Position

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def row(message: str, level: str = "fatal") -> ErrorLog:
    return normalize_event({"message": message, "level": level}, event_id=uuid.uuid4().hex,
                           project_id="1", received=RECEIVED, bug_level="critical")


def batch(*rows: ErrorLog) -> Batch:
    return Batch(error_logs=list(rows), received_at=RECEIVED.isoformat())


def make_writer(tmp_path: Path) -> Writer:
    return Writer(Journal(BackupLog(tmp_path / "bugs" / "logs"),
                          SQLiteStore(str(tmp_path / "shim.db"))))


def count(path: Path, sql: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def test_concurrent_submissions_share_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "shim.db"

    async def scenario() -> list[int]:
        writer = make_writer(tmp_path)
        await writer.start()
        # Submitted while the loop runs the gathered tasks, so all of them are handed over together.
        results = await asyncio.gather(
            *(writer.submit(batch(row(f"disk {i} full"))) for i in range(50)))
        transactions = writer.transactions
        await writer.stop()
        writer.journal.store.close()
        assert all(len(r) == 1 and not r[0].duplicate for r in results)
        return [transactions, len({r[0].bug_id for r in results})]

    transactions, bugs = asyncio.run(scenario())
    assert transactions == 1
    assert bugs == 1  # "disk 1 full" ... "disk 49 full" are one message template
    assert count(path, "SELECT count(*) FROM error_logs") == 50
    assert count(path, "SELECT occurrence_count FROM bugs") == 50


class GatedStore(SQLiteStore):
    """A SQLite store whose writes wait for the test to open the gate."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.writes: list[int] = []  # requests per write

    def write(self, batches: Sequence[Batch], checked: bool = False) -> list[list[Stored]]:
        self.entered.set()
        self.gate.wait(10)
        self.writes.append(len(batches))
        return super().write(batches, checked)


def test_with_overlap_the_loop_ingests_while_a_commit_runs_and_the_next_ones_share_a_commit(
        tmp_path: Path) -> None:
    """The policy of stores that commit on a database server: a submission starts a commit at
    once; what is submitted meanwhile waits for the next one, and the event loop stays free."""
    store = GatedStore(str(tmp_path / "shim.db"))
    writer = Writer(Journal(BackupLog(tmp_path / "bugs" / "logs"), store), overlap=True)

    async def scenario() -> None:
        await writer.start()
        first = asyncio.ensure_future(writer.submit(batch(row("first"))))
        await asyncio.sleep(0)  # submit has run
        # The commit starts without the loop's help: blocking the loop does not hold it back.
        assert store.entered.wait(10)
        # The loop is free while that commit waits: more requests are submitted meanwhile.
        later = [asyncio.ensure_future(writer.submit(batch(row(f"later {i}"))))
                 for i in range(10)]
        await asyncio.sleep(0.05)
        assert not first.done() and not any(f.done() for f in later)
        store.gate.set()
        await asyncio.gather(first, *later)
        await writer.stop()

    asyncio.run(scenario())
    store.close()
    assert store.writes == [1, 10]
    assert writer.transactions == 2
    assert count(tmp_path / "shim.db", "SELECT count(*) FROM error_logs") == 11


def test_without_overlap_what_the_loop_has_ready_is_committed_together(tmp_path: Path) -> None:
    """SQLite's policy: submissions are handed over once the loop has run every ready request,
    even when they come from separate tasks started one after the other."""
    store = GatedStore(str(tmp_path / "shim.db"))
    store.gate.set()
    writer = Writer(Journal(BackupLog(tmp_path / "bugs" / "logs"), store))
    assert writer.overlap is False

    async def scenario() -> None:
        await writer.start()
        tasks = [asyncio.ensure_future(writer.submit(batch(row(f"m {i}")))) for i in range(20)]
        await asyncio.sleep(0)  # every submit has run
        # Nothing is handed over while the loop is busy (here: blocked by this wait).
        assert not store.entered.wait(0.2)
        await asyncio.gather(*tasks)
        await writer.stop()

    asyncio.run(scenario())
    store.close()
    assert store.writes == [20]


def test_a_job_runs_after_what_was_submitted_before_it(tmp_path: Path) -> None:
    writer = make_writer(tmp_path)

    async def scenario() -> tuple[bool, int]:
        await writer.start()
        pending = [asyncio.ensure_future(writer.submit(batch(row(f"m {i}", "info"))))
                   for i in range(5)]
        await asyncio.sleep(0)  # every submit has run
        lag = await writer.run_in_thread(writer.journal.lag)
        stored = await writer.run_in_thread(
            count, tmp_path / "shim.db", "SELECT count(*) FROM error_logs")
        await asyncio.gather(*pending)
        await writer.stop()
        return lag[0], stored

    behind, stored = asyncio.run(scenario())
    writer.journal.store.close()
    assert (behind, stored) == (False, 5)


class EndingJournal(Journal):
    """A journal whose commit ends the writer's thread (as an unexpected BaseException would)."""

    def commit(self, batches: Sequence[Batch]) -> list[list[Stored]] | None:
        raise SystemExit


@pytest.mark.parametrize("overlap", [True, False])
def test_if_the_writer_thread_ends_no_request_is_left_waiting(tmp_path: Path,
                                                               overlap: bool) -> None:
    store = SQLiteStore(str(tmp_path / "shim.db"))
    writer = Writer(EndingJournal(BackupLog(tmp_path / "bugs" / "logs"), store), overlap=overlap)

    async def scenario() -> list[object]:
        await writer.start()
        first = await asyncio.gather(*(writer.submit(batch(row(f"m {i}"))) for i in range(3)),
                                     return_exceptions=True)
        later = await asyncio.gather(writer.submit(batch(row("later"))), return_exceptions=True)
        await asyncio.wait_for(writer.stop(), 10)
        return [*first, *later]

    outcomes = asyncio.run(asyncio.wait_for(scenario(), 30))
    store.close()
    assert [type(o) for o in outcomes] == [StoreUnavailable] * 4


class MiscountingJournal(Journal):
    """A journal that commits, then answers for one batch too few (a bug of ours)."""

    def commit(self, batches: Sequence[Batch]) -> list[list[Stored]] | None:
        results = super().commit(batches)
        return None if results is None else results[:-1]


def test_a_commit_whose_answer_fails_fails_its_requests_and_the_writer_goes_on(
        tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "shim.db"))
    writer = Writer(MiscountingJournal(BackupLog(tmp_path / "bugs" / "logs"), store))

    async def scenario() -> tuple[list[object], bool]:
        await writer.start()
        outcomes = await asyncio.wait_for(asyncio.gather(
            *(writer.submit(batch(row(f"m {i}"))) for i in range(3)), return_exceptions=True), 10)
        later = await asyncio.wait_for(asyncio.gather(
            writer.submit(batch(row("later"))), return_exceptions=True), 10)
        alive = writer._thread is not None and writer._thread.is_alive()
        await asyncio.wait_for(writer.stop(), 10)
        return [*outcomes, *later], alive

    outcomes, alive = asyncio.run(scenario())
    store.close()
    assert [type(o) for o in outcomes] == [StoreUnavailable] * 4  # answered, not left waiting
    assert alive  # the writer thread survived its own bug
    assert count(tmp_path / "shim.db", "SELECT count(*) FROM error_logs") == 4  # all kept


def test_a_refused_batch_is_set_aside_alone(tmp_path: Path) -> None:
    path = tmp_path / "shim.db"
    # A level the table's CHECK constraint refuses: the database itself rejects this row.
    poison = dataclasses.replace(row("poison"), log_level="bogus")

    async def scenario() -> tuple[list[object], int]:
        writer = make_writer(tmp_path)
        await writer.start()
        outcomes = await asyncio.gather(
            writer.submit(batch(row("good one"))),
            writer.submit(batch(poison)),
            writer.submit(batch(row("good two"))),
            return_exceptions=True)
        transactions = writer.transactions
        await writer.stop()
        writer.journal.store.close()
        return outcomes, transactions

    outcomes, transactions = asyncio.run(scenario())
    # All three are acknowledged: the poison is on disk, in the log and set aside for the operator.
    assert not any(isinstance(o, BaseException) for o in outcomes)
    assert transactions == 1
    assert count(path, "SELECT count(*) FROM error_logs") == 2
    assert count(path, "SELECT count(*) FROM error_logs WHERE message = 'poison'") == 0
    rejected = (tmp_path / "bugs" / "logs" / REJECTED).read_text()
    assert "poison" in rejected and "good" not in rejected
    # And the log still holds all three, so the marker moved past the poison.
    log = BackupLog(tmp_path / "bugs" / "logs")
    assert log.applied() == log.end()
    assert sum(1 for _ in log.read_from(Position())) == 3


def test_stop_commits_what_was_submitted(tmp_path: Path) -> None:
    path = tmp_path / "shim.db"

    async def scenario() -> None:
        writer = make_writer(tmp_path)
        await writer.start()
        pending = [asyncio.ensure_future(writer.submit(batch(row(f"m{i}", "info"))))
                   for i in range(10)]
        await asyncio.sleep(0)  # let every submit enqueue
        await writer.stop()
        await asyncio.gather(*pending)
        writer.journal.store.close()
        with pytest.raises(StoreUnavailable):
            await writer.submit(batch(row("after stop")))

    asyncio.run(scenario())
    assert count(path, "SELECT count(*) FROM error_logs") == 10


def test_an_up_to_date_store_opens_while_another_process_holds_the_write_lock(
        tmp_path: Path) -> None:
    """So the server can start (and log, and catch up later) while the store is "down"."""
    path = tmp_path / "shim.db"
    SQLiteStore(str(path)).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = SQLiteStore(str(path), busy_timeout=0.2)
        assert store.ping() is False
        store.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store = SQLiteStore(str(path))
    assert store.ping() is True
    store.close()


def _open_store(path: str, barrier: Any, results: Any, number: int) -> None:
    barrier.wait()
    try:
        SQLiteStore(path).close()
        results[number] = "ok"
    except Exception as exc:  # reported to the test
        results[number] = f"{type(exc).__name__}: {exc}"


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """`serve --workers N` on a fresh data dir: switching a new file to WAL takes its lock
    without waiting, so the processes racing to create it used to fail ("database is locked")."""
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        results = manager.dict()
        for attempt in range(12):
            path = str(tmp_path / f"race-{attempt}" / "shim.db")
            barrier = context.Barrier(4)
            processes = [context.Process(target=_open_store, args=(path, barrier, results, n))
                         for n in range(4)]
            for process in processes:
                process.start()
            for process in processes:
                process.join(60)
            assert dict(results) == dict.fromkeys(range(4), "ok")
            results.clear()
