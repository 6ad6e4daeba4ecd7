"""Grouping cost per event: version 1 against version 2, in the same run, over the grouping corpus.

    python -m bench.grouping_cost                # 7 rounds over the corpus, medians
    python -m bench.grouping_cost --rounds 15

Version 1 is timed as ingestion calls it (``grouping.fingerprint`` with the exceptions, template and
variables ``event.py`` extracts, extracted beforehand); version 2 as the integrator will call it,
``grouping_v2.group(event)`` on the event. Both keep their caches warm, as on a running server.
Rounds alternate v1 and v2 so that the machine's noise falls on both; the ratio of the medians is
what carries over to another machine. For scale, ``normalize_event`` (the whole per-event core,
v1 grouping included) is timed too, and a pathological 1 MB message on its own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.grouping_f1 import RECEIVED, read_corpus
from shim.core import event as event_module
from shim.core import grouping
from shim.core.grouping_v2 import group


def v1_inputs(event: dict[str, Any]) -> tuple[object, list[dict[str, Any]], str | None,
                                               dict[str, str | None]]:
    """What ``normalize_event`` passes to ``grouping.fingerprint`` (its own extraction, reused)."""
    used = event_module._used_parts(event)
    typed = [v for v in event_module.exception_values(used) if v.get("type")]
    _message, template = event_module.message_of(used)
    variables: dict[str, str | None] = {"type": typed[-1]["type"] if typed else None,
                                        "logger": used.get("logger"), "level": used.get("level")}
    return used.get("fingerprint"), typed, template, variables


def per_event(action: Callable[[], object], count: int) -> float:
    """CPU microseconds per event of one pass."""
    started = time.process_time()
    action()
    return (time.process_time() - started) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--rounds", type=int, default=7)
    options.add_argument("--repeat", type=int, default=20, help="passes over the corpus per round")
    args = options.parse_args(argv)
    events = [r.event for r in read_corpus()]
    inputs = [v1_inputs(e) for e in events]
    count = len(events) * args.repeat

    def run_v1() -> None:
        for _ in range(args.repeat):
            for custom, typed, template, variables in inputs:
                grouping.fingerprint(custom, typed, template, variables)

    def run_v2() -> None:
        for _ in range(args.repeat):
            for one in events:
                group(one)

    def run_ingest() -> None:
        for _ in range(args.repeat):
            for one in events:
                event_module.normalize_event(one, event_id=None, project_id="1",
                                             received=RECEIVED, bug_level="debug")

    results: dict[str, list[float]] = {"v1": [], "v2": [], "normalize_event": []}
    for _ in range(args.rounds):
        results["v1"].append(per_event(run_v1, count))
        results["v2"].append(per_event(run_v2, count))
        results["normalize_event"].append(per_event(run_ingest, count))
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"{len(events)} corpus events x {args.repeat} passes, {args.rounds} rounds "
          f"(CPU time, medians)")
    for name, value in medians.items():
        print(f"  {name:<16} {value:8.1f} us/event")
    print(f"  v2 / v1          {medians['v2'] / medians['v1']:8.2f}")
    print(f"  v2 / normalize_event (all of v1 ingest core) {medians['v2'] / medians['normalize_event']:.2f}")

    long = {"event_id": "a" * 32, "platform": "python", "message": "page 12 of scan.pdf " * 50_000}
    custom, typed, template, variables = v1_inputs(long)
    one_v1 = per_event(lambda: grouping.fingerprint(custom, typed, template, variables), 1)
    one_v2 = per_event(lambda: group(long), 1)
    print(f"1 MB message: v1 {one_v1 / 1000:.1f} ms, v2 {one_v2 / 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
