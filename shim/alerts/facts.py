"""An alert's facts from what the writer has at hand: a ``bugs`` row and its stack trace. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shim.alerts.model import BugFacts

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]*)", line \d+, in .*$', re.MULTILINE)
# Frames in installed packages or the standard library are not the scanner's own code.
_LIBRARY = re.compile(r"(site-packages|dist-packages|/lib/python\d)")


def top_frame(stack_trace: str | None) -> str | None:
    """The innermost frame of the scanner's own code in a traceback text (as
    ``shim.core.stacktrace`` writes it): ``File "scan.py", line 12, in run``; the innermost frame
    of all when every frame is a library's; ``None`` without frames."""
    frames = list(_FRAME.finditer(stack_trace or ""))
    if not frames:
        return None
    own = [f for f in frames if not _LIBRARY.search(f["path"])]
    return (own or frames)[-1].group(0).strip()


def bug_facts(bug: Mapping[str, Any], level: str) -> BugFacts:
    """``BugFacts`` of a ``bugs`` row (as the stores return it) and the level of the event that
    raised the alert."""
    return BugFacts(
        number=str(bug["bug_number"]), title=str(bug["title"]), level=level,
        component=bug.get("component"), workspace=bug.get("workspace_id"),
        status=str(bug["status"]), occurrence_count=int(bug["occurrence_count"]),
        first_seen=str(bug["first_occurred_at"]), last_seen=str(bug["last_occurred_at"]),
        error_type=bug.get("error_type"), error_message=bug.get("error_message"),
        top_frame=top_frame(bug.get("stack_trace")))
