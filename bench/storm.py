"""Memory under an error storm: a real ``shim serve`` driven for minutes, its RSS sampled.

``python -m shim serve`` runs on a free 127.0.0.1 port with a fresh data dir (SQLite unless
``--database-url``), the corpus key, rate limits off (the storm must reach the server, not be
answered 429) and the default storm threshold. ``bench.load`` drives it for ``--minutes`` with a
storm made of the corpus's first envelopes: 9 requests in 10 repeat a few hot fingerprints (one of
them a bug, so the bug upsert runs on every repeat; past the threshold they are stored slim) and 1
in 10 is any envelope of the pool. Then, for ``--distinct-minutes``, every request is an exception
event with a fingerprint never seen before: the storm guard's per-fingerprint counters grow by
one an event, up to their cap (``shim.core.storm.MAX_FINGERPRINTS``). Every request carries fresh
event and trace ids (shim deduplicates by event id; log records by a hash that includes the trace
id).

Every 5 s: the server's VmRSS, that of its journal process (which holds SQLite's page cache), the
RSS of its other children (the bugs snapshot export), events acknowledged and stored
(``/healthz``), writer lag, and the data dir's size on disk. At the end: the VmHWM of the server
and of its journal process, and the rows in ``error_logs``, which must hold every acknowledged
event. Before it, the ceiling app (``bench.ceiling --decode``) gets the same storm for 20 s: the
server's peak RSS is also given as a ratio to the ceiling's. Exit status 1 when an acknowledged
event is not stored, the peaks of the server and its journal process add up to 200 MB, or the
server logged a traceback.

    python -m bench.storm                                   # 10 minutes, then 5 of new fingerprints
    python -m bench.storm --minutes 1 --distinct-minutes 0.5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.__main__ import (
    child_pids,
    count_rows,
    free_port,
    journal_pid,
    memory_mb,
    server,
    wait_listening,
)
from bench.corpus import Body, read_corpus
from bench.load import LOOPBACK, FreshBody, Result, request_head, run_load
from shim.core.envelope import parse_envelope
from shim.core.items import Limits, ingest_envelope
from shim.core.storm import MAX_FINGERPRINTS
from shim.settings import Settings

RSS_LIMIT_MB = 200.0
SAMPLE_SECONDS = 5.0
CEILING_SECONDS = 20.0
POOL = 1000  # corpus envelopes the storm is made of (each analysed once, a few ms)
HOT_BUGS, HOT_ERRORS = 1, 2  # the storm's fingerprints: one bug and two plain errors
VARIETY_EVERY = 10  # one request in ten is any envelope of the pool
DEFAULTS = Settings.from_env({})


@dataclass(frozen=True)
class Template:
    """A pool envelope with fresh ids, and what shim makes of it."""

    body: FreshBody
    fingerprint: str  # of its first row
    bug: bool  # its first row opens or updates a bug
    single_event: bool  # one event item, nothing else
    type_width: int  # length of its exception type, a hole; 0: none

    def render(self, fresh_type: int | None = None) -> Body:
        """A body to send; with ``fresh_type``, its exception type (its fingerprint) is new."""
        if fresh_type is None:
            return self.body.render()
        return self.body.render({"type": b"%0*d" % (self.type_width,
                                                    fresh_type % 10**self.type_width)})


def make_template(body: Body, limits: Limits) -> Template:
    """Ingest one uncompressed corpus envelope as shim would; mark its exception type."""
    data = body.data
    envelope = parse_envelope(data)
    rows = ingest_envelope(envelope, "1", datetime.now(UTC), limits).batch.error_logs
    single_event = [item.type for item in envelope.items] == ["event"] and len(rows) == 1
    spans = []
    exception = data.find(b'"exception":')
    if single_event and rows[0].error_type and exception >= 0:
        name = rows[0].error_type.encode()
        found = data.find(b'"type":"%s"' % name, exception)
        if found >= 0 and len(name) >= 8:  # room for 10**8 new types
            at = found + len(b'"type":"')
            spans.append((at, at + len(name), "type"))
    return Template(FreshBody.of(body, spans), fingerprint=rows[0].fingerprint if rows else "",
                    bug=bool(rows and rows[0].bug), single_event=single_event,
                    type_width=spans[0][1] - spans[0][0] if spans else 0)


class Storm:
    """The body of request n: the storm until ``distinct_at`` (``time.perf_counter``), then an
    exception event with a fingerprint never seen before, every time."""

    def __init__(self, templates: list[Template]) -> None:
        events = [t for t in templates if t.single_event]
        if not events:
            raise RuntimeError("no envelope of the pool became an error_logs row (see the log)")
        common = [key for key, _ in Counter((t.fingerprint, t.bug) for t in events).most_common()]
        bugs = [fp for fp, bug in common if bug][:HOT_BUGS]
        errors = [fp for fp, bug in common if not bug and fp not in bugs][:HOT_ERRORS]
        self.hot_fingerprints = bugs + errors
        self.hot = [[t for t in events if t.fingerprint == fp and t.bug == (fp in bugs)]
                    for fp in self.hot_fingerprints]
        self.pool = templates
        self.fresh = [t for t in events if t.type_width]
        self.distinct_at = math.inf
        self.distinct = 0  # fresh fingerprints handed out

    def __call__(self, number: int) -> Body:
        if time.perf_counter() >= self.distinct_at:
            self.distinct += 1
            return self.fresh[number % len(self.fresh)].render(fresh_type=self.distinct)
        if number % VARIETY_EVERY == 0:
            return self.pool[number // VARIETY_EVERY % len(self.pool)].render()
        group = self.hot[number % len(self.hot)]
        return group[number // len(self.hot) % len(group)].render()


@dataclass
class Sample:
    seconds: float  # since the load started
    phase: str  # storm | distinct
    rss_mb: float
    journal_mb: float  # the server's journal process (shim/writer/process.py; SQLite only)
    children_mb: float  # the server's other child processes (the bugs snapshot export)
    requests: int  # answered so far
    events: int  # acknowledged (2xx) so far
    stored: int | None  # /healthz events_stored
    slim: int | None  # /healthz stored_slim
    lag_bytes: int | None  # /healthz store.lag_bytes
    disk_mb: float


START = Sample(seconds=0.0, phase="storm", rss_mb=0.0, journal_mb=0.0, children_mb=0.0,
               requests=0, events=0, stored=0, slim=0, lag_bytes=0, disk_mb=0.0)


def _peak_mb(pid: int, samples: list[Sample]) -> float:
    """VmHWM, or a higher VmRSS sampled (the kernel's counters of a process are approximate)."""
    return max(memory_mb(pid), *(s.rss_mb for s in samples))


def _children_mb(pid: int) -> float:
    journal = journal_pid(pid)
    return sum(memory_mb(child, "VmRSS") for child in child_pids(pid) if child != journal)


def _journal_mb(pid: int, field: str = "VmRSS") -> float:
    journal = journal_pid(pid)
    return memory_mb(journal, field) if journal else 0.0


def _disk_mb(directory: Path | None) -> float:
    total = 0
    for path in directory.rglob("*") if directory else ():
        with contextlib.suppress(OSError):  # a file replaced while we walk
            total += path.lstat().st_blocks * 512
    return total / 2**20


def _healthz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=10) as answer:
            health: dict[str, Any] = json.loads(answer.read())
            return health
    except (OSError, ValueError):
        return {}


