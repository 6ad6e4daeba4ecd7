"""What a commit leaves out because the store holds it (``shim.writer.held``), and the ids that make a
Sentry Logs record recognisable when it comes again (``shim.core.items.log_record_id``). Pure."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sentry_sdk.envelope import Envelope, Item, PayloadRef

from shim.cli.replay_inputs import log_record_from_row
from shim.core.envelope import parse_envelope
from shim.core.event import normalize_event
from shim.core.items import Limits, ingest_envelope
from shim.core.records import Batch, CheckIn, ErrorLog, StatusChange, Stored
from shim.store.sqlite import SQLiteStore
from shim.writer.held import Held, asked, sift
from shim.writer.journal import Journal
from shim.writer.log import BackupLog

RECEIVED = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
LIMITS = Limits(bug_level="critical", max_event_bytes=1 << 20)


def row(message: str = "m", item_type: str = "event") -> ErrorLog:
    made = normalize_event({"message": message}, event_id=uuid.uuid4().hex, project_id="1",
                           received=RECEIVED, bug_level="critical")
    return dataclasses.replace(made, item_type=item_type)


def check_in(status: str, check_in_id: str = "c" * 32) -> CheckIn:
    return CheckIn(check_in_id=check_in_id, project_id="1", monitor_slug="nightly",
                   status=status, duration=None, environment=None, release=None,
                   monitor_config=None, created_at=RECEIVED.isoformat())


def batch(*rows: ErrorLog, check_ins: tuple[CheckIn, ...] = (),
          counts: dict[str, int] | None = None) -> Batch:
    return Batch(error_logs=list(rows), check_ins=list(check_ins), item_counts=counts or {},
                 received_at=RECEIVED.isoformat())


# sift.

def test_nothing_held_keeps_the_batches_themselves() -> None:
    batches = [batch(row(), counts={"event": 1}), batch(check_ins=(check_in("ok"),))]
    sifted = sift(batches, Held())
    assert all(k is b for k, b in zip(sifted.kept, batches, strict=True))
    stored = [[Stored(r.event_id, False, None, None) for r in b.error_logs] for b in batches]
    assert sifted.results(stored) == stored


def test_held_rows_are_left_out_and_answered_as_duplicates() -> None:
    old, new, record = row("old"), row("new"), row("a log record", item_type="log")
    retried = batch(old, counts={"event": 1})
    mixed = batch(old, new, record, counts={"event": 2, "log": 1, "client_report": 1})
    sifted = sift([retried, mixed], Held(frozenset({old.event_id})))
    [kept] = sifted.kept  # the retry is gone whole: nothing of it is logged
    assert kept.error_logs == [new, record]
    assert kept.item_counts == {"event": 1, "log": 1, "client_report": 1}
    answer = [Stored(new.event_id, False, "bug", "BUG-00001"),
              Stored(record.event_id, False, None, None)]
    assert sifted.results([answer]) == [
        [Stored(old.event_id, True, None, None)],
        [Stored(old.event_id, True, None, None), *answer],
    ]


def test_a_row_twice_in_one_commit_is_logged_once() -> None:
    first = row()
    sifted = sift([batch(first), batch(first)], Held())
    assert [b.error_logs for b in sifted.kept] == [[first]]
    assert sifted.results([[Stored(first.event_id, False, None, None)]]) == [
        [Stored(first.event_id, False, None, None)], [Stored(first.event_id, True, None, None)]]


def test_a_log_item_is_counted_until_its_last_record_is_held() -> None:
    one, two = row("one", "log"), row("two", "log")
    partly = sift([batch(one, two, counts={"log": 1})], Held(frozenset({one.event_id})))
    assert partly.kept[0].item_counts == {"log": 1}
    whole = sift([batch(one, two, counts={"log": 1})],
                 Held(frozenset({one.event_id, two.event_id})))
    assert whole.kept == [] and whole.results([]) == [
        [Stored(one.event_id, True, None, None), Stored(two.event_id, True, None, None)]]


@pytest.mark.parametrize(("stored", "incoming", "kept"), [
    (None, "in_progress", True),
    (None, "ok", True),
    ("in_progress", "ok", True),  # the end of a running check-in
    ("in_progress", "error", True),
    ("in_progress", "in_progress", False),
    ("ok", "ok", False),  # a finished check-in is final (Sentry refuses to update it too)
    ("ok", "in_progress", False),
    ("error", "ok", False),
])
def test_check_ins_are_left_out_once_the_store_has_their_step(
        stored: str | None, incoming: str, kept: bool) -> None:
    held = Held(check_ins={} if stored is None else {"c" * 32: stored})
    sifted = sift([batch(check_ins=(check_in(incoming),), counts={"check_in": 1})], held)
    assert [b.check_ins for b in sifted.kept] == ([[check_in(incoming)]] if kept else [])


def test_a_replayed_run_of_check_ins_adds_nothing_but_a_new_one_goes_on() -> None:
    start, end = check_in("in_progress"), check_in("ok")
    first = sift([batch(check_ins=(start,)), batch(check_ins=(end,))], Held())
    assert len(first.kept) == 2  # both steps of a new run, in one commit
    again = sift([batch(check_ins=(start,)), batch(check_ins=(end,))],
                 Held(check_ins={start.check_in_id: "ok"}))
    assert again.kept == []


def test_status_changes_are_never_left_out() -> None:
    change = StatusChange(change_id="s1", bug_number="BUG-00001", status="resolved",
                          assignee=None, at=RECEIVED.isoformat())
    only = Batch(status_changes=[change], received_at=RECEIVED.isoformat())
    assert sift([only], Held()).kept == [only]
    assert asked([only]) == ([], [])


# Through the journal: what the store holds adds no line.

def day_lines(directory: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in directory.glob("*.jsonl"))


def test_the_journal_logs_nothing_the_store_holds(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    journal = Journal(BackupLog(logs), SQLiteStore(str(tmp_path / "shim.db")))
    try:
        event, start, end = row("scan failed"), check_in("in_progress"), check_in("ok")
        sent = [batch(event, counts={"event": 1}),
                batch(check_ins=(start,), counts={"check_in": 1}),
                batch(check_ins=(end,), counts={"check_in": 1})]
        assert journal.commit(sent) == [[Stored(event.event_id, False, None, None)], [], []]
        assert day_lines(logs) == 6  # each item's line and its batch's item counts
        applied = journal.backup.applied()

        assert journal.commit(sent) == [[Stored(event.event_id, True, None, None)], [], []]
        assert day_lines(logs) == 6
        assert journal.backup.applied() == applied

        later = row("later")
        assert journal.commit([batch(event, later, counts={"event": 2})]) == [
            [Stored(event.event_id, True, None, None), Stored(later.event_id, False, None, None)]]
        assert day_lines(logs) == 8  # the new event and its count only
        last = (logs / f"{RECEIVED.date()}.jsonl").read_bytes().splitlines()[-1]
        assert b'"counts":{"event":1}' in last
    finally:
        journal.close()


# Sentry Logs records: an id from the content, not from the place in the envelope.

def records_envelope(*records: dict[str, Any]) -> Envelope:
    envelope = Envelope(headers={"sdk": {"name": "sentry.python", "version": "2.75.0"}})
    envelope.add_item(Item(type="log", payload=PayloadRef(json={"items": list(records)}),
                           content_type="application/vnd.sentry.items.log+json"))
    return envelope


def ids_of(envelope: Envelope) -> list[str]:
    ingested = ingest_envelope(parse_envelope(envelope.serialize()), "1", RECEIVED, LIMITS)
    return [r.event_id for r in ingested.batch.error_logs]


def record(body: str, at: float = 1764334800.25, **attributes: Any) -> dict[str, Any]:
    return {"timestamp": at, "level": "info", "body": body, "trace_id": "ab" * 16,
            "attributes": {k: {"value": v, "type": "string"} for k, v in attributes.items()}}


def test_a_log_record_has_the_same_id_in_its_envelope_and_alone() -> None:
    records = [record("scan started"), record("page 3 is blurry", component="ocr"),
               record("scan done", at=1764334801.5)]
    together = ids_of(records_envelope(*records))
    assert together == [ids_of(records_envelope(r))[0] for r in records]
    assert together == ids_of(records_envelope(*reversed(records)))[::-1]
    assert len(set(together)) == 3


def test_identical_records_of_one_envelope_stay_two_rows() -> None:
    same = record("retrying upload")
    [first, second] = ids_of(records_envelope(same, dict(same)))
    assert first != second
    assert first == ids_of(records_envelope(same))[0]  # the first copy is the record alone
    # Two log items of one envelope count together, as the records of one item do.
    envelope = records_envelope(same)
    envelope.add_item(Item(type="log", payload=PayloadRef(json={"items": [same]})))
    assert ids_of(envelope) == [first, second]
    # Records that differ in anything (time, body, an attribute) are told apart by content.
    assert len(set(ids_of(records_envelope(same, record("retrying upload", at=1.0),
                                           record("retrying upload", attempt="2"))))) == 3


def test_the_first_copy_keeps_the_id_rows_were_stored_under_before() -> None:
    import hashlib

    import orjson

    one = record("scan started")
    before = hashlib.sha256(orjson.dumps(
        [0, one], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()[:32]
    assert ids_of(records_envelope(one)) == [before]


def test_a_replayed_row_names_its_own_id_and_is_stored_as_it_was() -> None:
    [stored] = ingest_envelope(parse_envelope(records_envelope(
        record("page 3 is blurry", component="ocr")).serialize()), "1", RECEIVED,
        LIMITS).batch.error_logs
    # As the store reads it back: the context column parsed.
    logged: dict[str, Any] = {**dataclasses.asdict(stored), "context": stored.context_object(),
                              "event_id": "e" * 32}
    rebuilt = log_record_from_row(logged)
    assert ids_of(records_envelope(rebuilt)) == ["e" * 32]
    [row_again] = ingest_envelope(parse_envelope(records_envelope(rebuilt).serialize()), "1",
                                  RECEIVED, LIMITS).batch.error_logs
    assert row_again.context_object()["attributes"] == stored.context_object()["attributes"]
    assert (row_again.message, row_again.component, row_again.created_at) == (
        stored.message, stored.component, stored.created_at)
    # A claim that is not an event id is an attribute like any other.
    odd = record("x", **{"shim.event_id": "not-an-id"})
    assert ids_of(records_envelope(odd)) != ["not-an-id"]
