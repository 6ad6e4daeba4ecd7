"""Refused requests, counted and told: a scanner with a wrong DSN fails silently on its side.

The SDK drops an envelope answered 401, 403 or 413 (and holds back after 429) and says so only
with ``debug=True``, which nobody runs in production. So the server counts every such answer by
status (``/healthz`` shows them) and logs a warning for each key it refused, at most once a
minute per key, naming at most the key's first 8 characters (never a whole key: a short one shows
half of itself). Each process counts its own (``--workers N``: each worker its share).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("shim")

STATUSES = (401, 403, 413, 429)
INTERVAL = 60.0  # seconds between two warnings about the same key
MAX_KEYS = 10_000  # keys remembered; past this the memory is cleared (a flood of made-up keys)
PREFIX = 8


def key_prefix(key: str | None) -> str:
    """What a log line may show of ``key``: its first 8 characters, or half of a shorter one,
    without anything but letters, digits, ``-`` and ``_`` (a key comes from the client)."""
    if not key:
        return "(no key)"
    shown = key[:min(PREFIX, len(key) // 2)]
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "?" for c in shown) + "…"


class Refusals:
    """Counts by status, and the time of the last warning per key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.counts: Counter[int] = Counter()
        self._clock = clock
        self._warned: dict[str | None, tuple[float, int]] = {}  # key -> (last warning, since)

    def as_json(self) -> dict[str, int]:
        """``{"401": n, "403": n, "413": n, "429": n}``, every status even when 0."""
        return {str(status): self.counts[status] for status in STATUSES}

    def note(self, status: int, key: str | None, detail: str, where: str) -> None:
        """Count a refusal; warn about ``key`` unless it was warned about in the last minute."""
        if status not in STATUSES:
            return
        self.counts[status] += 1
        now = self._clock()
        last = self._warned.get(key)
        if last is not None and now - last[0] < INTERVAL:
            self._warned[key] = (last[0], last[1] + 1)
            return
        if len(self._warned) >= MAX_KEYS:
            self._warned.clear()
        self._warned[key] = (now, 0)
        more = f" ({last[1]} more refused since the last warning)" if last and last[1] else ""
        log.warning("refused %d for key %s on %s: %s%s; further refusals of this key are counted "
                    "in /healthz and logged at most once a minute", status, key_prefix(key),
                    _printable(where), _printable(detail), more)


def _printable(text: str, limit: int = 200) -> str:
    """Client-given text on one line of the log."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])
