"""The floor: the least a server can do that keeps the corpus's rows durably, served like the ceiling.

The ceiling (``bench.ceiling``) reads and decodes the body and answers; it stores nothing. Shim
does the whole job. Between them, this app does only what any implementation of the table
contract must do per request, whatever its code, and nothing it could skip:

- what the ceiling does (the same Starlette endpoint, the same decoding);
- read every item's JSON once, as cheaply as known: an event by msgspec into only the keys a row
  is built from (``shim.core.projection``'s decoder, which skips frame variables, source lines and
  ``modules``), any other item by orjson;
- append the body as it arrived to a file and fsync it, for all the requests waiting at that
  moment together (the smallest log the rows could be rebuilt from, in group commits, as shim's
  writer forms them);
- insert the request's finished rows (shim's own rows for that envelope, slim past the storm
  threshold as shim stores them, built before the server starts, so building them costs nothing
  here) into the same SQLite schema, with bare inserts
  (``Keeper``): no duplicate check, no bug, no item counts, nothing computed;
- answer each request once its commit is done.

The commits run on a thread of their own (``floor-sqlite``). With ``--split`` the append and the
insert run in a child process instead (as shim's journal process does for SQLite), so the
server's two processes can use two cores: ``floor-sqlite-split``; with ``--inline`` on the event
loop's own thread, with no hand-off: ``floor-sqlite-inline``. With ``--database-url
postgresql://...`` the rows go to shim's Postgres schema with ``COPY``: ``floor-postgres``.

Normalising, scrubbing, grouping, the duplicate check and the bugs are all left out. So the
floor's rate, as a share of the ceiling's in the same run, bounds what any server doing the job
on this stack can reach: ``python -m bench --floor`` prints it beside shim's (bench/RESULTS.md,
"Eighth pass").

    python -m bench.floor --port 8100 --corpus DIR --data DIR [--split | --inline | --database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import os
import threading
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.ceiling import decode
from bench.corpus import read_corpus
from shim.core.envelope import Envelope, parse_envelope
from shim.core.event import isoformat_utc
from shim.core.items import Limits, ingest_envelope
from shim.core.projection import EVENT_DECODER
from shim.core.records import ErrorLog
from shim.core.scrub import Scrubber
from shim.core.storm import StormGuard
from shim.settings import Settings
from shim.store.sqlite import INSERT_ERROR_LOG, SQLiteStore

Values = tuple[object, ...]


def finished_rows(corpus: Path) -> dict[bytes, list[Values]]:
    """Shim's rows for every envelope of the corpus, by the envelope's header line (unique: it
    holds the time the SDK sent it): the rows a fresh server stores when sent the corpus in order,
    slim past the storm threshold as shim's are."""
    _, bodies = read_corpus(corpus, "identity")
    limits = Limits(bug_level="critical", max_event_bytes=1 << 20, scrubber=Scrubber())
    storm = StormGuard(int(Settings.from_env({}).storm_threshold))
    now = datetime.now(UTC)
    received_at = isoformat_utc(now)
    rows: dict[bytes, list[Values]] = {}
    for body in bodies:
        batch = ingest_envelope(parse_envelope(body.data), "1", now, limits).batch
        rows[body.data.partition(b"\n")[0]] = [bare_values(r, received_at)
                                               for r in storm.admit(batch.error_logs)]
    if len(rows) != len(bodies):
        raise SystemExit("the corpus's envelope headers are not unique")
    return rows


def bare_values(row: ErrorLog, received_at: str) -> Values:
    """A row's values for ``error_logs``, in the order of its columns (``_COLUMNS``); no bug."""
    return (row.id, row.event_id, row.project_id, row.log_level, row.component, row.message,
            row.context.decode(), row.error_type, row.error_message, row.stack_trace,
            row.request_id, row.workspace_id, row.fingerprint, None, row.item_type,
            row.created_at, received_at)


