"""Rate limits: events per minute per DSN key and for the whole server, as token buckets.

Only what would fill the disk is counted: error_logs rows (events and Sentry Logs records).
Check-ins, sessions, transactions and the rest are always let through. A request over a limit is
refused whole with 429, ``Retry-After`` and ``X-Sentry-Rate-Limits`` in whole seconds, in the form
sentry-sdk parses (``seconds:categories:scope``), so the SDK stops sending those categories for
that long instead of retrying into the storm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from shim.core.errors import ShimError

# The Sentry data categories of what we count (events, and log records).
CATEGORIES = "error;default;log_item"


class RateLimited(ShimError):
    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: int, scope: str) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.headers["Retry-After"] = str(retry_after)
        self.headers["X-Sentry-Rate-Limits"] = f"{retry_after}:{CATEGORIES}:{scope}"


@dataclass
class Bucket:
    """``per_minute`` tokens, refilled continuously; a burst may spend a whole minute's worth."""

    per_minute: int
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.per_minute),
                          self.tokens + (now - self.stamp) * self.per_minute / 60.0)
        self.stamp = now

    def wait_for(self, cost: int) -> int:
        """Whole seconds until ``cost`` tokens are there (at least 1)."""
        missing = min(cost, self.per_minute) - self.tokens
        return max(1, math.ceil(missing * 60.0 / self.per_minute))


class RateLimiter:
    def __init__(self, per_key: int, overall: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_key = per_key
        self.overall = overall
        self._clock = clock
        self._keys: dict[str, Bucket] = {}
        self._all = Bucket(overall, float(overall), clock()) if overall else None
        self.refused = 0

    def _bucket(self, key: str, now: float) -> Bucket:
        bucket = self._keys.get(key)
        if bucket is None:
            if len(self._keys) > 10_000:  # keys are configured, but be safe against churn
                self._keys.clear()
            bucket = self._keys[key] = Bucket(self.per_key, float(self.per_key), now)
        return bucket

    def take(self, key: str, cost: int) -> None:
        """Spend ``cost`` events for ``key``, or raise ``RateLimited`` and spend nothing."""
        if cost <= 0 or not (self.per_key or self._all):
            return
        now = self._clock()
        checks: list[tuple[Bucket, str]] = []
        if self.per_key:
            checks.append((self._bucket(key, now), "key"))
        if self._all is not None:
            checks.append((self._all, "organization"))
        for bucket, scope in checks:
            bucket.refill(now)
            if bucket.tokens < min(cost, bucket.per_minute):
                self.refused += 1
                what = "this DSN key" if scope == "key" else "this server"
                raise RateLimited(
                    f"rate limit of {bucket.per_minute} events per minute for {what} reached",
                    retry_after=bucket.wait_for(cost), scope=scope)
        for bucket, _ in checks:
            bucket.tokens = max(0.0, bucket.tokens - cost)
