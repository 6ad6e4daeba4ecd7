"""Retention (``SHIM_RETENTION_DAYS``, ``SHIM_BACKUP_RETENTION_DAYS``, ``shim prune``): rows older
than the window go in small batches while each bug keeps its first, latest and reopening events
and its exact counts (SQLite and Postgres); the SQLite file shrinks; a prune under load loses and
blocks nothing; the server prunes by itself, once across its workers; backup day files go only
once applied, and a restore then rebuilds what the kept days hold.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PUBLIC_KEY,
    LiveServer,
    _clean_env,
    answers_of,
    expect_ok,
    run_scripts,
    script,
    start_server,
)
from test_metrics import scrape
from test_store_contract import at, batch, event, make_store, postgres_url, status, store_url  # noqa: F401

from shim.core.records import Batch, CheckIn
from shim.store import Store, iter_bugs, open_store
from shim.writer.log import BackupLog
from shim.writer.retention import prune

NOW = datetime.now(UTC).replace(microsecond=0)
METRICS_TOKEN = "metrics-token-0123456789abcdef"


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def check_in(slug: str, when: datetime) -> CheckIn:
    return CheckIn(check_in_id=uuid.uuid4().hex, project_id="1", monitor_slug=slug, status="ok",
                   duration=1.0, environment=None, release=None, monitor_config=None,
                   created_at=at(when))


def ids(store: Store) -> set[str]:
    return {r["message"] for r in store.list_logs(limit=1000)}


@pytest.fixture
def history(make_store: Any) -> Store:  # noqa: F811
    """A bug with events 100 to 96 days ago, resolved 97.5 days ago (so the event at 97 days
    reopened it) and seen again yesterday; logs without a bug; two monitors' check-ins."""
    store: Store = make_store(related_logs=50)
    rows = [event(f"bug {n}", when=ago(d), fingerprint="disk")
            for n, d in ((1, 100), (2, 99), (3, 98))]
    store.write([batch(*rows, received=ago(98))])
    store.write([status("BUG-00001", "resolved", ago(97.5))])
    store.write([batch(event("bug 4", when=ago(97), fingerprint="disk"), received=ago(97))])
    store.write([batch(event("bug 5", when=ago(96), fingerprint="disk"), received=ago(96))])
    store.write([batch(event("bug 6", when=ago(1), fingerprint="disk"), received=ago(1))])
    store.write([batch(*(event(f"info {n}", when=ago(100), level="info") for n in range(3)),
                       event("info recent", when=ago(1), level="info"), received=ago(1))])
    store.write([Batch(check_ins=[check_in("nightly", ago(100)), check_in("nightly", ago(99)),
                                  check_in("weekly", ago(100))], received_at=at(ago(99)))])
    return store


def test_old_rows_go_in_small_batches_and_a_bug_keeps_what_it_needs(history: Store) -> None:
    bug_before = next(iter_bugs(history))
    cutoff = at(ago(90))
    assert history.prune(cutoff, 2, dry_run=True) == (6, 1)  # counted, nothing deleted
    assert len(ids(history)) == 10
    calls = []
    while True:
        calls.append(history.prune(cutoff, 2))
        assert calls[-1][0] <= 2 and calls[-1][1] <= 2
        if calls[-1][0] < 2 and calls[-1][1] < 2:
            break
    assert sum(c[0] for c in calls) == 6 and sum(c[1] for c in calls) == 1
    assert len(calls) == 4  # 6 rows, 2 at a time, then the call that finds none left
    # The first event, the one that reopened the bug, the latest; the recent info row.
    assert ids(history) == {"bug 1", "bug 4", "bug 6", "info recent"}
    bug_after = next(iter_bugs(history))
    assert {k: bug_after[k] for k in ("occurrence_count", "first_occurred_at",
                                       "last_occurred_at", "status")} == {
        k: bug_before[k] for k in ("occurrence_count", "first_occurred_at", "last_occurred_at",
                                   "status")}
    assert bug_after["occurrence_count"] == 6
    assert history.prune(cutoff, 2) == (0, 0)  # again: nothing


def test_a_monitor_keeps_its_latest_check_in(history: Store, store_url: str) -> None:  # noqa: F811
    prune(history, NOW, 90, batch=2, pause=0)
    from test_store_contract import check_ins

    kept = sorted((r["monitor_slug"], str(r["created_at"])[:10]) for r in check_ins(store_url))
    assert kept == [("nightly", str(ago(99).date())), ("weekly", str(ago(100).date()))]


