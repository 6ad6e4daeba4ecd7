"""Terminal output for the CLI: aligned tables, relative times, durations. Pure."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` -> a timedelta; ``ValueError`` otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 24h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def ago(iso: str | None, now: datetime | None = None) -> str:
    """``2026-11-28T12:00:00+00:00`` -> ``3m ago`` (relative to ``now``)."""
    if not iso:
        return "-"
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], wrap_last: bool = False) -> str:
    """Columns padded to their widest cell; the last column is cut to the terminal's width."""
    cells = [[("" if c is None else str(c)).replace("\n", " ") for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    width = shutil.get_terminal_size((120, 24)).columns
    room = max(20, width - sum(w + 2 for w in widths[:-1]))
    lines = []
    for row in [list(headers), *cells]:
        head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True))
        last = row[-1] if wrap_last or len(row[-1]) <= room else row[-1][: room - 1] + "…"
        lines.append(f"{head}  {last}".rstrip() if head else last)
    return "\n".join(lines)
