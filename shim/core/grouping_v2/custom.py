"""A custom ``fingerprint`` sent with the event, and its variables. Pure.

The fingerprint is a list of strings; each ``{{ name }}`` in them is replaced, as Sentry's
fingerprint rules document: ``default`` (the default grouping's hash), ``transaction``,
``type``/``error.type`` and ``value``/``error.value`` (the most recent exception),
``function``/``stack.function``, ``module``/``stack.module``, ``path``/``stack.abs_path``,
``stack.filename`` and ``package``/``stack.package`` (the crashing frame: the innermost in-app
frame, else the innermost), ``logger``, ``level``, ``message`` and ``tags.NAME``. A variable the
event has no value for reads ``<no NAME>``, the same in every event.
"""

from __future__ import annotations

import re
from typing import Any

from shim.core.grouping_v2 import exceptions, variants
from shim.core.grouping_v2.stacks import frames_of

_VARIABLE = re.compile(r"\{\{\s*([\w.\-]+)\s*\}\}")
_ALIASES = {"type": "error.type", "value": "error.value", "function": "stack.function",
            "module": "stack.module", "path": "stack.abs_path", "package": "stack.package"}
_LEVELS = {"warn": "warning", "critical": "fatal", "10": "debug", "20": "info", "30": "warning",
           "40": "error", "50": "fatal"}


def is_default(fingerprint: list[Any]) -> bool:
    """``["{{ default }}"]``: group as usual."""
    return len(fingerprint) == 1 and _is_default_entry(fingerprint[0])


def uses_default(fingerprint: list[Any]) -> bool:
    return any(_is_default_entry(entry) for entry in fingerprint)


def _is_default_entry(entry: object) -> bool:
    match = _VARIABLE.fullmatch(str(entry).strip())
    return match is not None and match.group(1) == "default"


def expand(fingerprint: list[Any], default: str, facts: dict[str, str | None]) -> list[str]:
    """Each entry with its variables replaced."""
    values = {**facts, "default": default}

    def value(match: re.Match[str]) -> str:
        name = _ALIASES.get(match.group(1), match.group(1))
        found = values.get(name)
        return found if found else f"<no {name}>"

    return [_VARIABLE.sub(value, entry if isinstance(entry, str) else str(entry))
            for entry in fingerprint]


def facts(event: dict[str, Any]) -> dict[str, str | None]:
    """The values the variables read."""
    found: dict[str, str | None] = {
        "transaction": _text(event.get("transaction")),
        "logger": _text(event.get("logger")),
        "level": _level(event.get("level")),
        "message": _text(variants.message_template(event)),
    }
    values = exceptions.exception_values(event)
    typed = [v for v in values if _text(v.get("type"))]
    primary = typed[-1] if typed else None
    if primary is not None:
        found["error.type"] = _text(primary.get("type"))
        found["error.value"] = _text(primary.get("value"))
    frame = _crashing_frame(event, values)
    if frame is not None:
        for name, keys in (("stack.function", ("function", "raw_function", "symbol")),
                           ("stack.module", ("module",)), ("stack.abs_path", ("abs_path", "filename")),
                           ("stack.filename", ("filename", "abs_path")),
                           ("stack.package", ("package",))):
            found[name] = next((t for key in keys if (t := _text(frame.get(key)))), None)
    for name, value in _tags(event.get("tags")).items():
        found[f"tags.{name}"] = value
    return found


def _crashing_frame(event: dict[str, Any], values: list[dict[str, Any]]) -> dict[str, Any] | None:
    stacks = [frames_of(v) for v in reversed(values)]
    thread = variants.pick_thread(variants.threads_of(event))
    stacks += [frames_of(thread), frames_of(variants.interface(event, "stacktrace"))]
    for frames in stacks:
        if frames:
            return next((f for f in reversed(frames) if f.get("in_app") is True), frames[-1])
    return None


def _tags(raw: object) -> dict[str, str]:
    pairs: list[Any]
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = [p for p in raw if isinstance(p, list | tuple) and len(p) == 2]
    else:
        return {}
    return {str(k): str(v) for k, v in pairs if v is not None and str(v) != ""}


def _level(raw: object) -> str | None:
    text = _text(raw if isinstance(raw, str) else str(raw) if isinstance(raw, int) else None)
    return _LEVELS.get(text.lower(), text.lower()) if text else None


def _text(value: object) -> str | None:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    return str(value).strip() or None
