"""When to try a delivery again: exponential backoff with jitter, the receiver's own wait when it
gave one, and no attempt more than 24 hours after the first. Pure (the random source is given).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from shim.alerts.outcome import RETRY, Outcome

GIVE_UP_AFTER = timedelta(hours=24)
FIRST_DELAY = 10.0  # seconds before the first retry, at most
LONGEST_DELAY = 3600.0  # the backoff stops doubling at an hour
LONGEST_ASKED = 6 * 3600.0  # a receiver asking for longer is waited on this long at most


def backoff(attempt: int, rng: random.Random) -> float:
    """Seconds to wait after the ``attempt``-th failed attempt (1, 2, ...): the ceiling doubles
    from ``FIRST_DELAY`` up to ``LONGEST_DELAY``, and the wait is drawn from its upper half, so
    many alerts failing together do not retry together but none retries too soon."""
    ceiling = min(LONGEST_DELAY, FIRST_DELAY * 2.0 ** min(max(attempt, 1) - 1, 20))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def next_attempt(outcome: Outcome, attempts: int, first_attempt: datetime, now: datetime,
                 rng: random.Random | None = None) -> datetime | None:
    """When to try again after ``outcome`` (the ``attempts``-th attempt, made at ``now``), or
    ``None``: delivered, failed for good, or the next try would come more than ``GIVE_UP_AFTER``
    after the first attempt."""
    if outcome.state != RETRY:
        return None
    rng = rng or random.Random()
    if outcome.retry_after is not None:
        asked = min(outcome.retry_after, LONGEST_ASKED)
        delay = asked + rng.uniform(0, min(1.0, asked / 10))  # a little after, never before
    else:
        delay = backoff(attempts, rng)
    when = now + timedelta(seconds=delay)
    return when if when - first_attempt <= GIVE_UP_AFTER else None
