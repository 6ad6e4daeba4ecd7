"""What each part of ingesting an event costs, in warm loops over the corpus, for one or more trees.

``bench.ab`` tells whether a change made the server cheaper under load, to within ~5%; a change
to one function is smaller than that. This times the functions themselves, per event (or per log
record), over the first ``--envelopes`` of the corpus, already inflated and parsed: each the best
of 5 loops with the garbage collector off. With several source trees (checkouts) the runs
alternate between them, each in a process of its own with that tree's ``shim`` first on the
path, and the best of ``--rounds`` runs is printed per tree: a single run on a shared machine
swings by 20%.

    python -m bench.parts --corpus /tmp/shim-bench-corpus-20000-1
    git worktree add /tmp/base HEAD~1
    python -m bench.parts --corpus /tmp/shim-bench-corpus-20000-1 /tmp/base .
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOOPS = 5


def _best(fn: Callable[[], object], count: int) -> float:
    """Microseconds per item of the fastest of ``LOOPS`` loops."""
    best = float("inf")
    for _ in range(LOOPS):
        gc.disable()
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
        gc.enable()
    return best / count * 1e6


def measure(corpus: Path, envelopes: int) -> dict[str, float]:
    """Each part's cost with the ``shim`` importable now (the child's tree)."""
    import orjson

    from bench.corpus import read_corpus
    from shim.core import event as normalize
    from shim.core import grouping, grouping_v2, projection, stacktrace
    from shim.core.envelope import parse_envelope
    from shim.core.items import Limits, ingest_envelope, log_record
    from shim.core.scrub import Scrubber, scrub_event

    _, bodies = read_corpus(corpus, "gzip")
    parsed = [parse_envelope(zlib.decompress(body.data, 31)) for body in bodies[:envelopes]]
    scrubber = Scrubber()
    limits = Limits(bug_level="critical", max_event_bytes=1 << 20, scrubber=scrubber)
    now = datetime.now(UTC)
    payloads = [item.payload for env in parsed for item in env.items if item.type == "event"]
    used = [projection.read(payload, scrubber) for payload in payloads]
    typed = [[v for v in normalize.exception_values(u) if v.get("type")] for u, _ in used]
    tags = [normalize.tags_of(u) for u, _ in used]
    logs = [(orjson.loads(item.payload)["items"], env) for env in parsed for item in env.items
            if item.type == "log"]
    records = sum(len(items) for items, _ in logs)

    def normalize_all() -> None:
        for payload in payloads:
            normalize.normalize_event(payload, event_id=None, project_id="1", received=now,
                                      bug_level="critical", scrubber=scrubber)

    def normalize_all_with_v1() -> None:  # during the transition from grouping version 1
        for payload in payloads:
            normalize.normalize_event(payload, event_id=None, project_id="1", received=now,
                                      bug_level="critical", scrubber=scrubber, with_v1=True)

    def records_all() -> None:
        for items, env in logs:
            copies: Counter[bytes] = Counter()  # per envelope, as ingest_envelope counts them
            for record in items:
                log_record(record, copies, env, "1", now)

    events = len(used)
    transition = {}
    if "with_v1" in inspect.signature(normalize.normalize_event).parameters:
        transition["normalize_event with v1 too (transition)"] = _best(normalize_all_with_v1,
                                                                       events)
    return {
        "ingest_envelope (per envelope)": _best(
            lambda: [ingest_envelope(env, "1", now, limits) for env in parsed], len(parsed)),
        "read": _best(lambda: [projection.read(p, scrubber) for p in payloads], events),
        "normalize_event (read included)": _best(normalize_all, events),
        "  scrub_event": _best(lambda: [scrub_event(u, scrubber, d) for u, d in used], events),
        "  render": _best(lambda: [stacktrace.render(t) for t in typed if t], events),
        "  fingerprint": _best(lambda: [grouping.fingerprint(None, t, None, {}) for t in typed],
                               events),
        "  grouping v2": _best(lambda: [grouping_v2.group(u) for u, _ in used], events),
        "  context": _best(lambda: [normalize.context_of(u, t)
                                    for (u, _), t in zip(used, tags, strict=True)], events),
        "  iso_utc": _best(lambda: [normalize.iso_utc(u.get("timestamp"), now) for u, _ in used],
                           events),
        "log_record (per record)": _best(records_all, records),
        **transition,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*", type=Path, help="source trees (default: this one)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--envelopes", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4, help="runs of each tree, alternating")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.corpus, args.envelopes)))
        return
    trees = [tree.resolve() for tree in args.trees] or [Path.cwd()]
    best: dict[Path, dict[str, float]] = {tree: {} for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:
            # The tree's own shim (and bench.corpus) first on the path: this file runs as a script.
            code = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv.pop(0); "
                    "runpy.run_path(sys.argv[0], run_name='__main__')")
            out = subprocess.run(
                [sys.executable, "-c", code, str(tree), __file__, "--child",
                 "--corpus", str(args.corpus), "--envelopes", str(args.envelopes)],
                check=True, capture_output=True, text=True, cwd=tree).stdout
            result: dict[str, Any] = json.loads(out)
            for label, value in result.items():
                best[tree][label] = min(best[tree].get(label, float("inf")), float(value))
    labels = list(best[trees[0]])
    print(f"us per event unless said; best of {args.rounds} runs of {LOOPS} loops, "
          f"{args.envelopes} envelopes")
    print(f"{'':32s}" + "".join(f"{tree.name[:12]:>14s}" for tree in trees))
    for label in labels:
        print(f"{label:32s}" + "".join(f"{best[tree].get(label, float('nan')):14.1f}"
                                       for tree in trees))


if __name__ == "__main__":
    main()