def _caught_up(port: int, timeout: float = 120.0) -> dict[str, Any]:
    """``/healthz`` once the store has applied the whole backup log (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        health = _healthz(port)
        if health.get("store", {}).get("lag_bytes") == 0 or time.monotonic() > deadline:
            return health
        time.sleep(0.5)


def _sample(pid: int, port: int, data_dir: Path | None, result: Result, storm: Storm,
            began: float) -> Sample:
    health = _healthz(port) if data_dir else {}
    now = time.perf_counter()
    # The phase of the 5 s the sample closes: the one that held most of them.
    in_distinct = now - SAMPLE_SECONDS / 2 >= storm.distinct_at
    return Sample(seconds=round(now - began, 2), phase="distinct" if in_distinct else "storm",
                  rss_mb=memory_mb(pid, "VmRSS"), journal_mb=_journal_mb(pid),
                  children_mb=_children_mb(pid),
                  requests=result.requests, events=result.events,
                  stored=health.get("events_stored"), slim=health.get("stored_slim"),
                  lag_bytes=health.get("store", {}).get("lag_bytes"), disk_mb=_disk_mb(data_dir))


def _progress(sample: Sample, before: Sample) -> str:
    elapsed = sample.seconds - before.seconds
    answered = (sample.events - before.events) / elapsed
    stored = ((sample.stored or 0) - (before.stored or 0)) / elapsed
    return (f"{sample.seconds:7.0f} s {sample.phase:<8} RSS {sample.rss_mb:6.1f} MB  events/s "
            f"{answered:6.0f} answered {stored:6.0f} stored  lag "
            f"{(sample.lag_bytes or 0) / 1e6:5.1f} MB  disk {sample.disk_mb:7.1f} MB")


async def drive(port: int, pid: int, storm: Storm, head: bytes, storm_seconds: float,
                distinct_seconds: float, concurrency: int,
                data_dir: Path | None) -> tuple[Result, list[Sample]]:
    """Run the load, sampling the server every ``SAMPLE_SECONDS`` and once more at the end."""
    result, finished = Result(), asyncio.Event()
    samples: list[Sample] = []

    async def watch() -> None:
        while not finished.is_set():
            due = SAMPLE_SECONDS * (len(samples) + 1) - (time.perf_counter() - began)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), max(0.0, due))
            if finished.is_set() and samples and (
                    time.perf_counter() - began - samples[-1].seconds < 1):
                break  # the load ended just after a sample
            samples.append(await asyncio.to_thread(_sample, pid, port, data_dir, result, storm,
                                                   began))
            print(_progress(samples[-1], samples[-2] if len(samples) > 1 else START),
                  file=sys.stderr, flush=True)

    began = time.perf_counter()
    storm.distinct_at = began + storm_seconds
    watcher = asyncio.create_task(watch())
    try:
        await run_load(port, storm, head, seconds=storm_seconds + distinct_seconds,
                       concurrency=concurrency, result=result)
    finally:
        finished.set()
        await watcher
    return result, samples


def run_ceiling(args: argparse.Namespace, index: dict[str, Any], templates: list[Template],
                work: Path) -> dict[str, Any]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.ceiling", "--port", str(port), "--decode"]
    with server(argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, work / "ceiling.log") as process:
        wait_listening(port, process)
        head = request_head(port, f"/api/{index['project']}/envelope/", index["headers"], "gzip")
        result, samples = asyncio.run(drive(port, process.pid, Storm(templates), head,
                                            CEILING_SECONDS, 0, args.concurrency, None))
        peak = _peak_mb(process.pid, samples)
    return {"peak_rss_mb": round(peak, 1), "load": result.summary(),
            "rss_mb": [round(s.rss_mb, 1) for s in samples]}


def run_shim(args: argparse.Namespace, index: dict[str, Any], storm: Storm,
             work: Path) -> tuple[dict[str, Any], list[Sample]]:
    data_dir = work / "data"
    database_url = args.database_url or f"sqlite:///{data_dir / 'shim.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "SENTRY_"))}
    env |= {"PYTHONUNBUFFERED": "1", "SHIM_DATA_DIR": str(data_dir),
            "SHIM_DATABASE_URL": database_url,
            "SHIM_PUBLIC_KEYS": f"{index['key']}:{index['project']}",
            "SHIM_RATE_LIMIT_PER_KEY": "0", "SHIM_LOG_LEVEL": "warning"}
    port, log = free_port(), work / "shim.log"
    argv = [sys.executable, "-m", "shim", "serve", "--port", str(port)]
    with server(argv, env, log) as process:
        wait_listening(port, process)
        before = count_rows(database_url)
        head = request_head(port, f"/api/{index['project']}/envelope/", index["headers"], "gzip")
        result, samples = asyncio.run(drive(
            port, process.pid, storm, head, args.minutes * 60, args.distinct_minutes * 60,
            args.concurrency, data_dir))
        health = _caught_up(port)
        stored = count_rows(database_url) - before
        peak = _peak_mb(process.pid, samples)
        journal_peak = max(_journal_mb(process.pid, "VmHWM"), *(s.journal_mb for s in samples))
    run = {"peak_rss_mb": round(peak, 1), "journal_peak_mb": round(journal_peak, 1),
           "stored_rows": stored, "load": result.summary(),
           "stored_slim": health.get("stored_slim"), "disk_mb": round(_disk_mb(data_dir), 1),
           "database": "sqlite" if database_url.startswith("sqlite") else "postgres",
           "traceback": "Traceback" in log.read_text(errors="replace")}
    return run, samples


def _minute(sample: Sample) -> int:
    """The minute a sample closes: 1 for 0-60 s; the last sample, taken as the load stops, may
    come up to 2 s after its minute's end."""
    return max(1, math.ceil((sample.seconds - 2) / 60))


