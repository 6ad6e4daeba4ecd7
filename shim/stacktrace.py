"""Rebuild a Python-style traceback text from the exception values of a Sentry event. Pure.

Sentry sends a chain oldest first: the cause, then what was raised while handling it, the last value
being the exception that actually propagated. Python prints chains in the same order, separated by a
line saying how each link relates; ``mechanism.source`` tells which when the SDK sends it
(``__cause__`` / ``cause`` for ``raise ... from``, ``__context__`` for an exception raised while
handling another). Python SDKs leave it out for plain chains; Python's wording for implicit chaining
is then used, which is also true of ``raise ... from`` inside an ``except`` block.
"""

from __future__ import annotations

from typing import Any

DIRECT_CAUSE = "The above exception was the direct cause of the following exception:"
DURING_HANDLING = "During handling of the above exception, another exception occurred:"

_HIDDEN_MODULES = {"builtins", "__builtin__", "exceptions", "__main__", None, ""}


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
    if isinstance(module, str) and module not in _HIDDEN_MODULES and "." not in type_name:
        type_name = f"{module}.{type_name}"
    text = value.get("value")
    if text is None or text == "":
        return type_name
    return f"{type_name}: {text}"


def _frame_lines(frame: dict[str, Any]) -> list[str]:
    path = frame.get("abs_path") or frame.get("filename") or frame.get("module") or "<unknown>"
    where = f'  File "{path}"'
    if frame.get("lineno") is not None:
        where += f", line {frame['lineno']}"
    where += f", in {frame.get('function') or '<module>'}"
    lines = [where]
    context_line = frame.get("context_line")
    if isinstance(context_line, str) and context_line.strip():
        lines.append(f"    {context_line.strip()}")
    return lines


def _separator(value: dict[str, Any]) -> str:
    mechanism = value.get("mechanism")
    source = mechanism.get("source") if isinstance(mechanism, dict) else None
    if source in ("__cause__", "cause"):
        return DIRECT_CAUSE
    if isinstance(source, str) and source.startswith("exceptions["):
        return f"The above exception is {source} of the following exception group:"
    return DURING_HANDLING


def render(values: list[dict[str, Any]]) -> str:
    """The traceback text of a whole chain, in Python's order and wording."""
    blocks: list[str] = []
    for index, value in enumerate(values):
        lines: list[str] = []
        frames = frames_of(value)
        if frames:
            lines.append("Traceback (most recent call last):")
            for frame in frames:
                lines.extend(_frame_lines(frame))
        lines.append(exception_line(value))
        blocks.append("\n".join(lines))
        if index < len(values) - 1:
            blocks.append(_separator(value))
    return "\n\n".join(blocks)