def test_the_lease_lets_one_holder_at_a_time(make_store: Any) -> None:  # noqa: F811
    store: Store = make_store()
    assert store.take_lease("retention", "a", 60) is True
    assert store.take_lease("retention", "b", 60) is False
    assert store.take_lease("retention", "a", 0.5) is True  # its own: renewed (shorter)
    time.sleep(1.0)
    assert store.take_lease("retention", "b", 60) is True  # expired: taken over
    assert store.take_lease("other", "a", 60) is True  # leases are by name


def test_the_sqlite_file_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "shim.db"
    store = open_store(f"sqlite:///{path}")
    try:
        blob = "x" * 4000
        for n in range(20):
            store.write([batch(*(event(f"old {n}-{m}", when=ago(200), level="info",
                                       extra={"blob": blob}) for m in range(100)),
                               received=ago(200))])
        store.write([batch(event("new", when=ago(1), level="info"), received=ago(1))])
        before = path.stat().st_size + Path(f"{path}-wal").stat().st_size
        assert before > 8_000_000
        done = prune(store, NOW, 90, pause=0)
        assert done.error_logs == 2000 and done.pages_reclaimed > 1000
        after = path.stat().st_size + Path(f"{path}-wal").stat().st_size
        assert after < before / 4, (before, after)
        assert [r["message"] for r in store.list_logs()] == ["new"]
    finally:
        store.close()


def _old_database(path: Path) -> None:
    """A database as the shim made them before incremental auto-vacuum."""
    from shim.store.sqlite import MIGRATIONS, SCHEMA_VERSION

    db = sqlite3.connect(path)
    for step in MIGRATIONS:
        db.executescript(step)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    db.commit()
    db.close()


