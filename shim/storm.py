"""Error storms: past a threshold, repeats of one fingerprint are stored slim.

Every event still gets its error_logs row and counts towards its bug (``occurrence_count`` stays
exact), but after ``threshold`` events of the same fingerprint within an hour, further rows keep
only what identifies them (ids, level, component, error type, a short message, tags, times) and
drop the stack trace and the rest of the context, which are the bulk of an event and identical
to the ones already stored. A loop that crashes a thousand times a second cannot fill the disk.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from shim.records import ErrorLog

WINDOW = 3600.0
MESSAGE_KEEP = 500


class StormGuard:
    def __init__(self, threshold: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}
        self.slimmed = 0

    def admit(self, rows: list[ErrorLog]) -> list[ErrorLog]:
        """The rows to store: full ones until the fingerprint's threshold, slim ones after."""
        if not self.threshold:
            return rows
        now = self._clock()
        if len(self._seen) > 100_000:  # bound the memory even under a storm of fingerprints
            self._seen = {fp: v for fp, v in self._seen.items() if now - v[0] < WINDOW}
        out = []
        for row in rows:
            start, count = self._seen.get(row.fingerprint, (now, 0))
            if now - start >= WINDOW:
                start, count = now, 0
            count += 1
            self._seen[row.fingerprint] = (start, count)
            out.append(row if count <= self.threshold else self._slim(row, count))
        return out

    def _slim(self, row: ErrorLog, count: int) -> ErrorLog:
        self.slimmed += 1
        kept = ("tags", "environment", "release", "server_name")
        context: dict[str, Any] = {key: row.context[key] for key in kept if key in row.context}
        context["storm"] = {"slimmed": True, "repeat_in_window": count,
                            "threshold": self.threshold}
        return dataclasses.replace(row, message=row.message[:MESSAGE_KEEP], stack_trace=None,
                                   context=context)
