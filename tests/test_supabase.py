"""The Supabase store, driven through the real ``supabase`` client against a STAND-IN for Supabase.

Supabase itself is not reachable from here. ``tests/postgrest_standin.py`` is a small local server
that speaks the part of PostgREST's HTTP protocol the client uses and executes each request on the
real local Postgres the way PostgREST would: ``POST /rest/v1/rpc/shim_ingest`` calls the SQL function
with the JSON body's keys as named arguments, table reads become SELECTs. What these tests show is
that the client sends the right requests (RPC name, ``batch`` argument, ``apikey`` and Bearer
headers) and that, executed as PostgREST executes them, they store and read what the Postgres store
does. They do not show that Supabase's gateway, roles or RLS behave like the stand-in.

Each test gets a fresh database with the packaged migrations applied (``shim.store.migrate``); the
store contract of ``test_store_contract.py`` runs again on this backend. Without Postgres the tests
are skipped, except under ``CI``, where they fail.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import test_store_contract as contract
from postgrest import APIError
from postgrest_standin import Standin
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from starlette.testclient import TestClient
from test_store_contract import T0, MakeStore, at, batch, event, postgres_url, status

import shim.store.supabase as supabase_store
from shim.app import create_app
from shim.core.auth import Keys
from shim.core.records import Batch, BugMerge
from shim.settings import Settings
from shim.store import StoreUnavailable, UnsupportedStore, iter_bugs, migrate, open_store
from shim.store.postgres import PostgresStore
from shim.store.rows import ingest_payload
from shim.store.supabase import SchemaNotApplied, SupabaseStore

__all__ = ["postgres_url"]  # a fixture, used by the ones below

# Shaped like Supabase's service_role JWT (older clients check the shape); the stand-in only
# compares it.
SERVICE_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c3RhbmQtaW4"


@pytest.fixture
def store_url(postgres_url: str) -> str:
    """The fresh database, with the schema applied as `shim migrate` applies it."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        migrate.migrate(conn)
    return postgres_url


@pytest.fixture
def standin(store_url: str) -> Iterator[Standin]:
    # A database in another zone than UTC: the store must still read back UTC times.
    server = Standin(store_url, SERVICE_KEY, timezone="America/Sao_Paulo")
    server.serve()
    yield server
    server.stop()


