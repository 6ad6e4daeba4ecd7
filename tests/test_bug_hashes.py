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
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pg import new_database

from shim.core.event import normalize_event
from shim.core.records import Batch, BugMerge, ErrorLog
from shim.store import Store, iter_bugs, open_store
from shim.writer.log import batch_lines
from shim.writer.restore import restore

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def export_body(job: int, job_module: str = "scanner.export") -> dict[str, Any]:
    """An exception event as sentry-python sends it; the job number is in the value only."""
    return {"level": "error", "timestamp": at(T0), "platform": "python", "exception": {"values": [{
        "type": "ExportError", "value": f"export {job} failed", "module": "scanner.export",
        "mechanism": {"type": "generic", "handled": True},
        "stacktrace": {"frames": [
            {"module": "scanner.cli", "function": "main", "filename": "scanner/cli.py",
             "lineno": 10, "in_app": True},
            {"module": job_module, "function": "write_csv",
             "filename": "scanner/export.py", "lineno": 40 + job, "in_app": True}]}}]}}


def export_failed(job: int, with_v1: bool = False, job_module: str = "scanner.export"
                  ) -> ErrorLog:
    return normalize_event(export_body(job, job_module), event_id=uuid.uuid4().hex, project_id="1",
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
    with _other_store(store_url, tmp_path) as restored:
        assert restored.grouping_since() is None  # a new database: no bugs of version 1
        report = restore(logs, restored)
        assert report.events == 6 and not report.unreadable
        # It has some now: their repeats must find them, so the transition starts with them.
        assert restored.grouping_since() is not None
        assert _same_bugs(restored) == _same_bugs(store)
        assert len(_same_bugs(store)) == 3


@contextmanager
def _other_store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    """A new, empty store of the same backend."""
    if store_url.startswith("sqlite"):
        other = open_store(f"sqlite:///{tmp_path / 'restored.db'}")
        try:
            yield other
        finally:
            other.close()
        return
    with new_database() as url:
        other = open_store(url)
        try:
            yield other
        finally:
            other.close()


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


# -- merge and unmerge ----

def merge(number: str, *others: str, change_id: str | None = None) -> Batch:
    change = BugMerge(change_id=change_id or uuid.uuid4().hex, kind="merge", bug_number=number,
                      others=others, at=at(T0 + timedelta(hours=1)), by="tester")
    return Batch(merges=[change], received_at=change.at)


def unmerge(number: str, *hashes: str, change_id: str | None = None) -> Batch:
    change = BugMerge(change_id=change_id or uuid.uuid4().hex, kind="unmerge",
                      bug_number=number, hashes=hashes, at=at(T0 + timedelta(hours=2)))
    return Batch(merges=[change], received_at=change.at)


def counts(store: Store) -> dict[str, tuple[int, str | None]]:
    return {b["bug_number"]: (b["occurrence_count"], b["merged_into"]) for b in iter_bugs(store)}


def test_merge_folds_bugs_into_the_first_and_their_repeats_land_there(store: Store) -> None:
    early = dataclasses.replace(message("queue stalled"), created_at=at(T0 - timedelta(days=2)))
    first = store.write([batch(export_failed(1), export_failed(2)), batch(early),
                         batch(message("disk full"))])
    a, b, c = (r[0].bug_number for r in first)
    assert a is not None and b is not None and c is not None
    bug_b = bug_of(store, b)
    hash_b = bug_b["fingerprint"]
    change = merge(a, b, c)
    store.write([change])
    assert counts(store) == {a: (4, None), b: (0, a), c: (0, a)}
    assert [found["bug_number"] for found in store.list_bugs()] == [a]  # merged bugs are not listed
    merged = bug_of(store, a)
    assert merged["first_occurred_at"] == bug_b["first_occurred_at"]
    assert {h for h, _ in hashes(store, merged)} == {merged["fingerprint"], hash_b,
                                                    bug_of(store, c)["fingerprint"]}
    assert len(store.list_logs(bug_id=merged["id"])) == 4 and len(merged["related_log_ids"]) == 4
    assert store.list_logs(bug_id=bug_b["id"]) == []

    [[repeat]] = store.write([batch(message("queue stalled"))])
    assert repeat.bug_number == a
    store.write([change])  # the same change again (a replay) changes nothing
    assert counts(store) == {a: (5, None), b: (0, a), c: (0, a)}


def test_unmerge_splits_a_hash_back_out_with_its_logs(store: Store) -> None:
    first = store.write([batch(export_failed(1)), batch(message("queue stalled")),
                         batch(message("queue stalled"))])
    a, b = first[0][0].bug_number, first[1][0].bug_number
    assert a is not None and b is not None
    hash_b = bug_of(store, b)["fingerprint"]
    store.write([merge(a, b), batch(message("queue stalled"))])
    assert counts(store) == {a: (4, None), b: (0, a)}

    store.write([unmerge(a, hash_b)])
    assert counts(store) == {a: (1, None), b: (3, None)}  # the bug it came from comes back
    assert hashes(store, bug_of(store, b)) == [(hash_b, 2)]
    [[again]] = store.write([batch(message("queue stalled"))])
    assert again.bug_number == b

    # A hash that is no bug's own fingerprint (learnt in the transition) goes to a new bug.
    old_row = before_v2(export_failed(5, with_v1=True, job_module="scanner.pdf"))
    [[old]] = store.write([batch(old_row)])
    new_hash = "5" * 32  # a version 2 hash no bug has yet, of an event version 1 put there
    [[learnt]] = store.write([batch(dataclasses.replace(
        export_failed(6), fingerprint=new_hash, fingerprint_v1=old_row.fingerprint))])
    assert learnt.bug_number == old.bug_number
    store.write([unmerge(str(old.bug_number), new_hash)])
    [new] = [n for n in counts(store) if n not in (a, b, old.bug_number)]
    assert counts(store)[new] == (1, None) and counts(store)[str(old.bug_number)] == (1, None)
    assert hashes(store, bug_of(store, new)) == [(new_hash, 2)]
    assert bug_of(store, new)["fingerprint"] == new_hash


def test_merges_replay_from_the_backup_log(store: Store, store_url: str, tmp_path: Path) -> None:
    batches = [batch(export_failed(1)), batch(message("queue stalled")),
               batch(message("disk full"))]
    for one in batches:
        store.write([one])
    numbers = [b["bug_number"] for b in iter_bugs(store)]
    hash_c = bug_of(store, numbers[2])["fingerprint"]
    changes = [merge(numbers[0], numbers[1], numbers[2]), batch(message("disk full")),
               unmerge(numbers[0], hash_c), batch(message("disk full"))]
    for one in changes:
        store.write([one])
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "2026-12-01.jsonl").write_bytes(b"".join(line for b in [*batches, *changes]
                                                     for line in batch_lines(b)))
    with _other_store(store_url, tmp_path) as restored:
        report = restore(logs, restored)
        assert report.merges == 2 and not report.unreadable
        assert counts(restored) == counts(store) == {numbers[0]: (2, None),
                                                     numbers[1]: (0, numbers[0]),
                                                     numbers[2]: (3, None)}
        assert _same_bugs(restored) == _same_bugs(store)
        restore(logs, restored)  # twice: every change id applies once
        assert counts(restored) == counts(store)
