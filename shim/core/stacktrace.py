"""Rebuild a Python-style traceback text from the exception values of a Sentry event. Pure.

Sentry sends a chain oldest first: the cause, then what was raised while handling it, the last value
being the exception that actually propagated. Python prints chains in the same order, separated by a
line saying how each link relates; ``mechanism.source`` tells which when the SDK sends it
(``__cause__`` / ``cause`` for ``raise ... from``, ``__context__`` for an exception raised while
handling another). Python SDKs leave it out for plain chains; Python's wording for implicit chaining
is then used, which is also true of ``raise ... from`` inside an ``except`` block.
"""

from __future__ import annotations

import re
from typing import Any

DIRECT_CAUSE = "The above exception was the direct cause of the following exception:"
DURING_HANDLING = "During handling of the above exception, another exception occurred:"

_HIDDEN_MODULES = {"builtins", "__builtin__", "exceptions", "__main__", None, ""}
_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def frames_of(value: dict[str, Any]) -> list[dict[str, Any]]:
    """The frames of one exception value, tolerating the shapes SDKs actually send."""
    stacktrace = value.get("stacktrace")
    if not isinstance(stacktrace, dict):
        return []
    frames = stacktrace.get("frames")
    if not isinstance(frames, list):
        return []
    return [f for f in frames if isinstance(f, dict)]


def exception_line(value: dict[str, Any]) -> str:
    """``module.Type: value`` as Python prints it (builtins and ``__main__`` unqualified)."""
    type_name = str(value.get("type") or "Error")
    module = value.get("module")
    if (
        isinstance(module, str)
        and module not in _HIDDEN_MODULES
        # A Python module path: the Python SDK sends a nested class's qualified name
        # ("Outer.Error"), which Python prints after its module too. Other SDKs send an assembly
        # ("System.Private.CoreLib, Version=...") with an already qualified type.
        and _MODULE.fullmatch(module)
        and not type_name.startswith(f"{module}.")
    ):
        type_name = f"{module}.{type_name}"
    text = value.get("value")
    if text is None or text == "":
        return type_name
    return f"{type_name}: {text}"


def _frame_lines(frames: list[dict[str, Any]], lines: list[str]) -> None:
    """Append each frame's ``File ...`` line and its source line, as Python prints them."""
    for frame in frames:
        get = frame.get
        path = get("abs_path") or get("filename") or get("module") or "<unknown>"
        lineno = get("lineno")
        function = get("function") or "<module>"
        if lineno is None:
            lines.append(f'  File "{path}", in {function}')
        else:
            lines.append(f'  File "{path}", line {lineno}, in {function}')
        context_line = get("context_line")
        if isinstance(context_line, str) and (source := context_line.strip()):
            lines.append(f"    {source}")


def _mechanism(value: dict[str, Any]) -> dict[str, Any]:
    mechanism = value.get("mechanism")
    return mechanism if isinstance(mechanism, dict) else {}


def _separator(value: dict[str, Any]) -> str:
    source = _mechanism(value).get("source")
    return DIRECT_CAUSE if source in ("__cause__", "cause") else DURING_HANDLING


def _block(value: dict[str, Any], header: str = "Traceback (most recent call last):",
           suffix: str = "") -> list[str]:
    lines: list[str] = []
    frames = frames_of(value)
    if frames:
        lines.append(header)
        _frame_lines(frames, lines)
    lines.append(exception_line(value) + suffix)
    return lines


def _member_index(value: dict[str, Any]) -> int:
    source = str(_mechanism(value).get("source") or "")
    digits = source.removeprefix("exceptions[").removesuffix("]")
    return int(digits) if digits.isascii() and digits.isdigit() else 0


class _Tree:
    """Exceptions linked by ``mechanism.exception_id`` / ``parent_id`` (exception groups, and
    chains from SDKs that send the links), rendered the way Python prints them."""

    def __init__(self, values: list[dict[str, Any]]) -> None:
        self.children: dict[object, list[dict[str, Any]]] = {}
        for value in values:
            parent = _mechanism(value).get("parent_id")
            if parent is not None:
                self.children.setdefault(parent, []).append(value)
        self.seen: set[int] = set()

    def lines(self, node: dict[str, Any]) -> list[str]:
        if id(node) in self.seen:  # a malformed event could link in a cycle
            return [exception_line(node)]
        self.seen.add(id(node))
        children = self.children.get(_mechanism(node).get("exception_id"), [])
        members = sorted((c for c in children
                          if str(_mechanism(c).get("source") or "").startswith("exceptions[")),
                         key=_member_index)
        out: list[str] = []
        for cause in (c for c in children if not any(c is m for m in members)):
            out += [*self.lines(cause), "", _separator(cause), ""]
        if not members:
            return out + _block(node)
        plural = "s" if len(members) != 1 else ""
        out += _block(node, "Exception Group Traceback (most recent call last):",
                      f" ({len(members)} sub-exception{plural})")
        for number, member in enumerate(members, start=1):
            out.append(f"+---------------- {number} ----------------")
            out += [f"| {line}".rstrip() for line in self.lines(member)]
        out.append("+------------------------------------")
        return out


def render(values: list[dict[str, Any]]) -> str:
    """The traceback text of a whole chain (or exception group), in Python's order and wording."""
    linked = [v for v in values if _mechanism(v).get("parent_id") is not None]
    roots = [v for v in values if _mechanism(v).get("parent_id") is None]
    if linked and roots:
        return "\n".join(_Tree(values).lines(roots[-1]))
    blocks: list[str] = []
    for index, value in enumerate(values):
        blocks.append("\n".join(_block(value)))
        if index < len(values) - 1:
            blocks.append(_separator(value))
    return "\n\n".join(blocks)
