"""``shim serve --workers N``: several server processes on one port, one SQLite database and one
backup log, with dedup still exact. The processes order their writes through the backup log's lock,
so the store sees one sequence of transactions whichever process took the request.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from conftest import LiveServer, run_scripts
from test_postgres_e2e import HAMMER, NO_RATE_LIMIT, PER_ROUND, ROUNDS, acknowledged, healthz

from shim.assembly import share as _share


def worker_pids(server: LiveServer, want: int, tries: int = 400) -> set[int]:
    """The pids /healthz reports, each asked on a new connection, until ``want`` were seen."""
    pids: set[int] = set()
    for _ in range(tries):
        health = healthz(server)
        assert health["worker"]["of"] == want
        pids.add(health["worker"]["pid"])
        if len(pids) == want:
            break
        time.sleep(0.005)
    return pids


@pytest.mark.parametrize("live_server", [{"SHIM_WORKERS": "2", **NO_RATE_LIMIT}], indirect=True)
def test_two_workers_share_one_sqlite_with_exact_dedup(live_server: LiveServer) -> None:
    assert len(worker_pids(live_server, 2)) == 2  # two processes answer on the one port
    results = run_scripts([HAMMER] * 6, live_server.dsn, {"ROUNDS": str(ROUNDS)})

    children = len(results)
    ids = acknowledged(results)
    assert len(ids) == len(set(ids)) == children * ROUNDS * PER_ROUND
    stored = Counter(row["event_id"] for row in live_server.error_logs())
    assert stored == Counter(ids)  # every acknowledged event exactly once, nothing else

    bugs = live_server.bugs()
    assert [b["bug_number"] for b in bugs] == [f"BUG-{n:05d}" for n in range(1, 5)]
    assert len({b["fingerprint"] for b in bugs}) == 4
    for bug in bugs:
        assert bug["occurrence_count"] == children * ROUNDS, bug["title"]
        linked = live_server.error_logs("related_bug_id = ?", (bug["id"],))
        assert len(linked) == bug["occurrence_count"]
        assert {row["fingerprint"] for row in linked} == {bug["fingerprint"]}

    # One backup log for both processes, each event in it once.
    logged = [json.loads(line)["row"]["event_id"]
              for day in sorted((live_server.data_dir / "bugs" / "logs").glob("*.jsonl"))
              for line in day.read_text().splitlines()
              if json.loads(line)["kind"] == "error_log"]
    assert Counter(logged) == Counter(ids)


@pytest.mark.parametrize(("limit", "workers", "share"), [
    (6000, 1, 6000), (6000, 2, 3000), (1000, 3, 334), (1, 2, 1), (0, 4, 0),
])
def test_each_worker_takes_its_share_of_a_limit(limit: int, workers: int, share: int) -> None:
    assert _share(limit, workers) == share
