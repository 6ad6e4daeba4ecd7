"""Where a request's time goes, stage by stage, without HTTP: the cost model behind ``python -m bench``.

Runs the corpus through the same functions the server calls, in-process, and prints microseconds
per request for each stage: decoding the body, parsing the envelope, ingesting it (JSON, scrubbing,
normalising, grouping), and committing it (backup log append and fsync, then the SQLite
transaction), the commit measured in batches of ``--batch`` requests as the writer forms them under
load. The ``ceiling`` line is what the bare ceiling app does per request (decode and read the
envelope header), so every stage reads as a multiple of it. Times are CPU time of this process,
so other load on the machine disturbs them less than it would wall-clock times.

The ``floor`` lines are the least any server keeping these rows durably could do on top of the
ceiling, whatever its code: read every item's JSON once (``_read_items``: the cheapest reading
known), append the bodies as they arrived to a file and fsync it (the smallest log the rows could
be rebuilt from), and insert the finished rows (shim's own) into the same SQLite schema with one
bare ``executemany`` per commit (no duplicate check, no bug, no counts, nothing computed). Their sum
over the ceiling bounds the rate any implementation of the table contract could reach on this
stack and one core: no normalising, scrubbing or grouping is counted.

    python -m bench.stages --corpus /tmp/shim-bench-corpus-5000-1 [--encoding gzip] [--batch 32]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.corpus import Body, read_corpus
from shim import projection
from shim.backup import BackupLog
from shim.body import read_body
from shim.cli import _tune_gc
from shim.envelope import Envelope, parse_envelope
from shim.ingest import Limits, ingest_envelope
from shim.journal import Journal
from shim.records import Batch, ErrorLog
from shim.scrub import Scrubber
from shim.store.sqlite import _INSERT_LOG, SQLiteStore
from shim.storm import StormGuard

CAP = 64 * 1024 * 1024


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start:start + 65536]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    began = time.process_time()
    value = fn()
    return value, time.process_time() - began


def _bare_values(row: ErrorLog, received_at: str) -> tuple[object, ...]:
    return (row.id, row.event_id, row.project_id, row.log_level, row.component, row.message,
            row.context_json.decode(), row.error_type, row.error_message, row.stack_trace,
            row.request_id, row.workspace_id, row.fingerprint, None, row.item_type,
            row.created_at, received_at)


class Floor:
    """The floor's durable part: each request's body as it arrived appended to a file and fsynced
    (the least a log could hold to rebuild the rows from), then the finished rows inserted into
    the same schema with one bare statement per commit."""

    def __init__(self, data_dir: Path) -> None:
        self.store = SQLiteStore(str(data_dir / "floor.db"))
        self.log = os.open(data_dir / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, bodies: list[bytes]) -> None:
        os.write(self.log, b"".join(bodies))
        os.fsync(self.log)

    def insert(self, batches: list[Batch]) -> None:
        db = self.store.db
        db.execute("BEGIN IMMEDIATE")
        db.executemany(_INSERT_LOG, [_bare_values(row, b.received_at)
                                     for b in batches for row in b.error_logs])
        db.execute("COMMIT")

    def close(self) -> None:
        os.close(self.log)
        self.store.close()


def _read_items(envelope: Envelope) -> None:
    """Each item's JSON read once, as cheaply as known: an event's by msgspec into only the keys a
    row is built from (``shim.projection``'s decoder, skipping frame variables and the rest),
    any other item's by orjson."""
    for item in envelope.items:
        if item.type == "event":
            projection._DECODER.decode(item.payload)
        else:
            orjson.loads(item.payload)


def run(bodies: list[Body], encoding: str, batch: int, data_dir: Path) -> dict[str, float]:
    _tune_gc()  # as the server runs
    loop = asyncio.new_event_loop()
    limits = Limits(bug_level="critical", max_event_bytes=1024 * 1024, scrubber=Scrubber())
    storm = StormGuard(1000)
    journal = Journal(BackupLog(data_dir / "bugs" / "logs"), SQLiteStore(str(data_dir / "s.db")))
    floor = Floor(data_dir)
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
        _, seconds = _timed(functools.partial(_read_items, envelope))
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


def _commit(journal: Journal, floor: Floor, waiting: list[Batch], received: list[bytes],
            spent: dict[str, float]) -> None:
    _, seconds = _timed(functools.partial(journal.commit, waiting))
    spent["commit"] += seconds
    _, seconds = _timed(functools.partial(floor.append, received))
    spent["floor_append"] += seconds
    _, seconds = _timed(functools.partial(floor.insert, waiting))
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