@pytest.fixture
def make_store(standin: Standin) -> Iterator[MakeStore]:
    opened: list[SupabaseStore] = []

    def make(**options: Any) -> SupabaseStore:
        store = SupabaseStore(standin.url, SERVICE_KEY, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> SupabaseStore:
    made = make_store()
    assert isinstance(made, SupabaseStore)
    return made


# The store contract, again, on this backend (the tests that compare backends or reopen by URL
# are for the URL-based stores).
test_an_event_id_is_stored_once = contract.test_an_event_id_is_stored_once
test_a_checked_write_still_stores_an_event_id_once = (
    contract.test_a_checked_write_still_stores_an_event_id_once)
test_repeats_update_one_bug = contract.test_repeats_update_one_bug
test_severity_only_escalates = contract.test_severity_only_escalates
test_bug_numbers_increase_in_arrival_order_and_stay_with_their_bug = (
    contract.test_bug_numbers_increase_in_arrival_order_and_stay_with_their_bug)
test_events_below_the_bug_level_are_logged_without_a_bug = (
    contract.test_events_below_the_bug_level_are_logged_without_a_bug)
test_a_resolved_bug_that_recurs_is_reopened_as_a_regression = (
    contract.test_a_resolved_bug_that_recurs_is_reopened_as_a_regression)
test_status_changes_apply_in_order_and_once = contract.test_status_changes_apply_in_order_and_once
test_check_ins_are_upserted_by_id = contract.test_check_ins_are_upserted_by_id
test_item_counts_add_up_per_hour = contract.test_item_counts_add_up_per_hour
test_held_names_the_stored_event_ids_and_check_in_statuses = (
    contract.test_held_names_the_stored_event_ids_and_check_in_statuses)
test_list_bugs_filters_and_sorts = contract.test_list_bugs_filters_and_sorts
test_list_logs_filters_and_pages = contract.test_list_logs_filters_and_pages
test_stats = contract.test_stats


# What the client sends.

def test_a_write_is_one_rpc_of_shim_ingest_with_the_service_key(standin: Standin,
                                                                  store: SupabaseStore) -> None:
    batches = [batch(event("disk full", fingerprint="disk"), event("fyi", level="info"),
                     counts={"event": 2})]
    standin.requests.clear()
    (result,) = store.write(batches)
    (call,) = standin.requests
    assert (call.method, call.path) == ("POST", "/rest/v1/rpc/shim_ingest")
    assert call.query == []
    assert list(call.body) == ["batch"]
    assert call.body["batch"] == orjson.loads(ingest_payload(batches, store.related_logs))
    assert call.headers["apikey"] == SERVICE_KEY
    assert call.headers["authorization"] == f"Bearer {SERVICE_KEY}"
    assert call.headers["content-type"] == "application/json"
    assert [(s.duplicate, s.bug_number) for s in result] == [(False, "BUG-00001"), (False, None)]


def test_every_request_carries_the_key_and_reads_are_table_selects(standin: Standin,
                                                                   store: SupabaseStore) -> None:
    store.write([batch(event("boom", fingerprint="boom"))])
    standin.requests.clear()
    store.list_bugs(status="open", since=at(T0 - timedelta(hours=1)), sort="count", limit=3)
    (call,) = standin.requests
    assert (call.method, call.path) == ("GET", "/rest/v1/bugs")
    assert call.query == [("select", "*"), ("merged_into", "is.null"), ("status", "eq.open"),
                          ("last_occurred_at", f"gte.{at(T0 - timedelta(hours=1))}"),
                          ("order", "occurrence_count.desc,last_occurred_at.desc,bug_number.asc"),
                          ("offset", "0"), ("limit", "3")]
    store.stats(hour_ago=at(T0 - timedelta(hours=1)), day_ago=at(T0 - timedelta(1)))
    assert {r.headers["apikey"] for r in standin.requests} == {SERVICE_KEY}
    assert {r.headers["authorization"] for r in standin.requests} == {f"Bearer {SERVICE_KEY}"}
    assert {r.method for r in standin.requests} == {"GET", "HEAD"}  # HEAD: counts only


# Deduplication and counts across writes.

def test_events_are_deduplicated_by_event_id_and_counted_once_per_bug(store_url: str,
                                                                      store: SupabaseStore) -> None:
    first = event("disk 1 full", fingerprint="disk")
    results = store.write([batch(first, first)])
    assert [s.duplicate for s in results[0]] == [False, True]
    for n in range(2, 6):  # the same fingerprint, new events, each its own write
        (again,) = store.write([batch(first, event(f"disk {n} full", fingerprint="disk"))])
        assert [(s.duplicate, s.bug_number) for s in again] == [(True, None),
                                                                (False, "BUG-00001")]
    (bug,) = list(iter_bugs(store))
    assert bug["occurrence_count"] == 5
    with psycopg.connect(store_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM error_logs").fetchone()
    assert row == (5, 5)


def test_status_changes_reach_the_bug(store: SupabaseStore) -> None:
    store.write([batch(event("boom", fingerprint="boom"))])
    store.write([status("BUG-00001", "in_progress", T0 + timedelta(minutes=1), assignee="ana")])
    store.write([status("BUG-00001", "resolved", T0 + timedelta(minutes=2))])
    bug = store.get_bug("BUG-00001")
    assert bug is not None
    assert (bug["status"], bug["assignee"], bug["resolved_at"]) == (
        "resolved", "ana", at(T0 + timedelta(minutes=2)))
    history = store.status_history(bug["id"])
    assert [c["status"] for c in history] == ["in_progress", "resolved"]


def test_merges_hashes_and_the_transition_read_as_the_postgres_store(
        store_url: str, store: SupabaseStore) -> None:
    store.write([batch(event("boom", fingerprint="boom")),
                 batch(event("bang", when=T0 + timedelta(minutes=2), fingerprint="x")),
                 batch(event("fizz", when=T0 + timedelta(minutes=1), fingerprint="y"))])
    change = BugMerge(change_id=uuid.uuid4().hex, kind="merge", bug_number="BUG-00001",
                      others=("BUG-00002",), at=at(T0 + timedelta(minutes=3)))
    store.write([Batch(merges=[change], received_at=change.at)])
    postgres = PostgresStore(store_url)
    try:
        listed = store.list_bugs()
        assert [b["bug_number"] for b in listed] == ["BUG-00001", "BUG-00003"]  # not the merged
        assert listed == postgres.list_bugs()
        merged = store.get_bug("BUG-00002")
        assert merged is not None and merged["merged_into"] == "BUG-00001"
        kept = store.get_bug("BUG-00001")
        assert kept is not None and kept["occurrence_count"] == 2
        assert store.bug_hashes(kept["id"]) == postgres.bug_hashes(kept["id"])
        assert [h["grouping_version"] for h in store.bug_hashes(kept["id"])] == [2, 2]
        assert store.bug_hashes("not-a-bug-id") == []
        assert store.grouping_since() is postgres.grouping_since() is None  # a new database
    finally:
        postgres.close()


# Reads give what the Postgres store gives, from the same database.

def test_reads_equal_the_postgres_store(store_url: str, store: SupabaseStore,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supabase_store, "PAGE", 2)  # so that every read goes in several pages
    later = T0 + timedelta(hours=1)
    # No two bugs share a last_occurred_at: the Postgres store leaves the order of ties open.
    store.write([
        batch(event("disk 1 full", level="error"), event("disk 2 full", level="error"),
              event("fyi", level="info"), event("careful", level="warning"),
              counts={"event": 4, "session": 1}),
        batch(event("boom", fingerprint="boom", tags={"component": "ocr", "workspace_id": "w"}),
              event("odd", when=T0 + timedelta(minutes=2), fingerprint="odd",
                    tags={"component": "bot"}),
              received=T0 + timedelta(seconds=1)),
    ])
    store.write([status("BUG-00003", "resolved", later),
                 batch(event("boom", when=later, fingerprint="boom"),
                       event("disk 3 full", when=later + timedelta(minutes=1), level="error"),
                       received=later, counts={"event": 2}),
                 status("BUG-00001", None, later, assignee="ana")])
    postgres = PostgresStore(store_url)
    try:
        bugs = list(iter_bugs(postgres))
        assert len(bugs) == 4
        assert list(iter_bugs(store)) == bugs
        assert list(iter_bugs(store, page=3)) == bugs
        assert store.bugs_after("BUG-00002", 10) == postgres.bugs_after("BUG-00002", 10) == bugs[2:]
        for options in ({}, {"sort": "count"}, {"status": "open"}, {"component": "ocr"},
                        {"workspace": "w"}, {"since": at(T0 + timedelta(minutes=30))},
                        {"limit": 3}, {"sort": "count", "limit": 1}):
            assert store.list_bugs(**options) == postgres.list_bugs(**options), options
        assert store.get_bug("BUG-00003") == postgres.get_bug("BUG-00003")
        assert store.get_bug("BUG-00404") is postgres.get_bug("BUG-00404") is None
        for bug in bugs:
            assert store.status_history(bug["id"]) == postgres.status_history(bug["id"])
        cursor = postgres.list_logs()[2]["cursor"]
        for log_options in ({}, {"limit": 3}, {"level": "warning"}, {"component": "ocr"},
                            {"bug_id": bugs[2]["id"]}, {"after": cursor},
                            {"bug_id": "not-a-bug-id"}, {"limit": 0}):
            assert store.list_logs(**log_options) == postgres.list_logs(**log_options), log_options
        for window in ((at(T0 - timedelta(hours=1)), at(T0 - timedelta(1))),
                       (at(later - timedelta(minutes=1)), at(T0 - timedelta(hours=1)))):
            assert store.stats(*window) == postgres.stats(*window)
    finally:
        postgres.close()


# Where things go wrong: the events must stay in the backup log, not be set aside as refused.

def test_a_project_without_the_schema_says_how_to_apply_it(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    standin = Standin(postgres_url, SERVICE_KEY)
    standin.serve()
    try:
        with caplog.at_level(logging.WARNING, logger="shim.store"):
            store = SupabaseStore(standin.url, SERVICE_KEY)
        try:
            assert "shim migrate --sql" in caplog.text
            assert store.ping() is False
            with pytest.raises(SchemaNotApplied, match="shim migrate --sql"):
                store.migrate()
            with pytest.raises(OSError, match="shim migrate --sql"):  # the journal keeps them
                store.write([batch(event("boom"))])
        finally:
            store.close()
    finally:
        standin.stop()


def test_a_wrong_key_or_no_server_is_unavailable(standin: Standin) -> None:
    wrong = SupabaseStore(standin.url, "not-the-service-key")
    try:
        assert wrong.ping() is False
        with pytest.raises(StoreUnavailable, match="Invalid API key"):
            wrong.write([batch(event("boom"))])
    finally:
        wrong.close()
    standin.stop()
    gone = SupabaseStore(standin.url, SERVICE_KEY, timeout=2.0)
    try:
        assert gone.ping() is False
        with pytest.raises(StoreUnavailable, match="not reachable"):
            gone.write([batch(event("boom"))])
    finally:
        gone.close()


def test_a_row_the_database_refuses_is_not_an_outage(store: SupabaseStore) -> None:
    """A constraint violation stays an APIError (not an OSError): the journal sets the batch aside
    instead of waiting for the store forever."""
    bad = dataclasses.replace(event("boom"), log_level="loud")
    with pytest.raises(APIError) as refused:
        store.write([batch(bad)])
    assert not isinstance(refused.value, OSError) and refused.value.code == "23514"
    assert store.ping() is True


# Selection.

def test_open_store_selects_supabase_from_the_environment(
        standin: Standin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_KEY", raising=False)
    with pytest.raises(UnsupportedStore, match="SUPABASE_URL and SUPABASE_KEY"):
        open_store("supabase")
    monkeypatch.setenv("SUPABASE_URL", standin.url)
    monkeypatch.setenv("SUPABASE_KEY", SERVICE_KEY)
    for url in ("supabase", "supabase://"):
        store = open_store(url, related_logs=5)
        try:
            assert isinstance(store, SupabaseStore) and store.related_logs == 5
            assert store.summary() == {"backend": "supabase", "url": standin.url}
            assert store.ping() is True
            assert SERVICE_KEY not in str(store.summary())
        finally:
            store.close()


# The server, unchanged, on this backend.

def test_the_server_stores_sdk_envelopes_through_supabase(
        standin: Standin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", standin.url)
    monkeypatch.setenv("SUPABASE_KEY", SERVICE_KEY)
    settings = Settings.from_env({"SHIM_DATA_DIR": str(tmp_path), "SHIM_DATABASE_URL": "supabase"})
    key = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    auth = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}"}

    def envelope() -> tuple[bytes, str]:
        body = {"event_id": uuid.uuid4().hex, "level": "fatal", "message": "disk full",
                "platform": "python", "fingerprint": ["disk"]}
        item = Item(payload=PayloadRef(json=body), type="event")
        return Envelope(headers={"event_id": body["event_id"]}, items=[item]).serialize(), \
            body["event_id"]

    sent = [envelope(), envelope()]
    with TestClient(create_app(settings, Keys(((key, None),)))) as client:
        for body, event_id in [*sent, sent[0]]:  # the first one twice: a retried send
            response = client.post("/api/1/envelope/", content=body, headers=auth)
            assert (response.status_code, response.json()) == (200, {"id": event_id})
        assert client.get("/healthz").status_code == 200
    assert any(r.path == "/rest/v1/rpc/shim_ingest" and r.body["batch"]["batches"]
               for r in standin.requests)
    store = SupabaseStore(standin.url, SERVICE_KEY)
    try:
        (bug,) = list(iter_bugs(store))
        assert (bug["bug_number"], bug["occurrence_count"]) == ("BUG-00001", 2)
        assert sorted(r["event_id"] for r in store.list_logs()) == sorted(e for _, e in sent)
    finally:
        store.close()
