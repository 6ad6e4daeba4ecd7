"""How the web page shows what the store holds: relative times, hour and day series for charts,
a stored traceback split into frames, masked keys, and a bug as Markdown. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_FRAME = re.compile(r'^ {2}File "(?P<path>.*)"(?:, line (?P<line>\d+))?, in (?P<function>.*)$')
_LIBRARY = re.compile(r"(?:^|/)(?:site-packages|dist-packages|lib/python\d[\d.]*|<frozen )")


def parse_time(moment: str) -> datetime:
    when = datetime.fromisoformat(moment)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def ago(moment: str | None, now: datetime) -> str:
    """``3 min ago`` (or ``in 2 h`` for a time ahead of the server's clock)."""
    if not moment:
        return "never"
    seconds = (now - parse_time(moment)).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 45:
        return "just now"
    for size, unit in ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size * 0.95:
            amount = f"{max(1, round(seconds / size))} {unit}"
            return f"in {amount}" if ahead else f"{amount} ago"
    return "just now"


def utc_label(moment: str | None) -> str:
    """The exact time, for a ``<time>``'s title: ``2026-11-28 13:05:09 UTC``."""
    if not moment:
        return ""
    return parse_time(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def hour_keys(now: datetime, hours: int) -> list[str]:
    """The keys (``2026-11-28T13``) of the last ``hours`` hours, oldest first, this one last."""
    top = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [(top - timedelta(hours=n)).strftime("%Y-%m-%dT%H") for n in range(hours - 1, -1, -1)]


def day_keys(now: datetime, days: int) -> list[str]:
    today = now.astimezone(UTC).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def series(counts: dict[str, int], keys: list[str]) -> list[int]:
    return [counts.get(key, 0) for key in keys]


def per_day(hours: dict[str, int]) -> dict[str, int]:
    days: dict[str, int] = {}
    for hour, n in hours.items():
        days[hour[:10]] = days.get(hour[:10], 0) + n
    return days


# Stack traces. The store keeps each event's traceback as Python prints it (frames' file, line,
# function and source line; see shim/core/stacktrace.py), not the frames themselves.

@dataclass
class Frame:
    path: str
    line: str | None
    function: str
    source: str | None = None

    @property
    def in_app(self) -> bool:
        """Not in an installed library or the standard library (the SDK's ``in_app`` flag is not
        stored, so the path decides)."""
        return not _LIBRARY.search(self.path)


@dataclass
class Block:
    """Consecutive lines of a traceback: frames all in the app or all not, or plain text (a
    heading, an exception line, the line between two chained exceptions)."""

    kind: str  # app | library | text
    frames: list[Frame] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def traceback_blocks(text: str | None) -> list[Block]:
    blocks: list[Block] = []
    frame: Frame | None = None
    for line in (text or "").splitlines():
        match = _FRAME.match(line)
        if match:
            frame = Frame(match["path"], match["line"], match["function"])
            kind = "app" if frame.in_app else "library"
            if not blocks or blocks[-1].kind != kind:
                blocks.append(Block(kind))
            blocks[-1].frames.append(frame)
            continue
        if frame is not None and line.startswith("    ") and frame.source is None:
            frame.source = line.strip()
            continue
        frame = None
        if not blocks or blocks[-1].kind != "text":
            blocks.append(Block("text"))
        blocks[-1].text.append(line)
    return blocks


def mask(secret: str) -> str:
    """Enough of a key to tell keys apart, not enough to use one: ``3f9c…e1``."""
    return f"{secret[:4]}…{secret[-2:]}" if len(secret) > 8 else "…"


def markdown(bug: dict[str, Any], event: dict[str, Any] | None, url: str) -> str:
    """The bug as Markdown to paste into an issue tracker."""
    lines = [
        f"### {bug['bug_number']}: {bug['title']}",
        "",
        f"- Status: {bug['status']}{' (regression)' if bug.get('is_regression') else ''}",
        f"- Severity: {bug['severity']}, component: {bug.get('component') or '-'}",
        f"- Occurrences: {bug['occurrence_count']}, first seen {utc_label(bug['first_occurred_at'])},"
        f" last seen {utc_label(bug['last_occurred_at'])}",
        f"- Link: {url}",
    ]
    if bug.get("error_type") or bug.get("error_message"):
        lines.append(f"- Error: `{bug.get('error_type') or '-'}`: {bug.get('error_message') or ''}")
    context = (event or {}).get("context") or {}
    for key in ("environment", "release", "server_name"):
        if context.get(key):
            lines.append(f"- {key.replace('_', ' ').capitalize()}: {context[key]}")
    trace = (event or {}).get("stack_trace") or bug.get("stack_trace")
    if trace:
        fence = "~~~~" if "```" in trace else "```"
        lines += ["", f"{fence}python", trace, fence]
    return "\n".join(lines) + "\n"
