"""Which exceptions of an event count, and what each contributes. Pure.

A chain (``raise ... from``, ``__context__``, Java's ``getCause()``) counts whole, oldest first.
An exception group (Python's ``ExceptionGroup``, JavaScript's ``AggregateError``, .NET's
``AggregateException``: ``mechanism.is_exception_group``, members linked by ``exception_id`` /
``parent_id``) counts as Sentry's exception-group RFC describes: its "top-level" exceptions are
found by descending through groups; each is followed down its first chain. When all of them are
the same problem, the event groups by one of them alone (ten ``ValueError`` members or one are
the same bug); when they differ, by the group they have in common plus each distinct member once,
in a fixed order (members finishing in another order are the same bug).

Each exception contributes its type (not when ``mechanism.synthetic``: the SDK made the exception
up to carry a stack), an NSError's domain and code, its stack, and its value, masked, only when no
frame of its stack counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shim.core.grouping_v2.mask import mask
from shim.core.grouping_v2.stacks import frames_of

_MEMBER_SOURCE = re.compile(r".*\[\d+\]$")  # exceptions[0], errors[1], InnerExceptions[2]


@dataclass(frozen=True, slots=True)
class Part:
    """What one exception of the event contributes."""

    type: str | None
    value: str | None
    ns_error: str | None
    frames: list[dict[str, Any]]


def exception_values(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The event's exception values, oldest first, from any shape SDKs have sent."""
    raw = event.get("exception")
    if raw is None:
        raw = event.get("sentry.interfaces.Exception")
    values: object = raw
    if isinstance(raw, dict):
        values = raw.get("values")
        if values is None and ("type" in raw or "value" in raw):
            values = [raw]  # very old clients sent one exception object
    if not isinstance(values, list):
        return []
    return [value for value in values if isinstance(value, dict)]


def _mechanism(value: dict[str, Any]) -> dict[str, Any]:
    mechanism = value.get("mechanism")
    return mechanism if isinstance(mechanism, dict) else {}


def is_synthetic(value: dict[str, Any]) -> bool:
    """An exception the SDK made up to carry a stack (``mechanism.synthetic``, or no type)."""
    return _mechanism(value).get("synthetic") is True or not _text(value.get("type"))


def part_of(value: dict[str, Any], thread_frames: dict[str, list[dict[str, Any]]]) -> Part:
    """What one exception value contributes (its stack taken from its thread when it has none)."""
    mechanism = _mechanism(value)
    synthetic = mechanism.get("synthetic") is True
    frames = frames_of(value)
    if not frames and value.get("thread_id") is not None:
        frames = thread_frames.get(str(value["thread_id"]), [])
    type_name = None if synthetic else _text(value.get("type"))
    raw_value = value.get("value")
    text = None if synthetic or not isinstance(raw_value, str | int | float) else str(raw_value)
    return Part(type=type_name, value=mask(text) if text else None,
                ns_error=_ns_error(mechanism), frames=frames)


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _ns_error(mechanism: dict[str, Any]) -> str | None:
    meta = mechanism.get("meta")
    error = meta.get("ns_error") if isinstance(meta, dict) else None
    if not isinstance(error, dict) or error.get("domain") is None:
        return None
    return f"{error.get('domain')}:{error.get('code')}"


def considered(values: list[dict[str, Any]],
               signature: Callable[[list[dict[str, Any]]], str],
               ) -> tuple[list[dict[str, Any]], str]:
    """The exceptions that count, oldest first, and how they were chosen: ``chain``,
    ``group member`` (one distinct member of an exception group) or ``group`` (the group and its
    distinct members). ``signature`` says what a member (its chain, oldest first) groups as."""
    if not any(_mechanism(v).get("is_exception_group") is True for v in values):
        return values, "chain"
    tree = _Tree(values)
    tops = tree.top_level(tree.root)
    paths: dict[str, list[dict[str, Any]]] = {}
    for top in tops:
        path = tree.first_path(top)[::-1]
        paths.setdefault(signature(path), path)
    if len(paths) == 1:
        (path,) = paths.values()
        return path, "group member"
    common = tree.common_ancestor(tops)
    return [common] + [e for key in sorted(paths) for e in paths[key]], "group"


class _Tree:
    """Exception values linked by ``mechanism.exception_id`` / ``parent_id``; every walk is
    iterative and visits a value once, so a deep or cyclic link structure stays linear."""

    def __init__(self, values: list[dict[str, Any]]) -> None:
        self.by_id: dict[object, dict[str, Any]] = {}
        self.children: dict[object, list[dict[str, Any]]] = {}
        for value in values:
            mechanism = _mechanism(value)
            self.by_id.setdefault(mechanism.get("exception_id"), value)
            parent = mechanism.get("parent_id")
            if parent is not None and parent != mechanism.get("exception_id"):
                self.children.setdefault(parent, []).append(value)
        for members in self.children.values():
            members.sort(key=_member_index)
        self.root = next((v for v in values if _mechanism(v).get("parent_id") is None), values[-1])

    def _kids(self, value: dict[str, Any]) -> list[dict[str, Any]]:
        return self.children.get(_mechanism(value).get("exception_id"), [])

    def top_level(self, root: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        seen: set[int] = set()
        pending = [root]
        while pending:
            value = pending.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            members = [k for k in self._kids(value)
                       if _MEMBER_SOURCE.fullmatch(str(_mechanism(k).get("source") or ""))]
            if _mechanism(value).get("is_exception_group") is True and members:
                pending.extend(reversed(members))
            else:
                found.append(value)
        return found

    def first_path(self, value: dict[str, Any]) -> list[dict[str, Any]]:
        path = [value]
        seen = {id(value)}
        while (kids := self._kids(path[-1])) and id(kids[0]) not in seen:
            seen.add(id(kids[0]))
            path.append(kids[0])
        return path

    def _ancestors(self, value: dict[str, Any]) -> list[dict[str, Any]]:
        """``value`` and its parents up to the root, root first."""
        chain = [value]
        seen = {id(value)}
        while (parent := self.by_id.get(_mechanism(chain[-1]).get("parent_id"))) is not None \
                and id(parent) not in seen:
            seen.add(id(parent))
            chain.append(parent)
        return chain[::-1]

    def common_ancestor(self, values: list[dict[str, Any]]) -> dict[str, Any]:
        chains = [self._ancestors(v) for v in values]
        common = self.root
        for level in zip(*chains, strict=False):
            if any(v is not level[0] for v in level):
                break
            common = level[0]
        return common


def _member_index(value: dict[str, Any]) -> tuple[int, int]:
    source = str(_mechanism(value).get("source") or "")
    match = re.search(r"\[(\d+)\]$", source)
    return (0, int(match.group(1)[:9])) if match else (1, 0)