def read_items(envelope: Envelope) -> None:
    """Each item's JSON read once, as cheaply as known: an event's by msgspec into only the keys a
    row is built from (``shim.core.projection``'s decoder, skipping frame variables and the rest), any
    other item's by orjson."""
    for item in envelope.items:
        if item.type == "event":
            EVENT_DECODER.decode(item.payload)
        else:
            orjson.loads(item.payload)


class BodyLog:
    """The durable step of a commit: the bodies appended to a file and fsynced (here), then the
    rows inserted (``insert``, each store's own)."""

    def __init__(self, data_dir: Path) -> None:
        self.log = os.open(data_dir / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def keep(self, bodies: bytes, rows: list[Values]) -> None:
        self.append(bodies)
        self.insert(rows)

    def append(self, bodies: bytes) -> None:
        os.write(self.log, bodies)
        os.fsync(self.log)

    def insert(self, rows: list[Values]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        os.close(self.log)


class Keeper(BodyLog):
    """The rows into the same SQLite schema as shim's.

    Rows go in with ``executemany``, the least CPU (a sixth less than multi-row statements, measured
    with ``bench.stages``), except beside an event loop in the same process (``multi_row``): the
    sqlite3 module gives up the GIL around each step of a statement, and ``executemany`` takes it
    back for every row, each time waiting for the loop's thread to let go of it. There, with
    ``executemany`` the floor answered 1,206 requests/s (0.261 of the ceiling), with multi-row
    statements 1,297 (0.290): one run of 3 rounds each, so within this machine's noise; kept
    because it can only take a wait away."""

    def __init__(self, data_dir: Path, multi_row: bool = False) -> None:
        super().__init__(data_dir)
        self.multi_row = multi_row
        self.store = SQLiteStore(str(data_dir / "floor.db"))

    def insert(self, rows: list[Values]) -> None:
        db = self.store.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self.multi_row:
                for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                    chunk = rows[start:start + _ROWS_PER_STATEMENT]
                    db.execute(_insert(len(chunk)), [v for values in chunk for v in values])
            else:
                db.executemany(INSERT_ERROR_LOG, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        super().close()
        self.store.close()


_COLUMNS = ("id", "event_id", "project_id", "log_level", "component", "message", "context",
            "error_type", "error_message", "stack_trace", "request_id", "workspace_id",
            "fingerprint", "related_bug_id", "item_type", "created_at", "received_at")


class PostgresKeeper(BodyLog):
    """The rows into shim's Postgres schema, sent with ``COPY`` (Postgres's cheapest way in) in
    one transaction."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        import psycopg

        from bench.__main__ import empty_postgres
        from shim.store.postgres import PostgresStore

        super().__init__(data_dir)
        PostgresStore(database_url).close()  # the schema, migrated
        empty_postgres(database_url)
        self.conn = psycopg.connect(database_url)
        self.copy = f"COPY error_logs ({', '.join(_COLUMNS)}) FROM STDIN"

    def insert(self, rows: list[Values]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cursor, cursor.copy(self.copy) as copy:
            for values in rows:
                copy.write_row(values)

    def close(self) -> None:
        super().close()
        self.conn.close()


def _child(data_dir: Path, conn: Connection, server_end: Connection) -> None:
    """``--split``: the keeper in a process of its own, a commit per message, until the server's
    end of the pipe closes (it has ended)."""
    server_end.close()  # else the pipe never reads as closed here
    keeper = Keeper(data_dir)
    while True:
        try:
            bodies, rows = conn.recv()
        except EOFError:
            return
        try:
            keeper.keep(bodies, rows)
            conn.send(None)
        except Exception as exc:
            conn.send(repr(exc))


class GroupCommit:
    """One thread takes every request waiting when it wakes, has them kept (here, or with
    ``split`` in a child process, as shim's journal process does), then answers them."""

    def __init__(self, data_dir: Path, split: bool, database_url: str | None = None) -> None:
        self.keeper: Keeper | PostgresKeeper | None = None
        self.conn: Connection | None = None
        if database_url:
            self.keeper = PostgresKeeper(data_dir, database_url)
        elif split:
            fork = multiprocessing.get_context("fork")
            self.conn, theirs = fork.Pipe()
            fork.Process(target=_child, args=(data_dir, theirs, self.conn), daemon=True).start()
            theirs.close()
        else:
            self.keeper = Keeper(data_dir, multi_row=True)  # beside the event loop's thread
        self.waiting: list[tuple[bytes, list[Values], asyncio.Future[None]]] = []
        self.wake = threading.Condition()
        self.loop: asyncio.AbstractEventLoop | None = None
        threading.Thread(target=self._run, daemon=True).start()

    async def keep(self, body: bytes, rows: list[Values]) -> None:
        loop = self.loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self.wake:
            self.waiting.append((body, rows, done))
            self.wake.notify()
        await done

    def _keep(self, bodies: bytes, rows: list[Values]) -> str | None:
        if self.conn is not None:
            self.conn.send((bodies, rows))
            failure: str | None = self.conn.recv()
            return failure
        assert self.keeper is not None
        try:
            self.keeper.keep(bodies, rows)
        except Exception as exc:  # e.g. an envelope sent twice: its requests get a 500
            return repr(exc)
        return None

    def _run(self) -> None:
        while True:
            with self.wake:
                while not self.waiting:
                    self.wake.wait()
                taken, self.waiting = self.waiting, []
            failure = self._keep(b"".join(body for body, _, _ in taken),
                                 [values for _, rows, _ in taken for values in rows])
            assert self.loop is not None
            self.loop.call_soon_threadsafe(_answer, [done for _, _, done in taken], failure)


_ROWS_PER_STATEMENT = 64


@functools.cache
def _insert(rows: int) -> str:
    head, _, marks = INSERT_ERROR_LOG.partition("VALUES")
    return f"{head} VALUES {', '.join([marks.strip()] * rows)}"


class InlineCommit:
    """``--inline``: the commits on the event loop's own thread, no hand-off. The first request of
    a wave schedules a commit after every request that is ready has run (``call_soon``), so the
    requests of a wave are kept together; the loop reads nothing while it commits."""

    def __init__(self, data_dir: Path) -> None:
        self.keeper = Keeper(data_dir)
        self.waiting: list[tuple[bytes, list[Values], asyncio.Future[None]]] = []

    async def keep(self, body: bytes, rows: list[Values]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self.waiting:
            loop.call_soon(self._commit)
        self.waiting.append((body, rows, done))
        await done

    def _commit(self) -> None:
        taken, self.waiting = self.waiting, []
        failure: str | None = None
        try:
            self.keeper.keep(b"".join(body for body, _, _ in taken),
                             [values for _, rows, _ in taken for values in rows])
        except Exception as exc:
            failure = repr(exc)
        _answer([done for _, _, done in taken], failure)


def _answer(futures: list[asyncio.Future[None]], failure: str | None) -> None:
    for done in futures:
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(RuntimeError(failure))


def create_app(rows: dict[bytes, list[Values]], data_dir: Path, split: bool = False,
               database_url: str | None = None, inline: bool = False) -> Starlette:
    commits = InlineCommit(data_dir) if inline else GroupCommit(data_dir, split, database_url)

    async def envelope(request: Request) -> Response:
        received = await request.body()
        data = decode(received, request.headers.get("content-encoding"))
        head = data.split(b"\n", 1)[0]
        header = orjson.loads(head)
        read_items(parse_envelope(data))
        await commits.keep(received, rows[head])
        body = {"id": header["event_id"]} if "event_id" in header else {}
        return Response(orjson.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/api/{project_id}/envelope/", envelope, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="directory for the log and store")
    parser.add_argument("--split", action="store_true",
                        help="append and insert in a process of its own (as shim does)")
    parser.add_argument("--database-url", help="a postgresql:// store instead (emptied first)")
    parser.add_argument("--inline", action="store_true",
                        help="commit on the event loop's thread (SQLite)")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    rows = finished_rows(args.corpus)
    app = create_app(rows, args.data, args.split, args.database_url, args.inline)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                server_header=False)


if __name__ == "__main__":
    main()