def shim(data_dir: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shim", *args],
                          env={**_clean_env(), "SHIM_DATA_DIR": str(data_dir),
                               "SHIM_PUBLIC_KEYS": PUBLIC_KEY, **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)


def test_an_older_database_is_told_how_to_shrink_and_migrate_converts_it(tmp_path: Path) -> None:
    _old_database(tmp_path / "shim.db")
    store = open_store(f"sqlite:///{tmp_path / 'shim.db'}")
    store.write([batch(event("old", when=ago(200), level="info"), received=ago(200))])
    store.close()
    pruned = shim(tmp_path, "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "deleted 1 error_logs rows" in pruned.stdout
    assert "`shim migrate` converts it" in pruned.stderr
    migrated = shim(tmp_path, "migrate")
    assert "applied incremental auto-vacuum" in migrated.stdout
    db = sqlite3.connect(tmp_path / "shim.db")
    assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    db.close()
    again = shim(tmp_path, "prune", "--json")
    assert json.loads(again.stdout)["file_shrinks"] is True
    assert "converts it" not in again.stderr


def test_prune_cli_dry_run_and_older_than(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'shim.db'}")
    store.write([batch(event("a", when=ago(40), level="info"),
                       event("b", when=ago(10), level="info"), received=ago(10))])
    store.close()
    dry = shim(tmp_path, "prune", "--older-than", "30d", "--dry-run", "--json")
    assert (json.loads(dry.stdout)["error_logs"], json.loads(dry.stdout)["dry_run"]) == (1, True)
    off = shim(tmp_path, "prune", env={"SHIM_RETENTION_DAYS": "0"})
    assert off.returncode != 0 and "retention is off" in off.stderr
    done = shim(tmp_path, "prune", "--older-than", "30d")
    assert "deleted 1 error_logs rows" in done.stdout
    assert shim(tmp_path, "prune", "--older-than", "5d", "--dry-run").stdout.startswith(
        "shim: would delete 1 error_logs rows")


# --- the server --------------------------------------------------------------------------


def _fill_old(data_dir: Path, count: int) -> None:
    store = open_store(f"sqlite:///{data_dir / 'shim.db'}")
    try:
        for start in range(0, count, 500):
            store.write([batch(*(event(f"old {n}", when=ago(200), level="info")
                                 for n in range(start, min(count, start + 500))),
                               received=ago(200))])
    finally:
        store.close()


LOAD = script("""
    import os
    import probe
    import sentry_sdk
    sentry_sdk.init(dsn=os.environ["SENTRY_DSN"])
    probe.record_answers()
    for n in range(60):
        sentry_sdk.capture_message(f"fresh {os.getpid()} {n}", level="error")
    probe.print_answers()
""")


def test_a_prune_under_load_loses_and_blocks_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _fill_old(data, 6000)
    with start_server(data, tmp_path / "server.log", {"SHIM_RETENTION_DAYS": "0",
                                                       "SHIM_BUG_LEVEL": "error"}) as server:
        pruner = subprocess.Popen(
            [sys.executable, "-m", "shim", "prune", "--older-than", "90d", "--json"],
            env={**_clean_env(), "SHIM_DATA_DIR": str(data), "SHIM_PUBLIC_KEYS": PUBLIC_KEY},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results = run_scripts([LOAD] * 4, server.dsn)
        out, err = pruner.communicate(timeout=120)
        assert pruner.returncode == 0, err
        assert json.loads(out)["error_logs"] == 6000
        for result in results:
            expect_ok(result)
            assert {a["status"] for a in answers_of(result)} == {200}
        fresh = server.query("SELECT count(*) AS n FROM error_logs WHERE message LIKE 'fresh %'")
        assert fresh == [{"n": 240}]
        assert server.query("SELECT count(*) AS n FROM error_logs WHERE message LIKE 'old %'") == [
            {"n": 0}]
        assert server.bugs()[0]["occurrence_count"] == 240


def test_the_server_prunes_by_itself_once_across_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _fill_old(data, 1200)
    with start_server(data, tmp_path / "server.log", {"SHIM_RETENTION_DAYS": "90",
                                                       "SHIM_METRICS_TOKEN": METRICS_TOKEN},
                      args=["--workers", "2"]) as server:
        deadline = time.monotonic() + 30
        while server.query("SELECT count(*) AS n FROM error_logs")[0]["n"]:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        time.sleep(6)  # the other worker's first run has come and gone by now
        runs = [line for line in server.log().splitlines() if "retention: deleted" in line]
        assert len(runs) == 1, server.log()
        assert "deleted 1200 error_logs rows" in runs[0]
        samples = scrape(server, METRICS_TOKEN)
        assert samples[("shim_retention_deleted_total", (("table", "error_logs"),))] == 1200
    leases = json.loads((data / "shim.db.leases").read_text())
    assert list(leases) == ["retention"] and leases["retention"][1] > time.time() + 3000


def test_backup_day_files_go_once_applied_and_restore_rebuilds_the_rest(tmp_path: Path,
                                                                          live_server: LiveServer
                                                                          ) -> None:
    logs = BackupLog(live_server.data_dir / "bugs" / "logs")
    for days in (40, 20):
        day_path = logs.path(f"{ago(days).date()}.jsonl")
        line = json.dumps({"v": 1, "kind": "item_counts", "received_at": at(ago(days)),
                           "counts": {"event": 1}})
        day_path.write_text(line + "\n")
    expect_ok(run_scripts([LOAD], live_server.dsn)[0])
    deadline = time.monotonic() + 20  # the store applies the older files too (a catch-up)
    while logs.applied() != logs.end():
        assert time.monotonic() < deadline, (logs.applied(), logs.end())
        time.sleep(0.1)
    names = logs.files()
    assert len(names) == 3
    # Only files the store has applied go: the marker is in today's file, past both old ones.
    store = open_store(f"sqlite:///{live_server.db_path}")
    try:
        dry = prune(store, NOW, None, logs, backup_days=30, dry_run=True)
        assert dry.backup_files == [names[0]] and logs.files() == names
        done = prune(store, NOW, None, logs, backup_days=30)
        assert done.backup_files == [names[0]] and logs.files() == names[1:]
    finally:
        store.close()
    fresh = tmp_path / "restored.db"
    restored = subprocess.run(
        [sys.executable, "-m", "shim", "restore", "--database", f"sqlite:///{fresh}", "--json"],
        env={**_clean_env(), "SHIM_DATA_DIR": str(live_server.data_dir),
             "SHIM_PUBLIC_KEYS": PUBLIC_KEY}, capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr
    db = sqlite3.connect(fresh)
    assert db.execute("SELECT count(*) FROM error_logs").fetchone() == (60,)
    db.close()


def test_unapplied_day_files_are_never_removed(tmp_path: Path) -> None:
    logs = BackupLog(tmp_path / "logs")
    for days in (40, 35):
        logs.path(f"{ago(days).date()}.jsonl").write_text("{}\n")
    logs.mark_applied(type(logs.applied())(f"{ago(40).date()}.jsonl", 1))  # halfway: none whole
    assert logs.applied_files_before(str(NOW.date())) == []
    logs.mark_applied(type(logs.applied())(f"{ago(40).date()}.jsonl", 3))
    assert logs.applied_files_before(str(NOW.date())) == [f"{ago(40).date()}.jsonl"]
    assert os.path.exists(logs.path(f"{ago(35).date()}.jsonl"))
