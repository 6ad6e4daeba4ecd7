"""The default grouping's variants, strongest first, each a pure function of the event that says
what it contributes or None when the event has nothing of that kind.

A variant is (name, hash parts, components): the parts are hashed, the components are the "why
grouped" record (JSON-able, bounded: a stack lists its innermost ``INFO_FRAMES`` frames).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from shim.core.grouping_v2 import exceptions
from shim.core.grouping_v2.frames import javascript_filename, names_code
from shim.core.grouping_v2.mask import mask
from shim.core.grouping_v2.stacks import any_in_app, frames_of, stack_keys

INFO_FRAMES = 20
"""How many frames (the innermost) a stack's "why grouped" record lists."""
INFO_EXCEPTIONS = 10
"""How many exceptions (the newest) of a chain the record lists."""
INFO_TEXT = 500
"""How many characters of a masked value or message the record shows."""


class Variant(NamedTuple):
    name: str
    parts: list[str]
    components: dict[str, Any]


# The keys old clients (``sentry.interfaces.*``) and browsers' own reports used.
OTHER_KEYS = {
    "stacktrace": ("sentry.interfaces.Stacktrace",),
    "template": ("sentry.interfaces.Template",),
    "csp": ("sentry.interfaces.Csp", "csp-report"),
    "expectct": ("expect-ct-report",),
    "expectstaple": ("expect-staple-report",),
}


def interface(event: dict[str, Any], name: str) -> Any:
    """An interface by its current key, else by a key old clients or raw reports used."""
    for key in (name, *OTHER_KEYS.get(name, ())):
        value = event.get(key)
        if value is not None:
            return value
    return None


def _stack_info(keys: list[str]) -> dict[str, Any]:
    return {"frames": keys[-INFO_FRAMES:], "frame_count": len(keys)}


# --- exceptions, threads, stack trace ---------------------------------------------------------


def threads_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    raw = interface(event, "threads")
    values = raw.get("values") if isinstance(raw, dict) else raw
    return [t for t in values if isinstance(t, dict)] if isinstance(values, list) else []


