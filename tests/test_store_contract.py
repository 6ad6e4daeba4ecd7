"""The storage protocol, the same tests against every backend: SQLite (a temporary file) and
Postgres (a fresh database per test, created on the server at ``SHIM_TEST_POSTGRES``).

Everything goes through ``open_store`` and the ``Store`` methods, so a backend that passes these
behaves like the others for the writer, the CLI and the snapshot. Without Postgres the Postgres cases
are skipped, except under ``CI``, where they fail: CI must not go green without them.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pg import new_database

from shim.core.event import normalize_event
from shim.core.records import Batch, CheckIn, ErrorLog, StatusChange
from shim.store import Store, iter_bugs, open_store
from shim.writer.held import Held

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

MakeStore = Callable[..., Store]


def at(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def event(message: str, when: datetime = T0, level: str = "fatal", fingerprint: str | None = None,
          **extra: Any) -> ErrorLog:
    body: dict[str, Any] = {"message": message, "level": level, "timestamp": at(when), **extra}
    if fingerprint is not None:
        body["fingerprint"] = [fingerprint]
    return normalize_event(body, event_id=uuid.uuid4().hex, project_id="1", received=when,
                           bug_level="warning")


def batch(*rows: ErrorLog, received: datetime = T0, counts: dict[str, int] | None = None,
          check_ins: list[CheckIn] | None = None) -> Batch:
    return Batch(error_logs=list(rows), item_counts=counts or {}, check_ins=check_ins or [],
                 received_at=at(received))


def status(number: str, new: str | None, when: datetime, change_id: str | None = None,
           assignee: str | None = None) -> Batch:
    change = StatusChange(change_id=change_id or uuid.uuid4().hex, bug_number=number, status=new,
                          assignee=assignee, at=at(when), by="tester")
    return Batch(status_changes=[change], received_at=at(when))


# Backends.

@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty database on the Postgres server, dropped after the test."""
    with new_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shim.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def make_store(store_url: str) -> Iterator[MakeStore]:
    """``make_store(related_logs=...)``: a store on this test's database, closed afterwards."""
    opened: list[Store] = []

    def make(**options: Any) -> Store:
        store = open_store(store_url, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


# The write path.

def test_a_store_migrates_once_and_answers(store_url: str, store: Store) -> None:
    assert store.ping() is True
    again = open_store(store_url)
    try:
        assert again.ping() is True
        assert again.summary()["backend"] in {"sqlite", "postgres"}
    finally:
        again.close()


def test_an_event_id_is_stored_once(store: Store) -> None:
    first, second = event("disk full"), event("disk full")
    retry = dataclasses.replace(first, id=str(uuid.uuid4()))  # a retried send: same event_id
    results = store.write([batch(first, second, retry)])
    assert [s.duplicate for s in results[0]] == [False, False, True]
    assert results[0][2].bug_id is None and results[0][2].bug_number is None
    again = store.write([batch(first), batch(second)])
    assert [[s.duplicate for s in r] for r in again] == [[True], [True]]
    assert len(store.list_logs()) == 2
    bug = next(iter_bugs(store))
    assert bug["occurrence_count"] == 2


def test_a_checked_write_still_stores_an_event_id_once(store: Store) -> None:
    """``checked``: ``held`` found none of the ids; one stored meanwhile (by a writer outside the
    backup log's lock) is still a duplicate, and its bug is counted once."""
    first = event("disk full")
    store.write([batch(first)])
    later, retry = event("disk full"), dataclasses.replace(first, id=str(uuid.uuid4()))
    [results] = store.write([batch(later, retry)], checked=True)
    assert [s.duplicate for s in results] == [False, True]
    assert results[0].bug_number == "BUG-00001" and results[1].bug_id is None
    assert len(store.list_logs()) == 2
    assert next(iter_bugs(store))["occurrence_count"] == 2
    [[fresh]] = store.write([batch(event("disk full"))], checked=True)
    assert not fresh.duplicate and next(iter_bugs(store))["occurrence_count"] == 3


def test_nul_characters_are_stored_without_losing_the_event(store: Store) -> None:
    """Postgres text and jsonb cannot hold U+0000, which SDK payloads may carry: it becomes
    U+FFFD there; SQLite keeps it. Either way the event and its context are stored."""
    row = event("a\x00b", extra={"note": "c\x00d"})
    [[stored]] = store.write([batch(row)])
    assert not stored.duplicate
    [log] = store.list_logs()
    kept = "\x00" if store.summary()["backend"] == "sqlite" else "\ufffd"
    assert log["message"] == f"a{kept}b"
    context = log["context"] if isinstance(log["context"], dict) else json.loads(log["context"])
    assert context["extra"] == {"note": f"c{kept}d"}


def test_repeats_update_one_bug(make_store: MakeStore) -> None:
    store = make_store(related_logs=3)
    rows = [event("disk full", when=T0 + timedelta(minutes=m), fingerprint="disk")
            for m in (5, 1, 9, 3, 7)]
    store.write([batch(*rows[:2]), batch(rows[2], received=T0 + timedelta(hours=1))])
    store.write([batch(*rows[3:], received=T0 + timedelta(hours=2))])
    (bug,) = list(iter_bugs(store))
    assert bug["occurrence_count"] == 5
    assert bug["first_occurred_at"] == at(T0 + timedelta(minutes=1))
    assert bug["last_occurred_at"] == at(T0 + timedelta(minutes=9))
    assert bug["related_log_ids"] == [r.id for r in rows[2:]]  # the most recent, bounded
    assert bug["created_at"] == at(T0)
    assert bug["updated_at"] == at(T0 + timedelta(hours=2))
    assert rows[0].bug is not None and bug["title"] == rows[0].bug.title
    assert bug["status"] == "open" and bug["is_regression"] == 0


def test_severity_only_escalates(store: Store) -> None:
    store.write([batch(event("slow", level="warning", fingerprint="slow"))])
    assert next(iter_bugs(store))["severity"] == "medium"
    store.write([batch(event("slow", level="error", fingerprint="slow"),
                       event("slow", level="warning", fingerprint="slow"))])
    bug = next(iter_bugs(store))
    assert (bug["severity"], bug["priority"]) == ("high", "high")
    store.write([batch(event("slow", level="warning", fingerprint="slow"))])
    assert next(iter_bugs(store))["severity"] == "high"


def test_the_store_applies_the_policy_s_severity_and_priority_as_given(store: Store) -> None:
    """The stores hold no table of priorities: what the policy put in the signal is stored, and a
    bug keeps its own when it is at least as severe (shim.core.policy.escalated)."""
    def signalled(row: ErrorLog, severity: str, priority: str) -> ErrorLog:
        assert row.bug is not None
        return dataclasses.replace(
            row, bug=dataclasses.replace(row.bug, severity=severity, priority=priority))

    store.write([batch(signalled(event("odd", fingerprint="odd"), "medium", "urgent"))])
    bug = next(iter_bugs(store))
    assert (bug["severity"], bug["priority"]) == ("medium", "urgent")
    store.write([batch(signalled(event("odd", fingerprint="odd"), "low", "high"),
                       signalled(event("odd", fingerprint="odd"), "medium", "low"))])
    bug = next(iter_bugs(store))
    assert (bug["severity"], bug["priority"]) == ("medium", "urgent")  # kept: not less severe
    store.write([batch(signalled(event("odd", fingerprint="odd"), "high", "low"),
                       signalled(event("odd", fingerprint="odd"), "high", "medium"))])
    bug = next(iter_bugs(store))
    assert (bug["severity"], bug["priority"]) == ("high", "low")  # the first of the most severe


def test_bug_numbers_increase_in_arrival_order_and_stay_with_their_bug(store: Store) -> None:
    results = store.write([batch(event("a", fingerprint="a"), event("b", fingerprint="b")),
                           batch(event("a", fingerprint="a"), event("c", fingerprint="c"))])
    numbers = [s.bug_number for r in results for s in r]
    assert numbers == ["BUG-00001", "BUG-00002", "BUG-00001", "BUG-00003"]
    later = store.write([batch(event("d", fingerprint="d"), event("b", fingerprint="b"))])
    assert [s.bug_number for s in later[0]] == ["BUG-00004", "BUG-00002"]
    bugs = list(iter_bugs(store))
    assert [b["bug_number"] for b in bugs] == ["BUG-00001", "BUG-00002", "BUG-00003", "BUG-00004"]
    assert len({b["id"] for b in bugs}) == 4
    assert {s.bug_id for r in results for s in r} <= {b["id"] for b in bugs}


def test_bugs_are_read_page_by_page_in_number_order(store: Store) -> None:
    store.write([batch(*(event(f"e{i}", fingerprint=f"f{i}") for i in range(5)))])
    assert list(iter_bugs(store, page=2)) == list(iter_bugs(store))
    assert [b["bug_number"] for b in store.bugs_after("BUG-00003", 10)] == ["BUG-00004",
                                                                            "BUG-00005"]
    assert store.bugs_after("BUG-00005", 10) == []


def test_events_below_the_bug_level_are_logged_without_a_bug(store: Store) -> None:
    (result,) = store.write([batch(event("fyi", level="info"))])
    assert result[0].bug_id is None and not result[0].duplicate
    assert list(iter_bugs(store)) == []
    (row,) = store.list_logs()
    assert row["related_bug_id"] is None and row["bug_number"] is None


def test_a_resolved_bug_that_recurs_is_reopened_as_a_regression(store: Store) -> None:
    store.write([batch(event("boom", fingerprint="boom"))])
    later = T0 + timedelta(hours=1)
    # One write: a run of events, the operator's resolve, then the event again.
    store.write([batch(event("boom", fingerprint="boom")), status("BUG-00001", "resolved", later),
                 batch(event("boom", when=later, fingerprint="boom"), received=later)])
    bug = store.get_bug("BUG-00001")
    assert bug is not None
    assert (bug["status"], bug["is_regression"], bug["occurrence_count"]) == ("open", 1, 3)
    assert bug["resolved_at"] == at(later)
    (change,) = store.status_history(bug["id"])
    assert (change["status"], change["changed_by"]) == ("resolved", "tester")


def test_status_changes_apply_in_order_and_once(store: Store) -> None:
    store.write([batch(event("boom", fingerprint="boom"))])
    one = T0 + timedelta(minutes=1)
    resolve = status("BUG-00001", "resolved", one, change_id="c1")
    # The events of a batch that carries a change go before the change.
    with_change = dataclasses.replace(resolve, error_logs=[event("boom", fingerprint="boom")])
    store.write([with_change, status("BUG-00001", None, one, assignee="ana")])
    bug = store.get_bug("BUG-00001")
    assert bug is not None
    assert (bug["status"], bug["is_regression"], bug["assignee"]) == ("resolved", 0, "ana")
    assert bug["occurrence_count"] == 2
    # A replayed change id changes nothing, even after the bug moved on.
    store.write([status("BUG-00001", "in_progress", one, change_id="c2"), resolve])
    bug = store.get_bug("BUG-00001")
    assert bug is not None and bug["status"] == "in_progress"
    history = store.status_history(bug["id"])
    assert [c["change_id"] for c in history][:1] == ["c1"] and len(history) == 3
    # A change for a bug this database does not have is ignored; "" clears the assignee.
    store.write([status("BUG-09999", "closed", one), status("BUG-00001", None, one, assignee="")])
    bug = store.get_bug("BUG-00001")
    assert bug is not None and bug["assignee"] is None


def test_check_ins_are_upserted_by_id(store_url: str, store: Store) -> None:
    start = CheckIn(check_in_id="ci-1", project_id="1", monitor_slug="nightly",
                    status="in_progress", duration=None, environment="prod", release="1.0",
                    monitor_config={"schedule": {"type": "crontab", "value": "0 3 * * *"}},
                    created_at=at(T0))
    done = dataclasses.replace(start, status="ok", duration=12.5, environment=None,
                               monitor_config=None)
    store.write([batch(check_ins=[start]), batch(check_ins=[done], received=T0 + timedelta(1))])
    store.write([batch(check_ins=[start, done])])  # the same id twice in one batch
    rows = check_ins(store_url)
    assert len(rows) == 1
    row = rows[0]
    assert (row["status"], row["duration"], row["environment"]) == ("ok", 12.5, "prod")
    assert row["monitor_config"] == start.monitor_config


def test_held_names_the_stored_event_ids_and_check_in_statuses(store: Store) -> None:
    stored, other = event("stored"), event("never sent")
    running = CheckIn(check_in_id="ci-run", project_id="1", monitor_slug="nightly",
                      status="in_progress", duration=None, environment=None, release=None,
                      monitor_config=None, created_at=at(T0))
    finished = dataclasses.replace(running, check_in_id="ci-done", status="error")
    assert store.held([], []) == Held()
    assert store.held([stored.event_id], ["ci-run"]) == Held()
    store.write([batch(stored, check_ins=[running, finished])])
    many = [uuid.uuid4().hex for _ in range(1200)]  # more than one statement's (or URL's) worth
    held = store.held([*many, other.event_id, stored.event_id], ["ci-run", "ci-done", "ci-no"])
    assert held == Held(frozenset({stored.event_id}), {"ci-run": "in_progress", "ci-done": "error"})


def test_item_counts_add_up_per_hour(store: Store) -> None:
    store.write([batch(counts={"transaction": 2, "session": 1}),
                 batch(counts={"transaction": 3}, received=T0 + timedelta(minutes=30))])
    store.write([batch(counts={"transaction": 1}, received=T0 - timedelta(hours=3))])
    stats = store.stats(hour_ago=at(T0 - timedelta(minutes=10)), day_ago=at(T0 - timedelta(1)))
    assert stats["items"]["hour"] == {"transaction": 5, "session": 1}
    assert stats["items"]["day"] == {"transaction": 6, "session": 1}


# Reads.

def test_list_bugs_filters_and_sorts(store: Store) -> None:
    store.write([
        batch(event("a", fingerprint="a", tags={"component": "ocr", "workspace_id": "w1"}),
              event("a", fingerprint="a", tags={"component": "ocr", "workspace_id": "w1"}),
              event("a", fingerprint="a", tags={"component": "ocr", "workspace_id": "w1"})),
        batch(event("b", when=T0 + timedelta(hours=2), fingerprint="b",
                    tags={"component": "bot", "workspace_id": "w2"}),
              received=T0 + timedelta(hours=2)),
        status("BUG-00002", "closed", T0 + timedelta(hours=3)),
    ])
    assert [b["bug_number"] for b in store.list_bugs()] == ["BUG-00002", "BUG-00001"]
    assert [b["bug_number"] for b in store.list_bugs(sort="count")] == ["BUG-00001", "BUG-00002"]
    assert [b["bug_number"] for b in store.list_bugs(status="open")] == ["BUG-00001"]
    assert [b["bug_number"] for b in store.list_bugs(component="bot")] == ["BUG-00002"]
    assert [b["bug_number"] for b in store.list_bugs(workspace="w1")] == ["BUG-00001"]
    since = at(T0 + timedelta(hours=1))
    assert [b["bug_number"] for b in store.list_bugs(since=since)] == ["BUG-00002"]
    assert len(store.list_bugs(limit=1)) == 1
    assert store.get_bug("BUG-00404") is None
    assert store.status_history("not-a-bug-id") == []


def test_list_logs_filters_and_pages(store: Store) -> None:
    rows = [event("note", level="info", tags={"component": "bot"}),
            event("careful", level="warning", tags={"component": "ocr"}),
            event("broken", level="error", tags={"component": "ocr"}, fingerprint="x"),
            event("down", level="fatal", tags={"component": "bot"}, fingerprint="y")]
    store.write([batch(*rows[:2]), batch(*rows[2:])])
    logs = store.list_logs()
    assert [r["message"] for r in logs] == ["note", "careful", "broken", "down"]  # oldest first
    assert [r["message"] for r in store.list_logs(limit=2)] == ["broken", "down"]
    assert [r["message"] for r in store.list_logs(level="error")] == ["broken", "down"]
    assert [r["message"] for r in store.list_logs(component="ocr")] == ["careful", "broken"]
    bug = store.get_bug("BUG-00003")
    assert bug is not None
    assert [r["message"] for r in store.list_logs(bug_id=bug["id"])] == ["down"]
    # warning and above open bugs here (bug_level="warning"); info is only logged
    assert [r["bug_number"] for r in logs] == [None, "BUG-00001", "BUG-00002", "BUG-00003"]
    cursor = logs[1]["cursor"]
    assert [r["message"] for r in store.list_logs(after=cursor)] == ["broken", "down"]
    store.write([batch(event("later", level="info"))])
    assert [r["message"] for r in store.list_logs(after=logs[-1]["cursor"])] == ["later"]
    assert logs[0]["context"]["tags"]["component"] == "bot"


def test_stats(store: Store) -> None:
    old = T0 - timedelta(hours=5)
    store.write([batch(event("old", when=old, level="error", fingerprint="old"), received=old),
                 batch(event("new", level="error", fingerprint="new"),
                       event("new", level="error", fingerprint="new"),
                       event("fyi", level="info"))])
    stats = store.stats(hour_ago=at(T0 - timedelta(hours=1)), day_ago=at(T0 - timedelta(1)))
    assert stats["levels"]["hour"] == {"error": 2, "info": 1}
    assert stats["levels"]["day"] == {"error": 3, "info": 1}
    assert stats["bugs_by_status"] == {"open": 2}
    busiest = stats["busiest"]
    assert [(b["bug_number"], b["occurrence_count"]) for b in busiest] == [
        ("BUG-00002", 2), ("BUG-00001", 1)]
    assert busiest[0]["last_occurred_at"] == at(T0)


# The backends against each other.

def test_postgres_stores_what_sqlite_stores(tmp_path: Path, postgres_url: str) -> None:
    """One mixed history written to both: every row read back is the same."""
    later = T0 + timedelta(hours=1)
    history = [
        batch(event("disk 1 full"), event("disk 2 full", level="error"), event("fyi", level="info"),
              counts={"event": 3, "session": 1}),
        batch(event("boom", fingerprint="boom", tags={"component": "ocr", "workspace_id": "w"}),
              received=T0 + timedelta(seconds=1)),
        status("BUG-00002", "resolved", later),
        batch(event("boom", when=later, fingerprint="boom"), event("disk 3 full", when=later),
              received=later, counts={"event": 2}),
        status("BUG-00001", None, later, assignee="ana"),
    ]
    stores = [open_store(f"sqlite:///{tmp_path / 'shim.db'}", related_logs=2),
              open_store(postgres_url, related_logs=2)]
    try:
        written = [s.write(history[:2]) + s.write(history[2:]) for s in stores]
        assert written[0] == written[1]
        bugs = [list(iter_bugs(s)) for s in stores]
        assert bugs[0] == bugs[1]
        logs = [[{k: v for k, v in r.items() if k != "cursor"} for r in s.list_logs()]
                for s in stores]
        assert logs[0] == logs[1]
        histories = [s.status_history(bugs[0][1]["id"]) for s in stores]
        assert histories[0] == histories[1] and len(histories[0]) == 1
        window = (at(T0 - timedelta(hours=1)), at(T0 - timedelta(1)))
        assert stores[0].stats(*window) == stores[1].stats(*window)
    finally:
        for s in stores:
            s.close()


def check_ins(url: str) -> list[dict[str, Any]]:
    """The check_ins rows (no Store method reads them), as plain values."""
    if url.startswith("sqlite"):
        import sqlite3

        import orjson

        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        db.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in db.execute("SELECT * FROM check_ins")]
        finally:
            db.close()
        for row in rows:
            if row["monitor_config"] is not None:
                row["monitor_config"] = orjson.loads(row["monitor_config"])
        return rows
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute("SELECT * FROM check_ins").fetchall())
