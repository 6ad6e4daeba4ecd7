"""Grouping version 2: which events are the same problem, and why. Pure.

May import: the standard library and ``shim.core.grouping_v2`` itself, nothing else
(``tests/test_layers.py`` holds this): it reads an event dict and returns a hash.

Version 1 (``shim.core.grouping``) stays as it was for the bugs it made; this is a new version,
following Sentry's documented default grouping. The strongest thing the event has decides, in
this order (the ``variant`` of the result):

1. ``custom fingerprint``: the event's ``fingerprint`` list, with variables expanded (see
   ``custom``); ``["{{ default }}"]`` alone is the default grouping.
2. ``exception``: the chain with its stacks (``exceptions``, ``stacks``, ``frames``).
3. ``threads``: the stack of the crashed thread, else the current one, else the only one.
4. ``stacktrace``: a top-level stack trace.
   A stack that only comes with a message (no crash) leaves the message to decide: see
   ``variants.has_message``.
5. ``csp`` / ``expectct`` / ``expectstaple`` / ``hpkp``: security reports.
6. ``template``: a template's file name and line of source.
7. ``message``: the ``logentry`` template (before formatting) or message, masked (``mask``).
8. ``fallback``: the logger and transaction; without them the event is a group of its own.

Use::

    result = group(event)       # event: the event JSON object as the SDK sent it
    result.hash                 # 32 hex digits, the bug's fingerprint
    result.variant              # which of the above decided
    result.info()               # {"version": 2, "hash", "variant", "components"}: "why grouped"

``event`` is read, never changed. It is the object an SDK sends (``exception``, ``threads``,
``stacktrace``, ``logentry``/``message``, ``csp``, ``expectct``, ``expectstaple``, ``hpkp``,
``template``, ``fingerprint``, ``platform``, ``level``, ``logger``, ``transaction``, ``culprit``,
``tags``, ``event_id``; old ``sentry.interfaces.*`` keys too). ``TOP_LEVEL_KEYS`` and
``FRAME_KEYS`` list what it reads: a caller that slims events first must keep those.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shim.core.grouping_v2 import custom, variants
from shim.core.grouping_v2.variants import Variant

GROUPING_VERSION = 2

TOP_LEVEL_KEYS = frozenset({
    "exception", "threads", "stacktrace", "logentry", "message", "csp", "expectct",
    "expectstaple", "hpkp", "template", "fingerprint", "platform", "level", "logger",
    "transaction", "culprit", "tags", "event_id", "sentry.interfaces.Exception",
    "sentry.interfaces.Stacktrace", "sentry.interfaces.Template", "sentry.interfaces.Message",
    "sentry.interfaces.Csp", "csp-report", "expect-ct-report", "expect-staple-report",
})
"""The event keys grouping reads."""
FRAME_KEYS = frozenset({"filename", "abs_path", "module", "function", "raw_function", "symbol",
                        "package", "platform", "in_app", "context_line"})
"""The frame keys grouping reads (``package`` only for ``{{ package }}``)."""

_DEFAULT_ORDER: tuple[Callable[[dict[str, Any], str], Variant | None], ...] = (
    variants.exception,
    variants.threads,
    variants.stacktrace,
    lambda event, _platform: variants.security(event),
    lambda event, _platform: variants.template(event),
    lambda event, _platform: variants.message(event),
)


@dataclass(frozen=True, slots=True)
class Grouping:
    """The fingerprint of an event and why: the variant that decided and what contributed."""

    hash: str
    variant: str
    components: dict[str, Any]
    version: int = GROUPING_VERSION

    def info(self) -> dict[str, Any]:
        """The "why grouped" record, JSON-able and bounded in size."""
        return {"version": self.version, "hash": self.hash, "variant": self.variant,
                "components": self.components}


def group(event: dict[str, Any]) -> Grouping:
    """The event's group (see the module docstring)."""
    default = default_grouping(event)
    fingerprint = event.get("fingerprint")
    if not isinstance(fingerprint, list) or not fingerprint or custom.is_default(fingerprint):
        return default
    values = custom.expand(fingerprint, default.hash, custom.facts(event))
    components: dict[str, Any] = {"fingerprint": [str(v)[:200] for v in fingerprint[:50]],
                                  "values": [v[:200] for v in values[:50]]}
    if custom.uses_default(fingerprint):
        components["default"] = default.info()
    return Grouping(_digest("custom fingerprint", values), "custom fingerprint", components)


def default_grouping(event: dict[str, Any]) -> Grouping:
    """The event's group when its own ``fingerprint`` is left aside."""
    platform = str(event.get("platform") or "other").lower()
    for variant in _DEFAULT_ORDER:
        found = variant(event, platform)
        if found is not None:
            return _grouping(found)
    return _grouping(variants.fallback(event))


def _grouping(variant: Variant) -> Grouping:
    return Grouping(_digest(variant.name, variant.parts), variant.name, variant.components)


def _digest(variant: str, parts: list[str]) -> str:
    """The hash of the version, the variant and the parts, one per line (encoded once)."""
    text = "\n".join((f"v{GROUPING_VERSION}\n{variant}", *parts))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
