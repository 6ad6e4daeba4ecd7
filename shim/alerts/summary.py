"""What every message says, before any format: a headline, the title, facts, details and a link.
Pure.

Renderers (``shim.alerts.render``) lay a ``Summary`` out in their own format. Only ``headline``
and ``link`` are ours; ``title``, the facts' values and ``detail`` are user text, which each
renderer escapes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from urllib.parse import quote

from shim.alerts.model import Alert, Digest, Message

HEADLINES = {
    "new_bug": "New bug", "regression": "Regression", "frequency": "Frequent bug",
    "monitor_failing": "Cron failing", "monitor_missed": "Cron missed",
    "monitor_timeout": "Cron timed out", "monitor_recovered": "Cron recovered",
    "test": "Test message",
}
PLURALS = {
    "new_bug": "new bugs", "regression": "regressions", "frequency": "frequent bugs",
    "monitor_failing": "failing monitors", "monitor_missed": "missed check-ins",
    "monitor_timeout": "timeouts", "monitor_recovered": "recoveries", "test": "tests",
}
# Discord's and Teams' accent colours: red for trouble, orange for a warning, green for good news.
RED, ORANGE, GREEN, GREY = 0xD93025, 0xF29900, 0x1E8E3E, 0x5F6368


@dataclass(frozen=True)
class Entry:
    """One alert of a digest: its headline, its title (user text) and its link."""

    headline: str
    title: str
    link: str | None


@dataclass(frozen=True)
class Summary:
    headline: str
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    detail: str | None = None
    link: str | None = None
    color: int = GREY
    entries: tuple[Entry, ...] = ()

    @property
    def is_digest(self) -> bool:
        return bool(self.entries)


def summarize(message: Message, public_url: str | None) -> Summary:
    if isinstance(message, Digest):
        return _digest(message, public_url)
    return _alert(message, public_url)


def link_of(alert: Alert, public_url: str | None) -> str | None:
    """The alert's page on the web interface, when ``SHIM_PUBLIC_URL`` says where it is."""
    if not public_url:
        return None
    base = public_url.rstrip("/")
    if alert.bug:
        return f"{base}/bugs/{quote(alert.bug.number)}"
    if alert.monitor:
        # The web page lists monitors on one page, each row anchored by its slug.
        return f"{base}/monitors#monitor-{quote(alert.monitor.slug, safe='')}"
    return None


def headline_of(alert: Alert) -> str:
    words = HEADLINES[alert.trigger]
    if alert.bug:
        return f"{words} {alert.bug.number}"
    if alert.monitor:
        return f"{words}: {alert.monitor.slug}"
    return words


def title_of(alert: Alert) -> str:
    if alert.bug:
        return alert.bug.title
    if alert.monitor:
        return alert.monitor.reason
    return "shim can reach this channel."


def _alert(alert: Alert, public_url: str | None) -> Summary:
    facts: list[tuple[str, str]] = []
    detail = None
    if alert.bug:
        bug = alert.bug
        facts += [("Level", bug.level), ("Component", bug.component or "unknown")]
        if bug.workspace:
            facts.append(("Workspace", bug.workspace))
        facts += [("Events", str(bug.occurrence_count)), ("First seen", bug.first_seen),
                  ("Last seen", bug.last_seen)]
        if alert.window:
            facts.append(("Threshold", f"more than {alert.window.count} events in "
                                       f"{alert.window.minutes} min"))
        error = ": ".join(p for p in (bug.error_type, bug.error_message) if p)
        detail = "\n".join(p for p in (error, bug.top_frame) if p) or None
    if alert.monitor:
        monitor = alert.monitor
        facts += [("Monitor", monitor.slug), ("Schedule", monitor.schedule)]
        if monitor.failures:
            facts.append(("Failed check-ins", str(monitor.failures)))
        for label, value in (("Last check-in", monitor.last_check_in),
                             ("Next expected", monitor.next_expected),
                             ("Bug", monitor.bug_number)):
            if value:
                facts.append((label, value))
    if alert.event:
        for label, value in (("Environment", alert.event.environment),
                             ("Release", alert.event.release)):
            if value:
                facts.append((label, value))
        facts.append(("Event", alert.event.event_id))
    elif alert.monitor and alert.monitor.environment:
        facts.append(("Environment", alert.monitor.environment))
    return Summary(headline=headline_of(alert), title=title_of(alert), facts=tuple(facts),
                   detail=detail, link=link_of(alert, public_url), color=_color(alert))


def _color(alert: Alert) -> int:
    if alert.trigger == "monitor_recovered":
        return GREEN
    if alert.trigger == "test":
        return GREY
    if alert.bug and alert.bug.level in ("warning", "info", "debug"):
        return ORANGE
    return RED


def _digest(digest: Digest, public_url: str | None) -> Summary:
    counts = Counter(a.trigger for a in digest.alerts)
    parts = [f"{n} {PLURALS[t] if n > 1 else HEADLINES[t].lower()}" for t, n in counts.items()]
    entries = tuple(Entry(headline_of(a), title_of(a), link_of(a, public_url))
                    for a in digest.alerts)
    colors = {_color(a) for a in digest.alerts}
    return Summary(headline=f"{len(digest.alerts)} alerts", title=", ".join(parts),
                   entries=entries, color=RED if RED in colors else colors.pop())