def minutes(samples: list[Sample]) -> list[dict[str, Any]]:
    """One row per minute of each phase: the highest RSS sampled in it, rates over it, sizes at
    its end."""
    rows: list[dict[str, Any]] = []
    start = START
    for phase, number in dict.fromkeys((s.phase, _minute(s)) for s in samples):
        group = [s for s in samples if (s.phase, _minute(s)) == (phase, number)]
        end = group[-1]
        elapsed = end.seconds - start.seconds
        stored = (end.stored or 0) - (start.stored or 0)
        slim = (end.slim or 0) - (start.slim or 0)
        rows.append({"minute": number, "phase": phase,
                     "rss_mb": round(max(s.rss_mb for s in group), 1),
                     "journal_mb": round(max(s.journal_mb for s in group), 1),
                     "events_per_s": round((end.events - start.events) / elapsed, 1),
                     "stored_per_s": round(stored / elapsed, 1),
                     "slim_share": round(slim / stored, 3) if stored else 0.0,
                     "lag_mb": round(max((s.lag_bytes or 0) for s in group) / 1e6, 2),
                     "disk_mb": round(end.disk_mb, 1)})
        start = end
    return rows


def distinct_phase(samples: list[Sample]) -> dict[str, Any]:
    """RSS over the phase of new fingerprints (one event each): at its start, when the storm
    guard's counters reached their cap (``MAX_FINGERPRINTS`` new ones), and at its end."""
    storm = [s for s in samples if s.phase == "storm"]
    during = [s for s in samples if s.phase == "distinct"]
    if not during:
        return {}
    start = storm[-1] if storm else START
    at_cap = next((s for s in during if s.events - start.events >= MAX_FINGERPRINTS), None)
    until_cap = at_cap or during[-1]
    return {"fingerprints": during[-1].events - start.events, "cap": MAX_FINGERPRINTS,
            "rss_start_mb": round(start.rss_mb, 1),
            "rss_at_cap_mb": round(at_cap.rss_mb, 1) if at_cap else None,
            "rss_end_mb": round(during[-1].rss_mb, 1),
            "bytes_each_until_cap": round((until_cap.rss_mb - start.rss_mb) * 2**20
                                          / max(1, until_cap.events - start.events))}


