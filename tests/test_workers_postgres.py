"""``shim serve --workers 2`` on one Postgres database: two server processes on one port, each with
its own writer and its own connection to Postgres, sharing one backup log. Real ``sentry_sdk``
clients of both majors send at once; dedup and grouping must stay exact, as with SQLite
(``test_workers.py``) and with two separate servers (``test_postgres_e2e.py``).

Skipped without Postgres, failed under ``CI`` (``tests/pg.py``).
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import SDK_MAJORS, run_scripts, sdk_python, start_server
from test_postgres_e2e import (
    HAMMER,
    NO_RATE_LIMIT,
    PER_ROUND,
    acknowledged,
    healthz,
    pg_url,
    rows,
)
from test_workers import worker_pids

__all__ = ["pg_url"]  # a fixture, used below

ROUNDS = 10
CHILDREN_PER_MAJOR = 3


def test_two_workers_share_one_postgres_with_exact_dedup(tmp_path: Path, pg_url: str) -> None:
    extra = {"SHIM_DATABASE_URL": pg_url, **NO_RATE_LIMIT}
    with start_server(tmp_path / "data", tmp_path / "server.log", extra,
                      args=("--workers", "2")) as server, ThreadPoolExecutor(2) as pool:
        assert len(worker_pids(server, 2)) == 2  # two processes answer on the one port
        groups = [pool.submit(run_scripts, [HAMMER] * CHILDREN_PER_MAJOR, server.dsn,
                              {"ROUNDS": str(ROUNDS)}, python=sdk_python(major))
                  for major in SDK_MAJORS]
        results = [result for group in groups for result in group.result()]
        health = healthz(server)
        assert health["status"] == "ok", health
        assert (health["store"]["backend"], health["store"]["state"]) == ("postgres", "ok")
        assert health["worker"]["of"] == 2

    children = len(results)
    ids = acknowledged(results)
    assert len(ids) == len(set(ids)) == children * ROUNDS * PER_ROUND
    stored = Counter(r["event_id"] for r in rows(pg_url, "SELECT event_id FROM error_logs"))
    assert stored == Counter(ids)  # every acknowledged event exactly once, nothing else

    bugs = rows(pg_url, "SELECT * FROM bugs ORDER BY bug_number")
    assert [b["bug_number"] for b in bugs] == [f"BUG-{n:05d}" for n in range(1, 5)]
    assert len({b["fingerprint"] for b in bugs}) == 4
    for bug in bugs:
        assert bug["occurrence_count"] == children * ROUNDS, bug["title"]
        [linked] = rows(pg_url, "SELECT count(*) AS n, count(DISTINCT fingerprint) AS fps"
                        " FROM error_logs WHERE related_bug_id = %s", (bug["id"],))
        assert linked == {"n": bug["occurrence_count"], "fps": 1}
    [unlinked] = rows(pg_url, "SELECT count(*) AS n FROM error_logs WHERE related_bug_id IS NULL")
    assert unlinked["n"] == children * ROUNDS  # the "error" level messages: logged, no bug

    # One backup log for both processes, each event in it once.
    logged = [json.loads(line)["row"]["event_id"]
              for day in sorted((tmp_path / "data" / "bugs" / "logs").glob("*.jsonl"))
              for line in day.read_text().splitlines()
              if json.loads(line)["kind"] == "error_log"]
    assert Counter(logged) == Counter(ids)
