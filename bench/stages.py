"""Where a request's time goes, stage by stage, without HTTP: the cost model behind ``python -m bench``.

Runs the corpus through the same functions the server calls, in-process, and prints microseconds
per request for each stage: decoding the body, parsing the envelope, ingesting it (JSON, scrubbing,
normalising, grouping), and committing it (backup log append and fsync, then the SQLite
transaction), the commit measured in batches of ``--batch`` requests as the writer forms them under
load. The ``ceiling`` line is what the bare ceiling app does per request (decode and read the
envelope header), so every stage reads as a multiple of it. Times are CPU time of this process,
so other load on the machine disturbs them less than it would wall-clock times.

The ``floor`` lines are the parts of ``bench.floor``, what any server keeping these rows durably
must do on top of the ceiling whatever its code: read every item's JSON once
(``bench.floor.read_items``, the cheapest reading known), append the bodies as they arrived to a
file and fsync it (the smallest log the rows could be rebuilt from), and insert shim's finished
rows into the same SQLite schema with bare inserts (no duplicate check, no bug, no
counts, nothing computed). Under HTTP load each part costs more than here (bench/RESULTS.md).

    python -m bench.stages --corpus /tmp/shim-bench-corpus-5000-1 [--encoding gzip] [--batch 32]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.corpus import Body, read_corpus
from bench.floor import Keeper, bare_values, read_items
from shim.cli import tune_gc
from shim.core.body import read_body
from shim.core.envelope import Envelope, parse_envelope
from shim.core.items import Limits, ingest_envelope
from shim.core.records import Batch
from shim.core.scrub import Scrubber
from shim.core.storm import StormGuard
from shim.store.sqlite import SQLiteStore
from shim.writer.journal import Journal
from shim.writer.log import BackupLog

CAP = 64 * 1024 * 1024


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start:start + 65536]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    began = time.process_time()
    value = fn()
    return value, time.process_time() - began


def run(bodies: list[Body], encoding: str, batch: int, data_dir: Path) -> dict[str, float]:
    tune_gc()  # as the server runs
    loop = asyncio.new_event_loop()
    limits = Limits(bug_level="critical", max_event_bytes=1024 * 1024, scrubber=Scrubber())
    storm = StormGuard(1000)
    journal = Journal(BackupLog(data_dir / "bugs" / "logs"), SQLiteStore(str(data_dir / "s.db")))
    floor = Keeper(data_dir)
    spent = dict.fromkeys(("ceiling", "decode", "parse", "ingest", "commit", "floor_items",
                           "floor_append", "floor_insert"), 0.0)
    waiting: list[Batch] = []
    received: list[bytes] = []
    rows = 0
    content_encoding = None if encoding == "identity" else encoding
    for body in bodies:
        data, seconds = _timed(functools.partial(loop.run_until_complete, read_body(
            _chunks(body.data), content_encoding, CAP, CAP)))
        spent["decode"] += seconds
        _, seconds = _timed(functools.partial(orjson.loads, data[:data.index(b"\n")]))
        spent["ceiling"] += seconds
        envelope: Envelope
        envelope, seconds = _timed(functools.partial(parse_envelope, data))
        spent["parse"] += seconds
        _, seconds = _timed(functools.partial(read_items, envelope))
        spent["floor_items"] += seconds
        ingested, seconds = _timed(
            functools.partial(ingest_envelope, envelope, "1", datetime.now(UTC), limits))
        spent["ingest"] += seconds
        one = ingested.batch
        if one.error_logs:
            one.error_logs[:] = storm.admit(one.error_logs)
        rows += len(one.error_logs)
        waiting.append(one)
        received.append(body.data)
        if len(waiting) == batch:
            _commit(journal, floor, waiting, received, spent)
            waiting, received = [], []
    if waiting:
        _commit(journal, floor, waiting, received, spent)
    journal.store.close()
    floor.close()
    loop.close()
    spent["ceiling"] += spent["decode"]
    per_request = {stage: seconds / len(bodies) * 1e6 for stage, seconds in spent.items()}
    per_request["rows_per_request"] = rows / len(bodies)
    return per_request


def _commit(journal: Journal, floor: Keeper, waiting: list[Batch], received: list[bytes],
            spent: dict[str, float]) -> None:
    _, seconds = _timed(functools.partial(journal.commit, waiting))
    spent["commit"] += seconds
    _, seconds = _timed(functools.partial(floor.append, b"".join(received)))
    spent["floor_append"] += seconds
    rows = [bare_values(row, batch.received_at) for batch in waiting for row in batch.error_logs]
    _, seconds = _timed(functools.partial(floor.insert, rows))
    spent["floor_insert"] += seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--encoding", default="gzip", choices=("identity", "gzip", "br"))
    parser.add_argument("--batch", type=int, default=32, help="requests per writer batch")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N envelopes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    _, bodies = read_corpus(args.corpus, args.encoding)
    if args.limit:
        bodies = bodies[:args.limit]
    with tempfile.TemporaryDirectory(prefix="shim-stages-") as tmp:
        result = run(bodies, args.encoding, args.batch, Path(tmp))
    if args.json:
        print(json.dumps(result))
        return
    ceiling = result["ceiling"]
    print(f"{len(bodies)} requests ({args.encoding}), {result['rows_per_request']:.2f} rows each;"
          f" commits of {args.batch} requests; microseconds per request")
    total = sum(result[s] for s in ("decode", "parse", "ingest", "commit"))
    for stage in ("ceiling", "decode", "parse", "ingest", "commit"):
        print(f"  {stage:<8} {result[stage]:9.1f} us  {result[stage] / ceiling:6.2f}x ceiling")
    print(f"  {'total':<8} {total:9.1f} us  {total / ceiling:6.2f}x ceiling"
          f"  (at most {1e6 / total:,.0f} requests/s on one core)")
    print("the floor: what keeping the same rows durably costs any implementation, past the ceiling")
    extra = result["floor_items"] + result["floor_append"] + result["floor_insert"]
    for stage, label in (("floor_items", "read each item's JSON"),
                         ("floor_append", "append the body as received, fsync"),
                         ("floor_insert", "insert the finished rows")):
        print(f"  {result[stage]:9.1f} us  {result[stage] / ceiling:6.2f}x ceiling  {label}")
    print(f"  {extra:9.1f} us  {extra / ceiling:6.2f}x ceiling  together; with the ceiling's"
          f" own C us per request under HTTP load, no server can pass C / (C + {extra:.0f})"
          " of its rate on one core")


if __name__ == "__main__":
    main()
