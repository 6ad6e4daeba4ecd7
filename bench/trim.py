"""What trimming an oversized event costs (``shim.core.trim``), per size: an SDK-shaped exception event
(frame locals, breadcrumbs, extra, a third each) and a message event, from 1.5 MB to 50 MB, cut
to the default 1 MiB. Each the best of a few runs, the JSON parsed in the timing as the server
parses it; the time per megabyte should stay flat as the size grows (the trimming is linear).

    python -m bench.trim
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from shim.core import trim

MB = 1 << 20
RUNS = 3


def exception_event(size: int) -> dict[str, Any]:
    third = size // 3
    frames = [{"filename": f"app/m{i}.py", "module": f"app.m{i}", "function": f"f{i}",
               "lineno": i, "in_app": True, "context_line": f"    step_{i}()",
               "pre_context": ["    pass"] * 5, "post_context": ["    pass"] * 5,
               "vars": {"rows": repr("r" * (third // 20))}} for i in range(20)]
    return {"event_id": "0" * 32, "level": "fatal", "platform": "python", "logger": "export",
            "tags": {"component": "exporter"},
            "exception": {"values": [{"type": "ValueError", "value": "export failed",
                                      "mechanism": {"type": "generic", "handled": True},
                                      "stacktrace": {"frames": frames}}]},
            "breadcrumbs": {"values": [{"category": "export", "message": "b" * (third // 100)}
                                       for _ in range(100)]},
            "extra": {"request_body": "e" * third}}


def message_event(size: int) -> dict[str, Any]:
    return {"event_id": "0" * 32, "level": "fatal", "platform": "python",
            "message": "Export stalled for workspace 7: " + "m" * size}


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        gc.collect()
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def measure(payload: bytes, now: datetime) -> tuple[float, float, list[str]]:
    """(seconds to trim, seconds for the whole row, the steps taken) of one event's JSON."""
    trim_only = _best(lambda: trim.trim(orjson.loads(payload), MB, len(payload)))
    row = _best(lambda: trim.oversized_row(  # (the row, whether anything was cut)
        orjson.loads(payload), len(payload), max_bytes=MB, event_id=None, project_id="1",
        received=now, bug_level="critical"))
    steps = trim.trim(orjson.loads(payload), MB, len(payload)).steps
    return trim_only, row, [step["cut"] for step in steps]


def main() -> None:
    now = datetime.now(UTC)
    print(f"{'event':<18}{'bytes':>10}{'trim ms':>9}{'row ms':>9}{'row ms/MB':>11}  steps")
    for name, build in (("exception", exception_event), ("message", message_event)):
        for size in (3 * MB // 2, 5 * MB, 50 * MB):
            payload = orjson.dumps(build(size))
            trim_only, row, steps = measure(payload, now)
            print(f"{f'{name} {size / MB:g} MB':<18}{len(payload):>10}{trim_only * 1e3:>9.1f}"
                  f"{row * 1e3:>9.1f}{row * 1e3 / (len(payload) / MB):>11.1f}  "
                  f"{','.join(steps)}")


if __name__ == "__main__":
    main()
