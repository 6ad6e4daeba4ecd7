"""The hashes a bug is found by (``bug_hashes``) and the transition from grouping version 1 to 2,
against every backend (SQLite, and Postgres at ``SHIM_TEST_POSTGRES``): a new bug keeps its
version 2 hash; during the transition an event that matches a bug of version 1 by its version 1
hash joins it and teaches it the new hash; a restore from the backup log gives the same bugs;
several writers on one Postgres give the same bugs as one."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pg import new_database

from shim.core.event import normalize_event
from shim.core.records import Batch, ErrorLog
from shim.store import Store, iter_bugs, open_store
from shim.writer.log import batch_lines
from shim.writer.restore import restore

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def export_body(job: int) -> dict[str, Any]:
    """An exception event as sentry-python sends it; the job number is in the value only."""
    return {"level": "error", "timestamp": at(T0), "platform": "python", "exception": {"values": [{
        "type": "ExportError", "value": f"export {job} failed", "module": "scanner.export",
        "mechanism": {"type": "generic", "handled": True},
        "stacktrace": {"frames": [
            {"module": "scanner.cli", "function": "main", "filename": "scanner/cli.py",
             "lineno": 10, "in_app": True},
            {"module": "scanner.export", "function": "write_csv",
             "filename": "scanner/export.py", "lineno": 40 + job, "in_app": True}]}}]}}


def export_failed(job: int, with_v1: bool = False) -> ErrorLog:
    return normalize_event(export_body(job), event_id=uuid.uuid4().hex, project_id="1",
                           received=T0, bug_level="error", with_v1=with_v1)


def message(text: str, with_v1: bool = False) -> ErrorLog:
    return normalize_event({"level": "fatal", "message": text, "timestamp": at(T0)},
                           event_id=uuid.uuid4().hex, project_id="1", received=T0,
                           bug_level="error", with_v1=with_v1)


def before_v2(row: ErrorLog) -> ErrorLog:
    """The row a shim of grouping version 1 wrote for the same event (and its backup log holds):
    the version 1 hash as its fingerprint, its bug of version 1."""
    assert row.fingerprint_v1 is not None and row.bug is not None
    return dataclasses.replace(row, fingerprint=row.fingerprint_v1, fingerprint_v1=None,
                               bug=dataclasses.replace(row.bug, grouping_version=1))


def batch(*rows: ErrorLog) -> Batch:
    return Batch(error_logs=list(rows), received_at=at(T0))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shim.db'}"
        return
    with new_database() as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def bug_of(store: Store, number: str | None) -> dict[str, Any]:
    assert number is not None
    found = store.get_bug(number)
    assert found is not None
    return found


def hashes(store: Store, bug: dict[str, Any]) -> list[tuple[str, int]]:
    return [(h["hash"], h["grouping_version"]) for h in store.bug_hashes(bug["id"])]


def test_a_new_bug_keeps_its_version_2_hash(store: Store) -> None:
    first, repeat = export_failed(1), export_failed(2)
    assert first.fingerprint == repeat.fingerprint and first.bug is not None
    assert first.bug.grouping_version == 2
    [[one], [two]] = store.write([batch(first), batch(repeat)])
    assert one.bug_number == two.bug_number
    bug = bug_of(store, one.bug_number)
    assert (bug["fingerprint"], bug["grouping_version"], bug["occurrence_count"]) == (
        first.fingerprint, 2, 2)
    assert hashes(store, bug) == [(first.fingerprint, 2)]


def test_during_the_transition_a_repeat_joins_the_version_1_bug_and_teaches_it(
        store: Store) -> None:
    [[old]] = store.write([batch(before_v2(export_failed(1, with_v1=True)))])
    old_bug = bug_of(store, old.bug_number)
    assert old_bug["grouping_version"] == 1

    repeat = export_failed(2, with_v1=True)
    assert repeat.fingerprint != old_bug["fingerprint"] == repeat.fingerprint_v1
    [[joined]] = store.write([batch(repeat)])
    assert joined.bug_number == old.bug_number and joined.bug_id == old_bug["id"]
    assert hashes(store, old_bug) == [(old_bug["fingerprint"], 1), (repeat.fingerprint, 2)]

    # After the transition no event computes version 1: the learnt hash finds the bug alone.
    later = export_failed(3)
    assert later.fingerprint_v1 is None
    [[again]] = store.write([batch(later)])
    assert again.bug_number == old.bug_number
    assert bug_of(store, old.bug_number)["occurrence_count"] == 3
    logs = store.list_logs(bug_id=old_bug["id"])
    assert len(logs) == 3 and {log["bug_number"] for log in logs} == {old.bug_number}

    # A problem version 1 never saw is a new bug of version 2, which learns no version 1 hash.
    [[new]] = store.write([batch(message("disk full", with_v1=True))])
    assert new.bug_number != old.bug_number
    assert [v for _, v in hashes(store, bug_of(store, new.bug_number))] == [2]
    assert [b["bug_number"] for b in iter_bugs(store)] == [old.bug_number, new.bug_number]


def test_a_fingerprint_s_first_event_decides_its_bug_within_a_write(store: Store) -> None:
    [[old]] = store.write([batch(before_v2(export_failed(1, with_v1=True)))])
    # One write: the first event of the new hash carries the old hash; the second does not.
    results = store.write([batch(export_failed(2, with_v1=True), export_failed(3)),
                           batch(export_failed(4))])
    assert {s.bug_number for r in results for s in r} == {old.bug_number}
    assert bug_of(store, old.bug_number)["occurrence_count"] == 4


def test_the_first_event_without_the_old_hash_opens_a_new_bug(store: Store) -> None:
    [[old]] = store.write([batch(before_v2(export_failed(1, with_v1=True)))])
    [[first, second]] = store.write([batch(export_failed(2), export_failed(3, with_v1=True))])
    assert first.bug_number == second.bug_number != old.bug_number
    assert bug_of(store, old.bug_number)["occurrence_count"] == 1


def _same_bugs(store: Store) -> list[tuple[Any, ...]]:
    return [(b["id"], b["bug_number"], b["fingerprint"], b["grouping_version"],
             b["occurrence_count"], tuple(hashes(store, b))) for b in iter_bugs(store)]


def test_a_restore_from_the_backup_log_gives_the_same_bugs_and_hashes(
        store: Store, store_url: str, tmp_path: Path) -> None:
    batches = [batch(before_v2(export_failed(1, with_v1=True)), message("queue stalled")),
               batch(export_failed(2, with_v1=True)), batch(export_failed(3)),
               batch(message("disk full", with_v1=True), export_failed(4, with_v1=True))]
    for one in batches:  # as the server wrote them, one at a time (a restore writes them all)
        store.write([one])
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "2026-12-01.jsonl").write_bytes(b"".join(line for b in batches
                                                     for line in batch_lines(b)))
    other = open_store(f"sqlite:///{tmp_path / 'restored.db'}") if store_url.startswith(
        "sqlite") else None
    with new_database() if other is None else _nothing() as url:
        restored = other or open_store(url)
        try:
            report = restore(logs, restored)
            assert report.events == 6 and not report.unreadable
            assert _same_bugs(restored) == _same_bugs(store)
            assert len(_same_bugs(store)) == 3
        finally:
            restored.close()


class _nothing:
    def __enter__(self) -> str:
        return ""

    def __exit__(self, *exc: object) -> None:
        return None


def test_several_writers_on_one_postgres_give_one_bug(tmp_path: Path) -> None:
    with new_database() as url:
        stores = [open_store(url) for _ in range(4)]
        try:
            [[old]] = stores[0].write([batch(before_v2(export_failed(1, with_v1=True)))])
            start = threading.Barrier(len(stores))
            found: list[set[str | None]] = []

            def send(store: Store) -> None:
                start.wait()
                for _ in range(5):
                    results = store.write([batch(export_failed(2, with_v1=True),
                                                 message("new problem", with_v1=True))])
                    found.append({s.bug_number for r in results for s in r})

            threads = [threading.Thread(target=send, args=(s,)) for s in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            numbers = set().union(*found)
            assert len(numbers) == 2 and old.bug_number in numbers
            bugs = list(iter_bugs(stores[0]))
            assert [b["occurrence_count"] for b in bugs] == [21, 20]
            assert [len(hashes(stores[0], b)) for b in bugs] == [2, 1]
        finally:
            for store in stores:
                store.close()
