"""Ingestion throughput: shim against a bare Starlette ceiling, back to back, in the same run.

Each round starts, on free 127.0.0.1 ports and one after the other: the ceiling without decoding
(sent the uncompressed corpus), the ceiling decoding each encoding, and ``python -m shim serve``
(a fresh data dir, rate limits off) for each encoding, with SQLite and, given
``--database-url postgresql://...``, with Postgres. Each gets the same load (``bench.load``: 32
keep-alive connections, ``--seconds`` at most, each corpus envelope sent once to shim). After a shim
run the rows in ``error_logs`` are counted. The table shows medians over ``--rounds`` rounds, and
every rate as a share of the decoding ceiling of the same encoding: ratios, not absolute numbers,
are what carries over from this noisy machine to another.

    python -m bench                    # 3 rounds of 10 s, gzip and br, SQLite
    python -m bench --quick            # 3 rounds of 3 s, gzip only, a small corpus
    python -m bench --database-url postgresql://user:pw@127.0.0.1/shim_bench
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus import Body, read_corpus
from bench.load import LOOPBACK, Result, request_head, run_load


@dataclass(frozen=True)
class Target:
    name: str  # ceiling-identity, ceiling, floor-sqlite(-split), floor-postgres, shim-sqlite, ...
    encoding: str
    workers: int = 1  # shim serve --workers

    @property
    def label(self) -> str:
        workers = f" x{self.workers}" if self.workers > 1 else ""
        return f"{self.name}{workers} ({self.encoding})"


@dataclass
class Run:
    result: Result
    stored: int | None = None  # error_logs rows added (shim only)
    stored_seconds: float | None = None  # from the first request until the last row was visible
    rss_peak_mb: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the server's processes during the load
    exhausted: bool = False  # the corpus ran out before the time was up
    problems: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {LOOPBACK}:{port} after {timeout} s")


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory line of a running process's /proc status (VmHWM: peak resident, VmRSS: now),
    in MiB; 0 once the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child_pids(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def journal_pid(server_pid: int) -> int | None:
    """The journal process (``shim.writer.process``) of the server ``server_pid``, if it has one:
    the child whose command line names that module."""
    for child in child_pids(server_pid):
        with contextlib.suppress(OSError):
            if b"shim.writer.process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
    return None


def cpu_seconds(pid: int, children: bool = True) -> float:
    """CPU time (user and system) of a process, of its children that have ended and been
    waited for, and of those still running (a server's workers, its journal process); with
    ``children=False``, of the process alone."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        # utime stime, then cutime cstime
        ticks = sum(int(fields[i]) for i in ((11, 12, 13, 14) if children else (11, 12)))
        seconds = ticks / os.sysconf("SC_CLK_TCK")
        return seconds + sum(cpu_seconds(c) for c in child_pids(pid)) if children else seconds
    return 0.0


def rss_peak_mb(pid: int) -> float:
    """Peak resident memory of a process plus that of its children (the workers of a server)."""
    return memory_mb(pid) + sum(rss_peak_mb(child) for child in child_pids(pid))


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str], log: Path,
           cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server subprocess, stopped with SIGTERM (then SIGKILL) however the block ends."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def count_rows(database_url: str) -> int:
    if database_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(database_url[len("sqlite:///"):], timeout=10)) as db:
            row = db.execute("SELECT count(*) FROM error_logs").fetchone()
            return int(row[0])
    import psycopg

    with psycopg.connect(database_url, prepare_threshold=None) as conn:
        cursor = conn.execute("SELECT count(*) FROM error_logs")
        found = cursor.fetchone()
        return int(found[0]) if found else 0


