"""Which channels an alert goes to, and how a channel's pending alerts become messages. Pure.

For the sender task: at most one message per channel every ``DIGEST_INTERVAL`` seconds; what is
pending for a channel when its turn comes is sent as one message (``compose``): the alert itself
when there is one, else a ``Digest`` of up to ``MAX_PER_DIGEST`` (an error storm that opens
1,000 bugs in a minute sends two digests, not 1,000 messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shim.alerts.channels import Channel
from shim.alerts.model import Alert, Digest, Message

DIGEST_INTERVAL = 5.0
MAX_PER_DIGEST = 500


def accepts(channel: Channel, alert: Alert) -> bool:
    """Whether ``channel``'s filters let ``alert`` through (a test message always passes)."""
    if alert.trigger == "test":
        return True
    return channel.filters.matches(alert.level, alert.component, alert.workspace,
                                   alert.environment)


def channels_for(alert: Alert, channels: Iterable[Channel]) -> tuple[Channel, ...]:
    return tuple(c for c in channels if accepts(c, alert))


def compose(pending: Sequence[Alert], limit: int = MAX_PER_DIGEST) -> list[Message]:
    """The messages for one channel's pending alerts, oldest first."""
    if len(pending) <= 1:
        return list(pending)
    return [Digest(tuple(pending[start:start + limit]))
            if len(pending[start:start + limit]) > 1 else pending[start]
            for start in range(0, len(pending), limit)]
