"""Error storms: past a threshold, repeats of one fingerprint are stored slim.

Every event still gets its error_logs row and counts towards its bug (``occurrence_count`` stays
exact), but after ``threshold`` events of the same fingerprint within an hour, further rows keep
only what identifies them (ids, level, component, error type, a short message, tags, times) and
drop the stack trace and the rest of the context, which are the bulk of an event and identical
to the ones already stored. A loop that crashes a thousand times a second cannot fill the disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shim.core.records import GROUPING_KEY, ErrorLog, context_json

WINDOW = 3600.0
MESSAGE_KEEP = 500
MAX_FINGERPRINTS = 100_000  # counters kept; past it the one with the oldest window is dropped


class StormGuard:
    def __init__(self, threshold: int, clock: Callable[[], float] = time.monotonic,
                 max_fingerprints: int = MAX_FINGERPRINTS) -> None:
        self.threshold = threshold
        self._clock = clock
        self._max = max_fingerprints
        # fingerprint -> (window start, events in the window), in order of window start: a new
        # window is inserted at the end, so the first entry is always the oldest window.
        self._seen: dict[str, tuple[float, int]] = {}
        self.slimmed = 0

    def admit(self, rows: list[ErrorLog]) -> list[ErrorLog]:
        """The rows to store: full ones until the fingerprint's threshold, slim ones after."""
        if not self.threshold:
            return rows
        now = self._clock()
        seen = self._seen
        out = []
        for row in rows:
            fingerprint = row.fingerprint
            start, count = seen.get(fingerprint, (now, 0))
            if now - start >= WINDOW or count == 0:
                seen.pop(fingerprint, None)
                # Bounded under a storm of distinct fingerprints, in constant time per event:
                # the oldest window goes (expired, or the least recent of 100,000).
                if len(seen) >= self._max:
                    del seen[next(iter(seen))]
                start, count = now, 0
            count += 1
            seen[fingerprint] = (start, count)
            out.append(row if count <= self.threshold else self._slim(row, count))
        return out

    def __len__(self) -> int:
        """Fingerprints with a counter."""
        return len(self._seen)

    def _slim(self, row: ErrorLog, count: int) -> ErrorLog:
        self.slimmed += 1
        kept = ("tags", "environment", "release", "server_name", GROUPING_KEY)
        full = row.context_object()
        context: dict[str, Any] = {key: full[key] for key in kept if key in full}
        context["storm"] = {"slimmed": True, "repeat_in_window": count,
                            "threshold": self.threshold}
        # Built field by field: dataclasses.replace took twice as long (a slim row per repeat).
        # tests/test_storm.py checks that every other field is kept.
        return ErrorLog(
            id=row.id, event_id=row.event_id, project_id=row.project_id, log_level=row.log_level,
            component=row.component, message=row.message[:MESSAGE_KEEP],
            context=context_json(context),
            error_type=row.error_type, error_message=row.error_message, stack_trace=None,
            request_id=row.request_id, workspace_id=row.workspace_id, fingerprint=row.fingerprint,
            created_at=row.created_at, item_type=row.item_type, bug=row.bug,
            fingerprint_v1=row.fingerprint_v1)