def summarize(shim: dict[str, Any], ceiling: dict[str, Any], samples: list[Sample],
              storm: Storm) -> dict[str, Any]:
    table = minutes(samples)
    storm_rows = [r for r in table if r["phase"] == "storm"]
    # Flat after warmup means no slope over the storm's second half (the first minute or two
    # fill SQLite's page cache, up to the 64 MiB shim gives it).
    storm_samples = [s for s in samples if s.phase == "storm"]
    second_half = storm_samples[len(storm_samples) // 2:]
    slope = (statistics.linear_regression([s.seconds / 60 for s in second_half],
                                          [s.rss_mb for s in second_half]).slope
             if len(second_half) >= 3 else None)
    load = shim["load"]
    summary = {
        "peak_rss_mb": shim["peak_rss_mb"], "journal_peak_mb": shim["journal_peak_mb"],
        "server_peak_mb": round(shim["peak_rss_mb"] + shim["journal_peak_mb"], 1),
        "ceiling_peak_rss_mb": ceiling["peak_rss_mb"],
        "peak_over_ceiling": round(shim["peak_rss_mb"] / ceiling["peak_rss_mb"], 2),
        "rss_minute_1_mb": storm_rows[0]["rss_mb"] if storm_rows else None,
        "rss_last_storm_minute_mb": storm_rows[-1]["rss_mb"] if storm_rows else None,
        "last_over_minute_1": round(storm_rows[-1]["rss_mb"] / storm_rows[0]["rss_mb"], 3)
        if storm_rows else None,
        "slope_second_half_mb_per_min": round(slope, 2) if slope is not None else None,
        "distinct": distinct_phase(samples),
        "children_peak_mb_sampled": round(max((s.children_mb for s in samples), default=0), 1),
        "events_acknowledged": load["events"], "stored_rows": shim["stored_rows"],
        "stored_slim": shim["stored_slim"], "disk_mb": shim["disk_mb"],
        "answers": load["statuses"], "generator_cpu_share": load["cpu_share"],
        "hot_fingerprints": storm.hot_fingerprints,
    }
    problems = []
    if shim["stored_rows"] < load["events"]:
        problems.append(f"{load['events']} events acknowledged, {shim['stored_rows']} stored")
    if summary["server_peak_mb"] >= RSS_LIMIT_MB:  # the journal process is part of the server
        problems.append(f"peak RSS {summary['server_peak_mb']} MB (server and journal process)"
                        f" >= {RSS_LIMIT_MB:.0f} MB")
    if shim["traceback"]:
        problems.append("the server logged a traceback")
    return {"minutes": table, "summary": summary, "problems": problems}


def print_report(report: dict[str, Any], args: argparse.Namespace, threshold: int) -> None:
    s = report["summary"]
    print(f"storm: {args.minutes:g} min, then {args.distinct_minutes:g} min of new fingerprints; "
          f"{args.concurrency} connections; {report['database']}; storm threshold {threshold}")
    print(f"{'phase':<9} {'minute':>6} {'RSS MB':>7} {'journal':>7} {'events/s':>9} "
          f"{'stored/s':>9} {'slim':>5} {'lag MB':>7} {'disk MB':>8}")
    for r in report["minutes"]:
        print(f"{r['phase']:<9} {r['minute']:>6} {r['rss_mb']:>7.1f} {r['journal_mb']:>7.1f} "
              f"{r['events_per_s']:>9.0f} "
              f"{r['stored_per_s']:>9.0f} {r['slim_share']:>5.0%} {r['lag_mb']:>7.1f} "
              f"{r['disk_mb']:>8.1f}")
    print(f"peak RSS (VmHWM) {s['peak_rss_mb']} MB, journal process {s['journal_peak_mb']} MB: "
          f"{s['server_peak_mb']} MB (limit {RSS_LIMIT_MB:.0f}); ceiling under the same storm "
          f"{s['ceiling_peak_rss_mb']} MB: {s['peak_over_ceiling']}x the server's")
    print(f"RSS minute 1 {s['rss_minute_1_mb']} MB, last storm minute "
          f"{s['rss_last_storm_minute_mb']} MB: {s['last_over_minute_1']}x; slope over the "
          f"storm's second half {s['slope_second_half_mb_per_min']} MB/min")
    if d := s["distinct"]:
        cap = (f"{d['rss_at_cap_mb']} MB when the storm guard's {d['cap']} counters were full, "
               if d["rss_at_cap_mb"] else f"(the storm guard keeps at most {d['cap']}) ")
        print(f"new fingerprints {d['fingerprints']}: RSS {d['rss_start_mb']} MB before, {cap}"
              f"{d['rss_end_mb']} MB at the end; {d['bytes_each_until_cap']} bytes each until "
              "the cap")
    print(f"events acknowledged {s['events_acknowledged']}, rows stored {s['stored_rows']} "
          f"({s['stored_slim']} slim); disk {s['disk_mb']} MB; other children peak (sampled) "
          f"{s['children_peak_mb_sampled']} MB; generator CPU {s['generator_cpu_share']:.0%}; "
          f"answers {s['answers']}")
    for problem in report["problems"]:
        print(f"problem: {problem}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the storm")
    parser.add_argument("--distinct-minutes", type=float, default=5.0,
                        help="then this long, every event a new fingerprint (0: none)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--corpus", type=Path, help="corpus directory (default: the one "
                        "`python -m bench` uses, generated when missing)")
    parser.add_argument("--database-url", help="a postgresql:// store instead of SQLite")
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    args = parser.parse_args()
    if args.database_url and not args.database_url.startswith(("postgresql://", "postgres://")):
        parser.error("--database-url must be a postgresql:// URL (SQLite is the default)")
    corpus = args.corpus or Path(tempfile.gettempdir()) / "shim-bench-corpus-5000-1"
    if not (corpus / "index.json").exists():
        print(f"generating 5000 envelopes in {corpus} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "bench.corpus", "--out", str(corpus),
                        "--envelopes", "5000", "--seed", "1"], check=True,
                       stdout=subprocess.DEVNULL)
    index, bodies = read_corpus(corpus, "identity")
    limits = Limits(bug_level=DEFAULTS.bug_level, max_event_bytes=DEFAULTS.max_event_bytes)
    templates = [make_template(body, limits) for body in bodies[:POOL]]
    with tempfile.TemporaryDirectory(prefix="shim-storm-") as tmp:
        print(f"ceiling app, {CEILING_SECONDS:g} s", file=sys.stderr)
        ceiling = run_ceiling(args, index, templates, Path(tmp))
        print("shim serve", file=sys.stderr)
        storm = Storm(templates)
        shim, samples = run_shim(args, index, storm, Path(tmp))
    report = {**summarize(shim, ceiling, samples, storm), "database": shim["database"],
              "ceiling": ceiling, "load": shim["load"]}
    print_report(report, args, DEFAULTS.storm_threshold)
    if args.json:
        print(json.dumps({**report, "samples": [asdict(s) for s in samples]}, indent=2))
    sys.exit(1 if report["problems"] else 0)


if __name__ == "__main__":
    main()
