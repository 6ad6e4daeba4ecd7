"""How long the web page takes on a large store: the bug list, a bug page, the dashboard and the
logs, with N bugs and M error_logs rows in SQLite (the issue's target: 100,000 bugs and 10 million
rows, each page within 200 ms).

The data dir is built as ``bench.bug_scaling`` builds it: the bugs through the journal, like the
server, then the rows in SQL, spread over 30 days (one in three belongs to a bug), then each bug's
count and first and last times brought in line with its rows. Each page is then
fetched through the real app (Starlette's TestClient, the Bearer token) with the page's clock set
to the data's time, so "the last 24 hours" holds a thirtieth of the rows; the table shows the
median and slowest of ``--repeat`` fetches after one warm-up, and whether the median is within the
budget.

    python -m bench.web_pages                                  # 100,000 bugs, 1 million rows
    python -m bench.web_pages --bugs 100000 --rows 10000000    # the issue's size (~4 GB, ~10 min)
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

import shim.web.site
from bench.bug_scaling import RECEIVED, build_bugs, fill_rows
from shim.app import create_app
from shim.core.auth import Keys
from shim.settings import Settings

TOKEN = "bench-web-pages-admin-token-0123"
BUDGET_MS = 200.0


def settle_bugs(path: Path) -> None:
    """Give each bug the count and first and last times of the rows ``fill_rows`` added to it
    (the fill writes rows only, and ``build_bugs`` opens every bug at one instant), so the bugs
    differ in time and count as a server's would."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute(
            "UPDATE bugs SET occurrence_count = occurrence_count + s.n,"
            " first_occurred_at = s.first, last_occurred_at = s.last"
            " FROM (SELECT related_bug_id AS id, count(*) AS n, min(created_at) AS first,"
            " max(created_at) AS last FROM error_logs WHERE related_bug_id IS NOT NULL"
            " AND created_at < ? GROUP BY related_bug_id) AS s WHERE bugs.id = s.id",
            (RECEIVED.isoformat(timespec="microseconds"),))
        db.execute("COMMIT")
    finally:
        db.close()


def pages(client: TestClient) -> list[tuple[str, str]]:
    """(name, path) of each page timed; the bug page is the busiest bug's."""
    answer = client.get("/?sort=count&limit=1&status=all")
    busiest = answer.text.split('href="/bugs/', 1)[1].split('"', 1)[0]
    return [
        ("bug list", "/"),
        ("bug list by count", "/?sort=count"),
        ("bug list, text search", "/?q=record+42&status=all"),
        ("bug list, 14-day sparklines", "/?spark=14d"),
        ("bug list, page 2", _next_page(client)),
        (f"bug page ({busiest})", f"/bugs/{busiest}"),
        ("dashboard", "/dashboard"),
        ("logs", "/logs"),
        ("logs, one component", "/logs?component=scanner-3&level=error"),
    ]


def _next_page(client: TestClient) -> str:
    text = client.get("/").text
    link = text.split('rel="next"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    return "/" + link.replace("&amp;", "&")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bugs", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="keep (or reuse) the data dir here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shim-web-bench-") as scratch:
        root = args.dir or Path(scratch) / "data"
        if not (root / "shim.db").exists():
            began = time.perf_counter()
            build_bugs(root, args.bugs)
            fill_rows(root / "shim.db", args.rows)
            settle_bugs(root / "shim.db")
            print(f"built {args.bugs:,} bugs and {args.rows:,} rows in"
                  f" {time.perf_counter() - began:.0f} s", flush=True)
        settings = Settings.from_env({"SHIM_DATA_DIR": str(root), "SHIM_ADMIN_TOKEN": TOKEN,
                                      "SHIM_PUBLIC_KEYS": "0" * 32, "SHIM_JOURNAL_PROCESS": "0",
                                      "SHIM_LOG_LEVEL": "warning"})
        shim.web.site.utc_now = lambda: RECEIVED  # "now" is the data's time
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with TestClient(create_app(settings, Keys(settings.public_keys or ())),
                        headers=headers) as client:
            print(f"{'page':<34} {'median ms':>10} {'max ms':>8}  within {BUDGET_MS:.0f} ms")
            for name, path in pages(client):
                assert client.get(path).status_code == 200, path  # warm-up
                times = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (path, answer.text[:300])
                median = statistics.median(times)
                verdict = "yes" if median <= BUDGET_MS else "NO"
                print(f"{name:<34} {median:>10.1f} {max(times):>8.1f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
