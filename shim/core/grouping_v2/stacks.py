"""Which frames of a stack trace count, and how repeats collapse. Pure.

In-app frames count when the event has any (so a change in a library's internals never splits a
group), else every frame. Frames that say nothing (see ``frames.frame_key``) are skipped. A run of
frames that repeats what came just before it (recursion, direct or through up to
``RECURSION_PERIOD`` functions) counts once, so a recursion 50 or 5,000 calls deep, or cut short
by an SDK at any point, reads the same. Every step is linear in the number of frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shim.core.grouping_v2.frames import frame_key

RECURSION_PERIOD = 8
"""The longest cycle of calls (a calls b calls ... calls a) collapsed as recursion."""


def frames_of(holder: object) -> list[dict[str, Any]]:
    """The frames of an exception value, a thread or a stacktrace object, as SDKs send them."""
    if not isinstance(holder, dict):
        return []
    stacktrace = holder if "frames" in holder else holder.get("stacktrace")
    if not isinstance(stacktrace, dict):
        return []
    frames = stacktrace.get("frames")
    if not isinstance(frames, list):
        return []
    return [frame for frame in frames if isinstance(frame, dict)]


def any_in_app(stacks: Iterable[list[dict[str, Any]]]) -> bool:
    return any(frame.get("in_app") is True for frames in stacks for frame in frames)


def stack_keys(frames: list[dict[str, Any]], platform: str, in_app_only: bool) -> list[str]:
    """The keys of the frames that count, outermost first, recursion collapsed."""
    keys: list[str] = []
    for frame in frames:
        if in_app_only and frame.get("in_app") is not True:
            continue
        key = frame_key(frame, platform)
        if key is not None:
            keys.append(key)
            _collapse_repeat(keys)
    return keys


def _collapse_repeat(keys: list[str]) -> None:
    """Drop the newest block of ``keys`` when it repeats the block just before it. The list had no
    such repeat before the newest key was added, so one drop restores that state."""
    size = len(keys)
    if keys[-1] not in keys[-RECURSION_PERIOD - 1:-1]:
        return  # a repeating block ends with a key seen at most a period ago
    for period in range(1, min(RECURSION_PERIOD, size // 2) + 1):
        if keys[size - period:] == keys[size - 2 * period:size - period]:
            del keys[size - period:]
            return
