"""The web page's reads (``shim.store.browse``), the same tests against every backend: SQLite,
Postgres and Supabase (through the PostgREST stand-in on the real Postgres).

Without Postgres the Postgres and Supabase cases are skipped, except under ``CI``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from pg import new_database
from postgrest_standin import Standin
from test_store_contract import T0, at, batch, event, status
from test_supabase import SERVICE_KEY

from shim.core.records import CheckIn
from shim.store import Store, migrate, open_store
from shim.store.browse import UNRESOLVED, BugQuery
from shim.store.supabase import SupabaseStore


@pytest.fixture(params=["sqlite", "postgres", "supabase"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'shim.db'}")
        yield opened
        opened.close()
        return
    with new_database() as url:
        if request.param == "postgres":
            opened = open_store(url)
            yield opened
            opened.close()
            return
        with psycopg.connect(url, autocommit=True) as conn:
            migrate.migrate(conn)
        standin = Standin(url, SERVICE_KEY, timezone="America/Sao_Paulo")
        standin.serve()
        supabase = SupabaseStore(standin.url, SERVICE_KEY)
        yield supabase
        supabase.close()
        standin.stop()


def numbers(bugs: list[dict[str, object]]) -> list[object]:
    return [b["bug_number"] for b in bugs]


def fill(store: Store) -> None:
    """Four bugs: 1 (ocr, prod, 3 events), 2 (bot, staging, 100%_done), 3 (ocr, closed), 4 (a
    regression, seen last)."""
    store.write([
        batch(*(event("disk full", when=T0 + timedelta(minutes=m), fingerprint="a",
                      environment="prod", release="1.0",
                      tags={"component": "ocr", "workspace_id": "w1"}) for m in (0, 1, 2))),
        batch(event("100%_done", level="error", when=T0 + timedelta(hours=1), fingerprint="b",
                    environment="staging", release="2.0", tags={"component": "bot"}),
              received=T0 + timedelta(hours=1)),
        batch(event("gone", when=T0 + timedelta(hours=2), fingerprint="c",
                    tags={"component": "ocr"}), received=T0 + timedelta(hours=2)),
        status("BUG-00003", "closed", T0 + timedelta(hours=2)),
        batch(event("again", when=T0 + timedelta(hours=3), fingerprint="d"),
              received=T0 + timedelta(hours=3)),
        status("BUG-00004", "resolved", T0 + timedelta(hours=3)),
        batch(event("again", when=T0 + timedelta(hours=4), fingerprint="d"),
              received=T0 + timedelta(hours=4)),
    ])


def test_search_bugs_filters(store: Store) -> None:
    fill(store)
    assert numbers(store.search_bugs(BugQuery())) == ["BUG-00004", "BUG-00003", "BUG-00002",
                                                     "BUG-00001"]
    assert numbers(store.search_bugs(BugQuery(statuses=UNRESOLVED))) == [
        "BUG-00004", "BUG-00002", "BUG-00001"]
    assert numbers(store.search_bugs(BugQuery(statuses=("closed",)))) == ["BUG-00003"]
    assert numbers(store.search_bugs(BugQuery(severity="high"))) == ["BUG-00002"]
    assert numbers(store.search_bugs(BugQuery(component="ocr"))) == ["BUG-00003", "BUG-00001"]
    assert numbers(store.search_bugs(BugQuery(workspace="w1"))) == ["BUG-00001"]
    assert numbers(store.search_bugs(BugQuery(environment="prod"))) == ["BUG-00001"]
    assert numbers(store.search_bugs(BugQuery(release="2.0"))) == ["BUG-00002"]
    assert store.search_bugs(BugQuery(environment="nowhere")) == []
    assert numbers(store.search_bugs(BugQuery(regressions=True))) == ["BUG-00004"]
    new = at(T0 + timedelta(minutes=30))
    assert numbers(store.search_bugs(BugQuery(new_since=new, statuses=UNRESOLVED))) == [
        "BUG-00004", "BUG-00002"]


def test_search_bugs_matches_text_literally_and_case_blind(store: Store) -> None:
    fill(store)
    assert numbers(store.search_bugs(BugQuery(text="DISK"))) == ["BUG-00001"]
    assert numbers(store.search_bugs(BugQuery(text="0%_d"))) == ["BUG-00002"]
    assert store.search_bugs(BugQuery(text="0%_x")) == []
    assert store.search_bugs(BugQuery(text="1_0")) == []  # "_" is no wildcard
    assert numbers(store.search_bugs(BugQuery(text='a"b,c)'))) == []


@pytest.mark.parametrize("sort", ["last", "first", "count"])
def test_keyset_pages_cover_the_order_once(store: Store, sort: str) -> None:
    fill(store)
    store.write([batch(*(event(f"tie {i}", fingerprint=f"t{i}") for i in range(5)))])
    whole = store.search_bugs(BugQuery(sort=sort, limit=100))
    assert len(whole) == 9
    paged: list[dict[str, object]] = []
    query = BugQuery(sort=sort, limit=2)
    while True:
        page = store.search_bugs(query)
        paged.extend(page)
        if len(page) < 2:
            break
        query = BugQuery(sort=sort, limit=2, after=query.cursor_of(page[-1]))
    assert numbers(paged) == numbers(whole)
    if sort == "count":
        assert whole[0]["bug_number"] == "BUG-00001"


def test_bug_events_navigate_in_time_order(store: Store) -> None:
    fill(store)
    bug = store.get_bug("BUG-00001")
    assert bug is not None
    latest = store.bug_event(bug["id"])
    assert latest is not None and latest["is_latest"] and not latest["is_first"]
    assert latest["created_at"] == at(T0 + timedelta(minutes=2))
    assert latest["context"]["environment"] == "prod"
    middle = store.bug_event(bug["id"], "prev", latest["event_id"])
    assert middle is not None and not middle["is_first"] and not middle["is_latest"]
    first = store.bug_event(bug["id"], "prev", middle["event_id"])
    assert first is not None and first["is_first"]
    assert first == store.bug_event(bug["id"], "first")
    assert store.bug_event(bug["id"], "prev", first["event_id"]) is None
    again = store.bug_event(bug["id"], "next", first["event_id"])
    assert again is not None and again["event_id"] == middle["event_id"]
    other = store.get_bug("BUG-00002")
    assert other is not None
    assert store.bug_event(other["id"], "next", first["event_id"]) is None  # not its event
    assert store.bug_event(bug["id"], "this", middle["event_id"]) == middle
    assert store.bug_event(other["id"], "this", middle["event_id"]) is None
    assert store.bug_event("not-a-bug") is None


def test_counts_per_hour_day_and_component(store: Store) -> None:
    fill(store)
    store.write([batch(event("fyi", level="info", when=T0 + timedelta(minutes=5),
                             tags={"component": "ocr"}))])
    one, two = store.get_bug("BUG-00001"), store.get_bug("BUG-00002")
    assert one is not None and two is not None
    since = at(T0 - timedelta(hours=1))
    assert store.bug_hours([one["id"], two["id"], "x"], since) == {
        one["id"]: {"2026-11-28T12": 3}, two["id"]: {"2026-11-28T13": 1}}
    assert store.bug_hours([one["id"]], at(T0 + timedelta(minutes=1))) == {
        one["id"]: {"2026-11-28T12": 2}}
    levels = store.level_hours(since)
    assert levels["info"] == {"2026-11-28T12": 1}
    assert levels["error"] == {"2026-11-28T13": 1}
    assert sum(levels["critical"].values()) == 6
    assert store.new_bugs_per_day(at(T0 - timedelta(days=1))) == {"2026-11-28": 4}
    assert store.new_bugs_per_day(at(T0 + timedelta(days=1))) == {}
    top = store.top_components(since, limit=2)
    assert top[0] == {"component": "ocr", "count": 5}
    assert len(top) == 2


def test_filter_values_and_check_ins(store: Store) -> None:
    fill(store)
    check_ins = [CheckIn(check_in_id=f"ci-{i}", project_id="1", monitor_slug=slug,
                         status=state, duration=1.5, environment="prod", release=None,
                         monitor_config=None, created_at=at(T0 + timedelta(minutes=i)))
                 for i, (slug, state) in enumerate([("nightly", "ok"), ("hourly", "error"),
                                                    ("nightly", "error")])]
    store.write([batch(check_ins=check_ins)])
    values = store.filter_values()
    assert values["components"] == ["bot", "ocr", "unknown"]
    assert values["workspaces"] == ["w1"]
    assert values["environments"] == ["prod", "staging"]
    assert values["releases"] == ["1.0", "2.0"]
    recent = store.recent_check_ins(limit=2)
    assert [(c["check_in_id"], c["monitor_slug"], c["status"]) for c in recent] == [
        ("ci-2", "nightly", "error"), ("ci-1", "hourly", "error")]


def test_recent_logs_are_the_latest_by_event_time(store: Store) -> None:
    fill(store)
    late_arrival = event("late", level="warning", when=T0 - timedelta(days=1),
                         tags={"component": "ocr"})
    store.write([batch(late_arrival, received=T0 + timedelta(hours=5))])
    latest = store.recent_logs(limit=3)
    assert [r["created_at"] for r in latest] == [at(T0 + timedelta(hours=h)) for h in (4, 3, 2)]
    assert [r["bug_number"] for r in latest] == ["BUG-00004", "BUG-00004", "BUG-00003"]
    assert [r["message"] for r in store.recent_logs(component="ocr", limit=100)][-1] == "late"
    assert {r["log_level"] for r in store.recent_logs(level="error")} == {"error", "critical"}
    one = store.get_bug("BUG-00001")
    assert one is not None
    assert [r["created_at"] for r in store.recent_logs(bug_id=one["id"])] == [
        at(T0 + timedelta(minutes=m)) for m in (2, 1, 0)]
    assert store.recent_logs(bug_id="not-a-bug") == []
    assert set(latest[0]) >= {"cursor", "event_id", "context", "bug_number"}


def test_a_merged_bug_leaves_the_list_for_the_one_it_joined(store: Store) -> None:
    from test_bug_hashes import merge

    fill(store)
    store.write([merge("BUG-00001", "BUG-00002")])
    assert numbers(store.search_bugs(BugQuery())) == ["BUG-00004", "BUG-00003", "BUG-00001"]
    assert numbers(store.search_bugs(BugQuery(component="bot"))) == []
    joined = store.get_bug("BUG-00001")
    assert joined is not None and joined["occurrence_count"] == 4
