"""Load generator: corpus bodies POSTed over keep-alive HTTP/1.1 connections, loopback only.

Plain asyncio streams and a minimal HTTP/1.1 client (no dependency, little CPU per request):
``concurrency`` connections each send one request at a time, taking the next corpus body, until
the corpus (or ``max_requests``) is used up or ``seconds`` have passed. Reports requests and events
(error_logs rows the acknowledged envelopes carry) per second, p50/p99 latency, answers by status,
and its own CPU time, so a run where the generator was the bottleneck shows it.

For runs longer than the corpus, ``FreshBody`` gives a corpus body new event and trace ids on
every send (shim stores an event id once), gzip'd without compressing it again.

    python -m bench.load --corpus DIR --port 8000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import statistics
import struct
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus import Body, read_corpus

LOOPBACK = "127.0.0.1"


@dataclass
class Result:
    requests: int = 0
    events: int = 0  # rows carried by envelopes answered 2xx
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process (user + system), over the run
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0  # time.time() at the first request

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_share(self) -> float:
        """The generator's CPU time over wall time: near 1.0 means it was the bottleneck."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=1000, method="inclusive")[round(q * 1000) - 1]

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "events": self.events,
                "seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
                "statuses": dict(self.statuses), "requests_per_s": round(self.requests_per_s, 1),
                "events_per_s": round(self.events_per_s, 1),
                "p50_ms": round(self.percentile(0.50) * 1000, 2),
                "p99_ms": round(self.percentile(0.99) * 1000, 2),
                "cpu_share": round(self.cpu_share, 2)}


# A Sentry Logs record has no id: shim stores it once by a hash that includes its trace id.
IDS = re.compile(rb'"(?:event_id|trace_id)":"([0-9a-f]{32})"')
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no mtime, OS unknown
LAST_BLOCK = zlib.compressobj(wbits=-15).flush()  # an empty final deflate block


def _deflate(piece: bytes) -> bytes:
    """Raw deflate blocks that end on a byte boundary and refer to nothing before them."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(piece) + compressor.flush(zlib.Z_FULL_FLUSH)


def _stored_block(value: bytes) -> bytes:
    return b"\x00" + struct.pack("<HH", len(value), len(value) ^ 0xFFFF) + value


@dataclass(frozen=True)
class FreshBody:
    """An uncompressed corpus body with holes that every send fills anew, sent gzip'd.

    The holes are its event and trace ids (a fresh uuid4 each time) and any named spans given.
    The constant pieces are deflated once, each on its own (no back-reference crosses a hole),
    and each hole is a stored block: a send costs a CRC of the body, not a compression. A value
    keeps the length of the one it replaces, so the items' ``length`` headers stay right.
    """

    pieces: tuple[bytes, ...]  # uncompressed, for the CRC
    deflated: tuple[bytes, ...]
    holes: tuple[str, ...]  # what goes between piece i and i + 1
    originals: dict[str, bytes]
    rows: int

    @classmethod
    def of(cls, body: Body, spans: Sequence[tuple[int, int, str]] = ()) -> FreshBody:
        """Holes at ``body``'s ids and at ``spans`` (start, end, name)."""
        data, holes = body.data, list(spans)
        for number, value in enumerate(sorted({m.group(1) for m in IDS.finditer(data)})):
            start = data.find(value)
            while start >= 0:
                holes.append((start, start + len(value), f"id{number}"))
                start = data.find(value, start + len(value))
        holes.sort()
        bounds = [0, *(edge for start, end, _ in holes for edge in (start, end)), len(data)]
        pieces = tuple(data[bounds[i]:bounds[i + 1]] for i in range(0, len(bounds), 2))
        return cls(pieces, tuple(_deflate(piece) for piece in pieces),
                   tuple(name for _, _, name in holes),
                   {name: data[start:end] for start, end, name in holes}, body.rows)

    def render(self, values: Mapping[str, bytes] | None = None) -> Body:
        """The gzip'd body with new ids, and ``values`` in the named spans (else as they were)."""
        fresh = {name: uuid.uuid4().hex.encode() if name.startswith("id") else value
                 for name, value in self.originals.items()} | dict(values or {})
        out, crc = [GZIP_HEADER, self.deflated[0]], zlib.crc32(self.pieces[0])
        size = len(self.pieces[0])
        for hole, piece, deflated in zip(self.holes, self.pieces[1:], self.deflated[1:],
                                         strict=True):
            value = fresh[hole]
            assert len(value) == len(self.originals[hole])
            out += [_stored_block(value), deflated]
            crc = zlib.crc32(piece, zlib.crc32(value, crc))
            size += len(value) + len(piece)
        out += [LAST_BLOCK, struct.pack("<II", crc, size & 0xFFFFFFFF)]
        return Body(b"".join(out), self.rows)


def request_head(port: int, path: str, headers: dict[str, str], encoding: str) -> bytes:
    """Everything before Content-Length, the same for every request of a run."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()
              if name.lower() not in ("content-encoding", "content-length", "host")]
    if encoding != "identity":
        lines.append(f"Content-Encoding: {encoding}")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def run_load(port: int, bodies: Sequence[Body] | Callable[[int], Body], head: bytes, *,
                   seconds: float, concurrency: int = 32, max_requests: int | None = None,
                   wrap: bool = False, timeout: float = 30.0,
                   result: Result | None = None) -> Result:
    """Send ``bodies`` in order (once each unless ``wrap``), bounded by count and by time.

    ``bodies`` may also be a function giving the body of request n (never used up: the time or
    ``max_requests`` ends the run), e.g. one that gives every request fresh event ids. A
    ``result`` passed in is filled in as the answers arrive, for a caller watching the run.
    """
    if callable(bodies):
        body_for, limit = bodies, max_requests
    else:
        corpus = bodies
        limit = max_requests if max_requests is not None else (None if wrap else len(corpus))

        def body_for(number: int) -> Body:
            return corpus[number % len(corpus)]
    numbers = itertools.count() if limit is None else iter(range(limit))
    result = Result() if result is None else result
    deadline = time.perf_counter() + seconds
    latencies = result.latencies

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            for number in numbers:  # shared: each request takes the next body
                if time.perf_counter() >= deadline:
                    return
                body = body_for(number)
                began = time.perf_counter()
                try:
                    writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body.data) + body.data)
                    status = await asyncio.wait_for(_read_response(reader), timeout)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    result.statuses[type(exc).__name__] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(LOOPBACK, port)
                    continue
                latencies.append(time.perf_counter() - began)
                result.requests += 1
                result.statuses[str(status)] += 1
                if 200 <= status < 300:
                    result.events += body.rows
        finally:
            writer.close()

    cpu = time.process_time()
    result.started = time.time()
    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    result.cpu_seconds = time.process_time() - cpu
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True, help="server on 127.0.0.1")
    parser.add_argument("--encoding", default="gzip", choices=("identity", "gzip", "br"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, help="at most this many requests")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--wrap", action="store_true", help="reuse the corpus when it runs out")
    args = parser.parse_args()
    index, bodies = read_corpus(args.corpus, args.encoding)
    head = request_head(args.port, f"/api/{index['project']}/envelope/", index["headers"],
                        args.encoding)
    result = asyncio.run(run_load(args.port, bodies, head, seconds=args.seconds,
                                  concurrency=args.concurrency, max_requests=args.requests,
                                  wrap=args.wrap))
    print(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()
