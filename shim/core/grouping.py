"""Fingerprints: which events are the same problem. Pure, versioned.

``GROUPING_VERSION`` is stored with every bug. A shipped version is never edited in place: a change to
what contributes to the hash gets a new version (and a new branch here), so existing bugs keep their
meaning.

Version 1 (Sentry's default grouping, simplified):
- a custom ``fingerprint`` from the event wins; ``{{ default }}`` in it expands to the default hash;
- exceptions: every exception of the chain contributes its type and its frames (module, else the file's
  basename; function; never line numbers). When any frame is in-app only in-app frames count. An
  exception's message counts only when it has no contributing frames;
- messages: the template before formatting, with variable parts (numbers, UUIDs, hex, IPs, e-mails,
  URLs, dates) replaced by placeholders.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from typing import Any

from shim.core.stacktrace import frames_of

GROUPING_VERSION = 1

# The scheme and the e-mail local part are bounded (32 and 64 characters): unbounded, every start
# position in a long run of letters would rescan the rest of the run, and a 1 MB message would take
# hours instead of milliseconds.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), placeholder)
    for pattern, placeholder in (
        (r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^\s'\"<>]+", "<url>"),
        (r"[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+", "<email>"),
        (r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b",
         "<uuid>"),
        (r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?",
         "<date>"),
        (r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b", "<time>"),
        (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "<ip>"),
        (r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b", "<ip>"),
        (r"\b0[xX][0-9a-fA-F]+\b", "<hex>"),
        (r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b", "<hex>"),
        (r"\d+(?:\.\d+)?", "<num>"),
    )
)

_VARIABLE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def normalize_message(text: str) -> str:
    """Replace the parts of a message that vary between occurrences of the same problem."""
    # Templates repeat (every record of a log call has the same one): short ones are remembered.
    return _remembered(text) if len(text) <= _REMEMBERED_LENGTH else _normalize(text)


def _normalize(text: str) -> str:
    for pattern, placeholder in _PATTERNS:
        # An e-mail address has an @: without one the pattern, which tries up to 64 characters
        # at every position of a run of letters, is skipped (2 s for a 3 MB message otherwise).
        if placeholder != "<email>" or "@" in text:
            text = pattern.sub(placeholder, text)
    return " ".join(text.split())


_REMEMBERED_LENGTH = 256  # with 4096 entries, at most a few MB
_remembered = functools.lru_cache(maxsize=4096)(_normalize)


def _frame_key(frame: dict[str, Any]) -> str:
    module = frame.get("module")
    if not module:
        path = str(frame.get("filename") or frame.get("abs_path") or "")
        module = re.split(r"[\\/]", path.split("?")[0])[-1]
    return f"{module}:{frame.get('function') or '?'}"


def _exception_parts(exceptions: Sequence[dict[str, Any]]) -> list[str]:
    frames_per_value = [frames_of(value) for value in exceptions]
    in_app_only = any(f.get("in_app") is True for frames in frames_per_value for f in frames)
    parts: list[str] = []
    for value, frames in zip(exceptions, frames_per_value, strict=True):
        parts.append(f"type:{value.get('type')}")
        if in_app_only:
            frames = [f for f in frames if f.get("in_app") is True]
        if frames:
            parts.extend(f"frame:{_frame_key(f)}" for f in frames)
        else:
            parts.append(f"value:{normalize_message(str(value.get('value') or ''))}")
    return parts


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _message_digest(template: str) -> str:
    return _digest([f"v{GROUPING_VERSION}", f"message:{normalize_message(template)}"])


# Every record of a log call has the same template: its fingerprint is remembered like its text.
_remembered_message_digest = functools.lru_cache(maxsize=4096)(_message_digest)


def default_fingerprint(
    exceptions: Sequence[dict[str, Any]], template: str | None, logger: str | None
) -> str:
    """The hash of what Sentry's default grouping looks at (see the module docstring)."""
    if exceptions:
        return _digest([f"v{GROUPING_VERSION}", *_exception_parts(exceptions)])
    if template:
        if len(template) <= _REMEMBERED_LENGTH:
            return _remembered_message_digest(template)
        return _message_digest(template)
    return _digest([f"v{GROUPING_VERSION}", f"empty:{logger or ''}"])


def fingerprint(
    custom: object,
    exceptions: Sequence[dict[str, Any]],
    template: str | None,
    variables: dict[str, str | None],
) -> str:
    """The event's fingerprint: its custom one (variables expanded) or the default."""
    default = default_fingerprint(exceptions, template, variables.get("logger"))
    if not isinstance(custom, list) or not custom:
        return default
    values = {**variables, "default": default}
    expanded = [
        _VARIABLE.sub(lambda m: str(values.get(m.group(1)) or f"<no {m.group(1)}>"), str(entry))
        for entry in custom
    ]
    if expanded == [default]:
        return default  # ["{{ default }}"] alone means "group as usual"
    return _digest([f"v{GROUPING_VERSION}", "custom", *expanded])
