"""Per-event cost of the write path with few bugs vs many bugs (and the snapshot exporter running).

The write path is the journal (backup log append + fsync, one SQLite transaction) fed batches the
way the writer feeds them. The store is first filled with N distinct bugs through the same path,
then repeats of existing bugs and some new ones are timed, while the bugs snapshot is rewritten
exactly as the server does it (``shim export`` in a child process, every interval, at most a tenth
of the time). Each size runs ``--rounds`` times; the
table shows medians and the ratio to the smallest size, measured in the same run.

    python -m bench.bug_scaling                  # 100 vs 100,000 bugs
    python -m bench.bug_scaling --sizes 100 10000 --events 5000
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from shim.backup import BackupLog
from shim.exporter import export_command, export_env
from shim.journal import Journal
from shim.normalize import normalize_event
from shim.records import Batch, ErrorLog
from shim.settings import Settings
from shim.store.sqlite import SQLiteStore

RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def event(site: int, rng: random.Random) -> ErrorLog:
    """A critical error from call site ``site`` (one bug per site), with a varying message."""
    return normalize_event(
        {
            "level": "fatal",
            "tags": {"component": f"scanner-{site % 20}"},
            "exception": {"values": [{
                "type": "ValueError",
                "value": f"bad record {rng.randrange(10**6)}",
                "stacktrace": {"frames": [
                    {"module": "scanner.main", "function": "run", "lineno": 10, "in_app": True},
                    {"module": f"scanner.site{site}", "function": f"handle_{site}",
                     "lineno": rng.randrange(1, 500), "in_app": True},
                ]},
            }]},
        },
        event_id=uuid.uuid4().hex, project_id="1", received=RECEIVED, bug_level="critical",
    )


def batches(rows: list[ErrorLog], size: int) -> list[Batch]:
    stamp = RECEIVED.isoformat(timespec="microseconds")
    return [Batch(error_logs=rows[i:i + size], item_counts={"event": len(rows[i:i + size])},
                  received_at=stamp) for i in range(0, len(rows), size)]


def run(bugs: int, events: int, batch_size: int, seed: int, interval: float) -> tuple[float, int]:
    """Seconds per event on a store already holding ``bugs`` bugs; also how many snapshots ran."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = SQLiteStore(str(root / "shim.db"), background_checkpoints=True)  # as served
        journal = Journal(BackupLog(root / "bugs" / "logs"), store)
        for chunk in batches([event(site, rng) for site in range(bugs)], 5000):
            journal.commit([chunk])

        settings = Settings.from_env({"SHIM_DATA_DIR": str(root)})
        stop = threading.Event()
        exports = 0

        def exporter() -> None:  # the server's exporter: the same child process, the same rule
            nonlocal exports
            pause = interval
            while interval and not stop.wait(pause):
                began = time.perf_counter()
                subprocess.run(export_command(), env=export_env(settings), check=True)
                exports += 1
                pause = max(interval, 10 * (time.perf_counter() - began))

        thread = threading.Thread(target=exporter)
        # The same mix at every size: repeats of 100 existing bugs (spread over the whole table)
        # and 5% new bugs; only the number of bugs already stored differs.
        hot = rng.sample(range(bugs), min(bugs, 100))
        sites = [rng.choice(hot) if rng.random() > 0.05 else bugs + i for i in range(events)]
        work = batches([event(site, rng) for site in sites], batch_size)
        thread.start()
        started = time.perf_counter()
        for batch in work:
            journal.commit([batch])
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
        store.close()
    return elapsed / events, exports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 100_000])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=32, help="events per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=5.0,
                        help="snapshot interval in seconds (SHIM_EXPORT_INTERVAL); 0: no snapshots")
    args = parser.parse_args()

    results: dict[int, list[float]] = {size: [] for size in args.sizes}
    exports: dict[int, list[int]] = {size: [] for size in args.sizes}
    for round_number in range(args.rounds):
        for size in args.sizes:  # interleaved, so machine noise hits every size alike
            per_event, n = run(size, args.events, args.batch, round_number, args.interval)
            results[size].append(per_event)
            exports[size].append(n)
    base = statistics.median(results[args.sizes[0]])
    print(f"{args.events} events per round, {args.batch} per transaction, {args.rounds} rounds,"
          f" snapshot interval {args.interval} s")
    print(f"{'bugs':>9}  {'us/event':>9}  {'events/s':>9}  {'ratio':>6}  snapshots/round")
    for size in args.sizes:
        median = statistics.median(results[size])
        print(f"{size:>9,}  {median * 1e6:>9.1f}  {1 / median:>9,.0f}  {median / base:>6.2f}"
              f"  {statistics.median(exports[size]):.0f}")


if __name__ == "__main__":
    main()