def wait_rows(database_url: str, before: int, expected: int, started: float,
              timeout: float = 30.0) -> tuple[int, float]:
    """Rows added since ``before``, once ``expected`` are there (or none came for 2 s, or the
    timeout); and the seconds from ``started`` (time.time) until the last of them was seen."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    seen_at = time.time()
    while True:
        stored = count_rows(database_url) - before
        if stored != last:
            last, last_change, seen_at = stored, time.monotonic(), time.time()
        if stored >= expected or time.monotonic() - last_change > 2 or time.monotonic() > deadline:
            return stored, seen_at - started
        time.sleep(0.05)


def empty_postgres(database_url: str) -> None:
    """Delete every row shim wrote (the schema stays), and restart the bug numbers."""
    import psycopg

    with psycopg.connect(database_url, prepare_threshold=None, autocommit=True) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        if "error_logs" not in tables:
            return  # not migrated yet: shim serve creates the schema
        wanted = [t for t in ("error_logs", "bugs", "check_ins", "item_counts", "status_changes",
                              "bug_hashes", "bug_merges") if t in tables]
        conn.execute(f"TRUNCATE {', '.join(wanted)}")
        conn.execute("ALTER SEQUENCE bug_number_seq RESTART")


class Bench:
    def __init__(self, args: argparse.Namespace, corpus: Path, work: Path) -> None:
        self.args = args
        self.corpus = corpus
        self.work = work
        self.bodies: dict[str, list[Body]] = {}
        self.index: dict[str, Any] = {}
        self.runs = 0

    def load(self, encoding: str) -> list[Body]:
        if encoding not in self.bodies:
            self.index, self.bodies[encoding] = read_corpus(self.corpus, encoding)
        return self.bodies[encoding]

    def _drive(self, port: int, bodies: list[Body], encoding: str, wrap: bool) -> Result:
        head = request_head(port, f"/api/{self.index['project']}/envelope/",
                            self.index["headers"], encoding)
        return asyncio.run(run_load(port, bodies, head, seconds=self.args.seconds,
                                    concurrency=self.args.concurrency,
                                    max_requests=self.args.requests, wrap=wrap))

    def run(self, target: Target) -> Run:
        self.runs += 1
        port = free_port()
        bodies = self.load(target.encoding)
        log = self.work / f"{self.runs:03d}-{target.name}-{target.encoding}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if target.name.startswith("floor"):
            run = self._run_floor(target, port, bodies, env, log)
        elif target.name.startswith("ceiling"):
            argv = [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
            if target.name == "ceiling":
                argv.append("--decode")
            with server(argv, env, log) as process:
                wait_listening(port, process)
                cpu = cpu_seconds(process.pid)
                result = self._drive(port, bodies, target.encoding, wrap=True)
                run = Run(result, rss_peak_mb=rss_peak_mb(process.pid),
                          cpu_seconds=cpu_seconds(process.pid) - cpu)
        else:
            run = self._run_shim(target, port, bodies, env, log)
        output = log.read_text(errors="replace")
        if "Traceback" in output:
            run.problems.append(f"traceback in {log}")
        return run

    def _run_floor(self, target: Target, port: int, bodies: list[Body], env: dict[str, str],
                   log: Path) -> Run:
        data_dir = self.work / f"data-{self.runs:03d}"
        database_url = f"sqlite:///{data_dir / 'floor.db'}"
        argv = [sys.executable, "-m", "bench.floor", "--port", str(port), "--corpus",
                str(self.corpus), "--data", str(data_dir)]
        if target.name == "floor-sqlite-split":
            argv.append("--split")
        if target.name == "floor-sqlite-inline":
            argv.append("--inline")
        if target.name == "floor-postgres":
            database_url = self.args.database_url
            argv += ["--database-url", database_url]
        # It builds shim's rows for the whole corpus before it listens.
        return self._run_storing(target, argv, port, bodies, env, log, database_url,
                                 listen_timeout=300)

    def _run_shim(self, target: Target, port: int, bodies: list[Body], env: dict[str, str],
                  log: Path) -> Run:
        data_dir = self.work / f"data-{self.runs:03d}"
        database_url = (self.args.database_url if target.name == "shim-postgres"
                        else f"sqlite:///{data_dir / 'shim.db'}")
        if target.name == "shim-postgres":
            empty_postgres(database_url)  # every run starts empty, like SQLite's fresh directory
        env |= {"SHIM_DATA_DIR": str(data_dir), "SHIM_DATABASE_URL": database_url,
                "SHIM_PUBLIC_KEYS": f"{self.index['key']}:{self.index['project']}",
                "SHIM_RATE_LIMIT_PER_KEY": "0", "SHIM_RATE_LIMIT": "0",
                "SHIM_LOG_LEVEL": "warning"}
        argv = [sys.executable, "-m", "shim", "serve", "--port", str(port),
                "--workers", str(target.workers)]
        return self._run_storing(target, argv, port, bodies, env, log, database_url)

    def _run_storing(self, target: Target, argv: list[str], port: int, bodies: list[Body],
                     env: dict[str, str], log: Path, database_url: str,
                     listen_timeout: float = 20.0) -> Run:
        """A server that stores what it acknowledges (shim, the floor), driven once; its rows in
        ``database_url`` counted until every acknowledged one is visible."""
        with server(argv, env, log) as process:
            wait_listening(port, process, timeout=listen_timeout)
            before = count_rows(database_url)
            cpu = cpu_seconds(process.pid)
            result = self._drive(port, bodies, target.encoding, wrap=False)
            stored, seconds = wait_rows(database_url, before, result.events, result.started)
            run = Run(result, stored=stored, stored_seconds=seconds,
                      rss_peak_mb=rss_peak_mb(process.pid),
                      cpu_seconds=cpu_seconds(process.pid) - cpu,
                      exhausted=result.requests + sum(
                          n for s, n in result.statuses.items() if not s.isdigit()) >= len(bodies))
        if stored < result.events:
            run.problems.append(f"{target.label}: {result.events} rows acknowledged, "
                                f"{stored} stored")
        return run


def targets(args: argparse.Namespace) -> list[Target]:
    chosen = [Target("ceiling-identity", "identity")]
    chosen += [Target("ceiling", encoding) for encoding in args.encodings]
    if args.floor:
        floors = ["floor-sqlite", "floor-sqlite-split", "floor-sqlite-inline"]
        floors += ["floor-postgres"] if args.database_url else []
        chosen += [Target(name, encoding) for name in floors for encoding in args.encodings]
    stores = ["shim-sqlite", "shim-postgres"] if args.database_url else ["shim-sqlite"]
    for workers in sorted({1, *args.workers}):
        chosen += [Target(store, encoding, workers) for store in stores
                   for encoding in args.encodings]
    return chosen


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def table(results: dict[Target, list[Run]]) -> list[str]:
    ceilings = {t.encoding: median([r.result.requests_per_s for r in runs])
                for t, runs in results.items() if t.name == "ceiling"}
    costs = {t.encoding: median([_cpu_per_request(r) for r in runs])
             for t, runs in results.items() if t.name == "ceiling"}
    lines = [f"{'target':<26} {'req/s':>7} {'events/s':>9} {'stored/s':>9} {'ratio':>6} "
             f"{'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>7} {'CPU us/req':>10} {'CPU ratio':>9} "
             f"{'gen CPU':>8}  answers"]
    for target, runs in results.items():
        req = median([r.result.requests_per_s for r in runs])
        ceiling = ceilings.get(target.encoding)
        cost = median([_cpu_per_request(r) for r in runs])
        ceiling_cost = costs.get(target.encoding)
        stored = ([r.stored / r.stored_seconds for r in runs
                   if r.stored is not None and r.stored_seconds]
                  if not target.name.startswith("ceiling") else [])
        answers: dict[str, int] = {}
        for run in runs:
            for status, n in run.result.statuses.items():
                answers[status] = answers.get(status, 0) + n
        lines.append(
            f"{target.label:<26} {req:>7.0f} "
            f"{median([r.result.events_per_s for r in runs]):>9.0f} "
            f"{(f'{median(stored):.0f}' if stored else '-'):>9} "
            f"{(f'{req / ceiling:.3f}' if ceiling else '-'):>6} "
            f"{median([r.result.percentile(0.5) * 1000 for r in runs]):>7.1f} "
            f"{median([r.result.percentile(0.99) * 1000 for r in runs]):>7.1f} "
            f"{median([r.rss_peak_mb for r in runs]):>7.0f} "
            f"{cost:>10.0f} "
            f"{(f'{ceiling_cost / cost:.3f}' if ceiling_cost and cost else '-'):>9} "
            f"{median([r.result.cpu_share for r in runs]) * 100:>7.0f}%  "
            + " ".join(f"{s}:{n}" for s, n in sorted(answers.items()))
            + ("  (corpus ran out)" if any(r.exhausted for r in runs) else ""))
    return lines


def _cpu_per_request(run: Run) -> float:
    """Microseconds of the server's CPU time per answered request."""
    return run.cpu_seconds / run.result.requests * 1e6 if run.result.requests else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path,
                        help="corpus directory (default: one in the temp dir per size and seed, "
                        "generated when missing)")
    parser.add_argument("--envelopes", type=int, default=5000, help="corpus size when generated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each target (at least 3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="longest run")
    parser.add_argument("--requests", type=int, help="at most this many requests per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--encodings", nargs="+", default=["gzip", "br"],
                        choices=("identity", "gzip", "br"))
    parser.add_argument("--database-url", help="also run shim on this postgresql:// store "
                        "(rows are added to it; each run sends envelopes the earlier ones did not)")
    parser.add_argument("--workers", type=int, nargs="+", default=[],
                        help="also run shim with these numbers of worker processes (--workers 2)")
    parser.add_argument("--floor", action="store_true",
                        help="also run the floor (bench.floor): the least any server keeping "
                             "these rows durably must do, as a share of the ceiling")
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds of 3 s, gzip only, a corpus of 1000 envelopes")
    parser.add_argument("--json", action="store_true", help="also print every run as JSON")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.encodings = 3, 3.0, ["gzip"]
        args.envelopes = min(args.envelopes, 1000)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: the table shows medians")
    if args.database_url and not args.database_url.startswith(("postgresql://", "postgres://")):
        parser.error("--database-url must be a postgresql:// URL (SQLite is always measured)")

    corpus = args.corpus or Path(tempfile.gettempdir()) / (
        f"shim-bench-corpus-{args.envelopes}-{args.seed}")
    if not (corpus / "index.json").exists():
        print(f"generating {args.envelopes} envelopes in {corpus} ...", file=sys.stderr)
        # In a child process: the SDK stays out of this one (its hooks, threads and CPU).
        subprocess.run([sys.executable, "-m", "bench.corpus", "--out", str(corpus),
                        "--envelopes", str(args.envelopes), "--seed", str(args.seed)],
                       check=True, stdout=subprocess.DEVNULL)

    chosen = targets(args)
    results: dict[Target, list[Run]] = {t: [] for t in chosen}
    with tempfile.TemporaryDirectory(prefix="shim-bench-") as tmp:
        bench = Bench(args, corpus, Path(tmp))
        for round_number in range(args.rounds):
            for target in chosen:  # interleaved, so machine noise hits every target alike
                print(f"round {round_number + 1}/{args.rounds}: {target.label}", file=sys.stderr)
                results[target].append(bench.run(target))
    index = bench.index
    print(f"corpus: {index['envelopes']} envelopes, {index['rows']} rows ({index['sdk']}); "
          f"{args.rounds} rounds of at most {args.seconds:g} s, {args.concurrency} connections; "
          "medians; ratio = req/s over the decoding ceiling of the same encoding")
    for line in table(results):
        print(line)
    problems = [p for runs in results.values() for r in runs for p in r.problems]
    for problem in problems:
        print(f"problem: {problem}")
    if args.json:
        print(json.dumps({t.label: [{**r.result.summary(), "stored": r.stored,
                                     "stored_seconds": r.stored_seconds,
                                     "rss_peak_mb": round(r.rss_peak_mb, 1),
                                     "problems": r.problems} for r in runs]
                          for t, runs in results.items()}, indent=2))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