def _frames_by_thread(event: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {str(t.get("id")): frames_of(t) for t in threads_of(event) if t.get("id") is not None}


def exception(event: dict[str, Any], platform: str) -> Variant | None:
    values = exceptions.exception_values(event)
    if not values or (all(exceptions.is_synthetic(v) for v in values) and has_message(event)):
        return None  # a message with its stack attached: see ``has_message``
    by_thread = _frames_by_thread(event)

    def signature(chain: list[dict[str, Any]]) -> str:
        parts = [exceptions.part_of(v, by_thread) for v in chain]
        return "\n".join(_exception_parts(parts, platform, any_in_app(p.frames for p in parts))[0])

    chosen, how = exceptions.considered(values, signature)
    parts = [exceptions.part_of(v, by_thread) for v in chosen]
    in_app_only = any_in_app(p.frames for p in parts)
    hashed, infos = _exception_parts(parts, platform, in_app_only)
    if not hashed:
        return None
    components = {"exceptions": infos[-INFO_EXCEPTIONS:], "exception_count": len(infos),
                  "frames": "in-app" if in_app_only else "all", "chosen": how}
    return Variant("exception", hashed, components)


def _exception_parts(parts: list[exceptions.Part], platform: str,
                     in_app_only: bool) -> tuple[list[str], list[dict[str, Any]]]:
    hashed: list[str] = []
    infos: list[dict[str, Any]] = []
    for part in parts:
        info: dict[str, Any] = {}
        if part.type:
            hashed.append(f"type:{part.type}")
            info["type"] = part.type
        if part.ns_error:
            hashed.append(f"ns_error:{part.ns_error}")
            info["ns_error"] = part.ns_error
        keys = stack_keys(part.frames, platform, in_app_only)
        if keys:
            hashed.extend(f"frame:{key}" for key in keys)
            info.update(_stack_info(keys))
        if part.value and not any(names_code(key) for key in keys):
            # The stack cannot decide (no frame names a function or a line of source: none at
            # all, or only the files of minified code): the value, masked, does.
            hashed.append(f"value:{part.value}")
            info["value"] = part.value[:INFO_TEXT]
        if info:
            infos.append(info)
    return hashed, infos


def pick_thread(threads: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The thread whose stack tells the problem: the crashed one, else the current one, else the
    only one with a stack."""
    with_stack = [t for t in threads if frames_of(t)]
    for flag in ("crashed", "current"):
        if chosen := next((t for t in with_stack if t.get(flag) is True), None):
            return chosen
    return with_stack[0] if len(with_stack) == 1 else None


def threads(event: dict[str, Any], platform: str) -> Variant | None:
    thread = pick_thread(threads_of(event))
    if thread is None or (thread.get("crashed") is not True and has_message(event)):
        return None
    return _stack_variant("threads", frames_of(thread), platform,
                          {"thread": "crashed" if thread.get("crashed") is True else
                           "current" if thread.get("current") is True else "only"})


def stacktrace(event: dict[str, Any], platform: str) -> Variant | None:
    if has_message(event):
        return None
    return _stack_variant("stacktrace", frames_of(interface(event, "stacktrace")), platform, {})


def _stack_variant(name: str, frames: list[dict[str, Any]], platform: str,
                   components: dict[str, Any]) -> Variant | None:
    in_app_only = any_in_app([frames])
    keys = stack_keys(frames, platform, in_app_only)
    if not keys:
        return None
    components = {**components, "frames_from": "in-app" if in_app_only else "all",
                  **_stack_info(keys)}
    return Variant(name, [f"frame:{key}" for key in keys], components)


# --- security reports, template, message ----------------------------------------------------

_LOCAL_SOURCES = frozenset({"", "self", "'self'", "inline", "'unsafe-inline'", "eval",
                            "'unsafe-eval'", "wasm-eval", "'wasm-unsafe-eval'", "trusted-types-sink",
                            "data", "blob"})
_URI = re.compile(r"^([a-z][a-z0-9+.-]*):(?://([^/?#]*))?", re.IGNORECASE)


def _field(report: dict[str, Any], name: str) -> str:
    """A report field, spelt with underscores (Sentry's event) or hyphens (the browser's)."""
    value = report.get(name, report.get(name.replace("_", "-")))
    return value.strip() if isinstance(value, str) else ""


def _report(event: dict[str, Any], name: str, raw_key: str) -> dict[str, Any] | None:
    report = interface(event, name)
    if isinstance(report, dict) and isinstance(report.get(raw_key), dict):
        report = report[raw_key]  # the browser's own envelope: {"csp-report": {...}}
    return report if isinstance(report, dict) else None


def security(event: dict[str, Any]) -> Variant | None:
    """CSP by directive and blocked source (its scheme and host, or the local keyword);
    Expect-CT, Expect-Staple and HPKP by host name."""
    csp = _report(event, "csp", "csp-report")
    if csp is not None:
        directive = (_field(csp, "effective_directive")
                     or _field(csp, "violated_directive").split(" ")[0]).lower()
        source = _blocked_source(_field(csp, "blocked_uri"))
        return Variant("csp", [f"directive:{directive}", f"blocked:{source}"],
                       {"directive": directive, "blocked": source})
    for name, raw_key in (("expectct", "expect-ct-report"),
                          ("expectstaple", "expect-staple-report"), ("hpkp", "hpkp-report")):
        report = _report(event, name, raw_key)
        if report is not None:
            host = _field(report, "hostname").lower().rstrip(".")
            return Variant(name, [f"hostname:{host}"], {"hostname": host})
    return None


_KEYWORDS = {"unsafe-inline": "inline", "unsafe-eval": "eval", "wasm-unsafe-eval": "wasm-eval",
             "": "self"}


def _blocked_source(uri: str) -> str:
    if uri.lower() in _LOCAL_SOURCES:
        keyword = uri.strip("'").lower()
        return _KEYWORDS.get(keyword, keyword)
    match = _URI.match(uri)
    if not match:
        return uri.split("/")[0].lower()
    scheme, host = match.group(1).lower(), (match.group(2) or "").lower()
    host = host.rsplit("@", 1)[-1]  # never a user name
    return f"{scheme}://{host}" if host else f"{scheme}:"


def template(event: dict[str, Any]) -> Variant | None:
    """A template engine's error: the template file and its line of source."""
    raw = interface(event, "template")
    if not isinstance(raw, dict):
        return None
    path = str(raw.get("filename") or raw.get("abs_path") or "")
    filename = javascript_filename(path) if "://" in path else path.replace("\\", "/")
    line = " ".join(str(raw.get("context_line") or "").split())[:200]
    if not filename and not line:
        return None
    return Variant("template", [f"file:{filename}", f"line:{line}"],
                   {"filename": filename, "context_line": line})


def message_template(event: dict[str, Any]) -> str | None:
    """The message as logged, before formatting when the SDK sent that."""
    for key in ("logentry", "sentry.interfaces.Message", "message"):
        raw = event.get(key)
        if isinstance(raw, str) and raw.strip():
            return raw
        if isinstance(raw, dict):
            for field in ("message", "formatted"):
                text = raw.get(field)
                if isinstance(text, str) and text.strip():
                    return text
    return None


def has_message(event: dict[str, Any]) -> bool:
    """Whether the event is a message. A stack that comes with a message and no crash (a thread
    that did not crash, a top-level stack trace, an exception the SDK made up: what
    ``attach_stacktrace`` adds, and sentry-python 3.x does so by default) says where the message was
    logged, not what failed: the message decides. Sentry puts that stack first and tells call sites
    apart by their source lines, which are never hashed here where a function is known; grouping
    by the message keeps the messages of one function apart, and keeps an event from sentry-sdk 2.x
    (no stack) in the same group as the same event from 3.x."""
    return message_template(event) is not None


def message(event: dict[str, Any]) -> Variant | None:
    text = message_template(event)
    if text is None:
        return None
    masked = mask(text)
    return Variant("message", [f"message:{masked}"], {"message": masked[:INFO_TEXT]})


def fallback(event: dict[str, Any]) -> Variant:
    """Nothing above: the logger and the transaction (or culprit) decide. An event with none of
    them has nothing in common with another and is a group of its own (its event id)."""
    found = {key: str(event[key]) for key in ("logger", "transaction", "culprit")
             if isinstance(event.get(key), str) and event[key].strip()}
    if not found:
        found = {"event_id": str(event.get("event_id") or "")}
    return Variant("fallback", [f"{key}:{value}" for key, value in sorted(found.items())], found)
