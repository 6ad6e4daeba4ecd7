"""The writer against a real SQLite file: concurrent requests share one transaction, each is
answered only after the commit, and one bad batch cannot fail the others it was grouped with."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shim.normalize import normalize_event
from shim.records import Batch, ErrorLog
from shim.store.sqlite import SQLiteStore
from shim.writer import StoreFailed, Writer

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def row(message: str, level: str = "fatal") -> ErrorLog:
    return normalize_event({"message": message, "level": level}, event_id=uuid.uuid4().hex,
                           project_id="1", received=RECEIVED, bug_level="critical")


def count(path: Path, sql: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def test_concurrent_submissions_share_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "shim.db"

    async def scenario() -> list[int]:
        writer = Writer(SQLiteStore(str(path)))
        await writer.start()
        # Queued before the writer task first runs, so all of them wait at the same moment.
        results = await asyncio.gather(
            *(writer.submit(Batch(error_logs=[row(f"disk {i} full")])) for i in range(50)))
        transactions = writer.transactions
        await writer.stop()
        writer.store.close()
        assert all(len(r) == 1 and not r[0].duplicate for r in results)
        return [transactions, len({r[0].bug_id for r in results})]

    transactions, bugs = asyncio.run(scenario())
    assert transactions == 1
    assert bugs == 1  # "disk 1 full" ... "disk 49 full" are one message template
    assert count(path, "SELECT count(*) FROM error_logs") == 50
    assert count(path, "SELECT occurrence_count FROM bugs") == 50


def test_a_bad_batch_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "shim.db"
    # A level the table's CHECK constraint refuses: the database itself rejects this row.
    poison = dataclasses.replace(row("poison"), log_level="bogus")

    async def scenario() -> tuple[list[object], int]:
        writer = Writer(SQLiteStore(str(path)))
        await writer.start()
        outcomes = await asyncio.gather(
            writer.submit(Batch(error_logs=[row("good one")])),
            writer.submit(Batch(error_logs=[poison])),
            writer.submit(Batch(error_logs=[row("good two")])),
            return_exceptions=True)
        transactions = writer.transactions
        await writer.stop()
        writer.store.close()
        return outcomes, transactions

    outcomes, transactions = asyncio.run(scenario())
    assert isinstance(outcomes[1], StoreFailed)
    assert not isinstance(outcomes[0], BaseException)
    assert not isinstance(outcomes[2], BaseException)
    assert transactions == 2  # the combined one rolled back; the two good ones retried alone
    assert count(path, "SELECT count(*) FROM error_logs") == 2
    assert count(path, "SELECT count(*) FROM error_logs WHERE message = 'poison'") == 0


def test_stop_commits_what_was_submitted(tmp_path: Path) -> None:
    path = tmp_path / "shim.db"

    async def scenario() -> None:
        writer = Writer(SQLiteStore(str(path)))
        await writer.start()
        pending = [asyncio.ensure_future(writer.submit(Batch(error_logs=[row(f"m{i}", "info")])))
                   for i in range(10)]
        await asyncio.sleep(0)  # let every submit enqueue
        await writer.stop()
        await asyncio.gather(*pending)
        writer.store.close()
        with pytest.raises(StoreFailed):
            await writer.submit(Batch(error_logs=[row("after stop")]))

    asyncio.run(scenario())
    assert count(path, "SELECT count(*) FROM error_logs") == 10
