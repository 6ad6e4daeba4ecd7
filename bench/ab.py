"""A/B: two (or more) source trees of shim, by the server's CPU time per request.

Rates swing by 15% from one run to the next on a shared machine; the CPU time the server's
processes spend per answered request swings far less, so it is what tells whether a change made
the server cheaper. Runs alternate between the trees (A B A B ...), each ``python -m shim serve``
started from its tree (``PYTHONPATH`` and working directory) with a fresh data directory, rate
limits off, and driven by the same load as ``python -m bench``.

    git worktree add /tmp/base HEAD~1
    python -m bench.ab --corpus /tmp/shim-bench-corpus-20000-1 /tmp/base .
    python -m bench.ab --corpus DIR --runs 6 --seconds 10 --database-url postgresql://... A B
    python -m bench.ab --corpus DIR . . --setting 2:SHIM_METRICS_TOKEN=0123456789abcdef01

``--setting N:NAME=VALUE`` gives the Nth tree named (from 1) a setting of its own, so one tree can
be compared with itself with a feature on (the same tree named twice).

For each tree: median req/s, median CPU us/req (all its processes), the server process's share and
the journal process's (children: the journal process, workers), and every run, so a reader can
see whether each pair points the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.__main__ import (
    child_pids,
    count_rows,
    cpu_seconds,
    empty_postgres,
    free_port,
    server,
    wait_listening,
    wait_rows,
)
from bench.corpus import Body, read_corpus
from bench.load import request_head, run_load


@dataclass
class Sample:
    requests_per_s: float
    cpu_us: float  # every process of the server, per answered request
    own_us: float  # the server process alone
    children_us: float  # its children (journal process, workers)
    stored_ok: bool


def run_once(tree: Path, args: argparse.Namespace, corpus: tuple[dict[str, Any], list[Body]],
             work: Path, number: int, settings: dict[str, str] | None = None) -> Sample:
    index, bodies = corpus
    data_dir = work / f"data-{number:03d}"
    database_url = args.database_url or f"sqlite:///{data_dir / 'shim.db'}"
    if args.database_url:
        empty_postgres(database_url)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(tree),
           "SHIM_DATA_DIR": str(data_dir), "SHIM_DATABASE_URL": database_url,
           "SHIM_PUBLIC_KEYS": f"{index['key']}:{index['project']}",
           "SHIM_RATE_LIMIT_PER_KEY": "0", "SHIM_RATE_LIMIT": "0", "SHIM_LOG_LEVEL": "warning",
           **(settings or {})}
    argv = [sys.executable, "-m", "shim", "serve", "--port", str(port)]
    log = work / f"{number:03d}.log"
    with server(argv, env, log, cwd=tree) as process:  # (it imports shim from the tree)
        wait_listening(port, process)
        before = count_rows(database_url)
        own, total = cpu_seconds(process.pid, children=False), cpu_seconds(process.pid)
        head = request_head(port, f"/api/{index['project']}/envelope/", index["headers"],
                            args.encoding)
        result = asyncio.run(run_load(port, bodies, head, seconds=args.seconds,
                                      concurrency=args.concurrency))
        own = cpu_seconds(process.pid, children=False) - own
        total = cpu_seconds(process.pid) - total
        stored, _ = wait_rows(database_url, before, result.events, result.started)
        if not child_pids(process.pid):
            print(f"note: {tree} ran without a child process", file=sys.stderr)
    per = 1e6 / max(result.requests, 1)
    return Sample(result.requests_per_s, total * per, own * per, (total - own) * per,
                  stored >= result.events)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", type=Path, help="source trees (checkouts) of shim")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=4, help="runs of each tree, alternating")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--encoding", default="gzip", choices=("identity", "gzip", "br"))
    parser.add_argument("--database-url", help="a postgresql:// store to use (emptied per run)")
    parser.add_argument("--setting", action="append", default=[], metavar="N:NAME=VALUE",
                        help="a SHIM_* setting for the Nth tree only (repeatable)")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    settings: list[dict[str, str]] = [{} for _ in trees]
    for given in args.setting:
        number, _, assignment = given.partition(":")
        name, _, value = assignment.partition("=")
        settings[int(number) - 1][name] = value
    labels = [f"{t}" + "".join(f" {k}={v[:12]}" for k, v in s.items())
              for t, s in zip(trees, settings, strict=True)]
    samples: dict[int, list[Sample]] = {i: [] for i in range(len(trees))}
    corpus = read_corpus(args.corpus, args.encoding)  # once: the gzip corpus is ~100 MB
    with tempfile.TemporaryDirectory(prefix="shim-ab-") as tmp:
        number = 0
        for run in range(args.runs):
            order = range(len(trees)) if run % 2 == 0 else reversed(range(len(trees)))
            for i in order:
                number += 1
                sample = run_once(trees[i], args, corpus, Path(tmp), number, settings[i])
                samples[i].append(sample)
                print(f"run {run + 1} {labels[i]}: {sample.requests_per_s:.0f} req/s, "
                      f"{sample.cpu_us:.0f} us CPU/req (server {sample.own_us:.0f}, children "
                      f"{sample.children_us:.0f}){'' if sample.stored_ok else ' NOT ALL STORED'}",
                      file=sys.stderr)
    base = statistics.median(s.cpu_us for s in samples[0])
    for i, runs in samples.items():
        cpu = statistics.median(s.cpu_us for s in runs)
        print(f"{labels[i]:<40} {statistics.median(s.requests_per_s for s in runs):>6.0f} req/s "
              f"{cpu:>6.0f} us CPU/req (server {statistics.median(s.own_us for s in runs):.0f}, "
              f"children {statistics.median(s.children_us for s in runs):.0f}) "
              f"x{cpu / base:.3f} of the first; runs: "
              + " ".join(f"{s.cpu_us:.0f}" for s in runs)
              + ("" if all(s.stored_ok for s in runs) else "  NOT ALL STORED"))


if __name__ == "__main__":
    main()
