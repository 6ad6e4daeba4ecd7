"""What an alert says: its trigger and the facts of the bug, event or monitor behind it. Pure.

An ``Alert`` is what the outbox stores (``as_json`` / ``from_json``, plain JSON) and what every
renderer reads; a ``Digest`` is several alerts of one channel sent as one message (an error storm
that opens 1,000 bugs sends one digest, not 1,000 messages).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BUG_TRIGGERS = ("new_bug", "regression", "frequency")
MONITOR_TRIGGERS = ("monitor_failing", "monitor_missed", "monitor_timeout", "monitor_recovered")
TRIGGERS = (*BUG_TRIGGERS, *MONITOR_TRIGGERS, "test")
"""``test`` is ``shim channels test``'s message."""

SCHEMA_VERSION = 1
"""The ``version`` of our webhook document; a change to its shape that could break a receiver
gets a new version."""


class AlertError(ValueError):
    """An alert that does not hold together (say, a bug trigger without a bug)."""


@dataclass(frozen=True)
class BugFacts:
    """The bug an alert is about, as the ``bugs`` row has it after the change."""

    number: str  # BUG-00012
    title: str
    level: str  # the level of the event that raised the alert (debug..critical)
    component: str | None
    workspace: str | None
    status: str
    occurrence_count: int
    first_seen: str  # ISO 8601 UTC
    last_seen: str
    error_type: str | None = None
    error_message: str | None = None
    top_frame: str | None = None  # 'File "scan.py", line 12, in run' (the top in-app frame)


@dataclass(frozen=True)
class EventFacts:
    """The event that raised the alert."""

    event_id: str
    environment: str | None = None
    release: str | None = None


@dataclass(frozen=True)
class MonitorFacts:
    """The cron monitor an alert is about."""

    slug: str
    environment: str | None
    schedule: str  # '0 3 * * *' or 'every 10 minute'
    reason: str  # what happened: 'missed 03:00 UTC', 'error', 'timed out after 30 min'...
    failures: int = 0  # consecutive failed check-ins
    last_check_in: str | None = None
    next_expected: str | None = None
    bug_number: str | None = None  # the bug opened for it, when there is one


@dataclass(frozen=True)
class Window:
    """A frequency alert's threshold: more than ``count`` events in ``minutes``."""

    count: int
    minutes: int


@dataclass(frozen=True)
class Alert:
    """One alert: ``trigger`` (see ``TRIGGERS``) and the facts it needs."""

    trigger: str
    project_id: str
    at: str  # ISO 8601 UTC: when the server raised it (the time it had caught up to)
    alert_id: str = ""  # the outbox row's id; receivers may use it to drop a repeat
    bug: BugFacts | None = None
    event: EventFacts | None = None
    monitor: MonitorFacts | None = None
    window: Window | None = None

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise AlertError(f"unknown trigger {self.trigger!r}")
        if self.trigger in BUG_TRIGGERS and self.bug is None:
            raise AlertError(f"a {self.trigger} alert needs its bug")
        if self.trigger in MONITOR_TRIGGERS and self.monitor is None:
            raise AlertError(f"a {self.trigger} alert needs its monitor")
        if self.trigger == "frequency" and self.window is None:
            raise AlertError("a frequency alert needs its window")

    @property
    def level(self) -> str | None:
        return self.bug.level if self.bug else None

    @property
    def component(self) -> str | None:
        """A bug's component, or a monitor's slug (the component of the bug a monitor opens)."""
        if self.bug:
            return self.bug.component
        return self.monitor.slug if self.monitor else None

    @property
    def workspace(self) -> str | None:
        return self.bug.workspace if self.bug else None

    @property
    def environment(self) -> str | None:
        if self.event:
            return self.event.environment
        return self.monitor.environment if self.monitor else None

    def as_json(self) -> dict[str, Any]:
        """A plain dict (for the outbox row); ``from_json`` reads it back."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        parts: dict[str, type] = {"bug": BugFacts, "event": EventFacts, "monitor": MonitorFacts,
                                  "window": Window}
        values = {k: parts[k](**v) if k in parts and v is not None else v
                  for k, v in data.items()}
        return cls(**values)


@dataclass(frozen=True)
class Digest:
    """Several alerts for one channel, sent as one message, in the order they were raised."""

    alerts: tuple[Alert, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.alerts:
            raise AlertError("a digest needs at least one alert")


Message = Alert | Digest
"""What a channel is sent: one alert, or a digest of several."""
