"""Server-side scrubbing of secrets, before an event reaches the database or the backup log. Pure.

Values under sensitive keys (password, secret, token, api_key, authorization, cookie, session...,
plus any configured with ``SHIM_SCRUB_KEYS``) become ``[Filtered]`` wherever they appear: request
headers and cookies, extra, contexts, breadcrumbs, frame variables, log attributes. In free text
(messages, exception values, source lines, URLs) bearer tokens, ``key=value`` secrets and card
numbers that pass the Luhn check are filtered too. The SDK scrubs some of this already; the server
does not rely on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

FILTERED = "[Filtered]"
DEFAULT_KEYS = (
    "password", "passwd", "passphrase", "pwd", "secret", "token", "api_key", "apikey", "api-key",
    "authorization", "auth_token", "cookie", "set-cookie", "session", "sessionid", "csrf", "xsrf",
    "private_key", "credit_card", "card_number", "cvv", "cvc", "access_key", "signature", "dsn",
)
_MAX_DEPTH = 64
# Fields of frames and breadcrumbs that name code, places and times, never secrets: not scanned.
_STRUCTURAL = frozenset({"filename", "abs_path", "module", "function", "lineno", "colno",
                         "in_app", "package", "instruction_addr", "timestamp", "level",
                         "category"})

_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
# A card number stands alone: not inside a UUID, a hex id or any other word-like token.
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
_FOUR_DIGITS = re.compile(r"\d{4}")  # every card number has four digits in a row


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return FILTERED if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def _pattern(word: str) -> str:
    """``api_key`` also matches ``api-key`` and ``apikey``."""
    return "[-_]?".join(re.escape(piece) for piece in re.split(r"[-_]", word))


class Scrubber:
    """Scrubs with regular expressions, but only after a cheap test says a string could match:
    an event carries thousands of strings (frame variables, source lines, breadcrumbs) and almost
    none holds a secret."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        words = sorted({k.lower() for k in (*DEFAULT_KEYS, *extra_keys) if k}, key=len,
                       reverse=True)
        alternation = "|".join(_pattern(w) for w in words)
        self._key = re.compile(f"(?i)(?:{alternation})")
        # Any match contains the longest separator-free piece of its word: a safe prefilter.
        stems = sorted({max(re.split(r"[-_]", w), key=len) for w in words}, key=len, reverse=True)
        self._stems = re.compile("|".join(re.escape(stem) for stem in stems))
        # key=value / key: value / key = "value" in text (query strings, source lines, messages).
        self._assignment = re.compile(
            rf"(?i)\b([\w-]*?(?:{alternation})[\w-]*)(\s*[:=]\s*)([\"']?)"
            rf"(?!(?:bearer|basic|token)\s)[^\"'\s&,;)]+")
        self._sensitive: dict[str, bool] = {}

    def is_sensitive(self, key: str) -> bool:
        known = self._sensitive.get(key)
        if known is None:
            known = bool(self._key.search(key))
            if len(self._sensitive) < 50_000:  # key names repeat; bound the cache all the same
                self._sensitive[key] = known
        return known

    def text(self, value: str) -> str:
        if len(value) < 5:
            return value
        lower = value.lower()
        if "bearer" in lower or "basic" in lower or "token" in lower:
            value = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", value)
        if self._stems.search(lower):
            value = self._assignment.sub(
                lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{FILTERED}", value)
        if _FOUR_DIGITS.search(value):
            value = _CARD.sub(_card, value)
        return value

    def value(self, value: Any, depth: int = 0) -> Any:
        """A scrubbed copy of any JSON value."""
        if isinstance(value, str):
            return self.text(value)
        if depth > _MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {k: (v if k in _STRUCTURAL else
                        FILTERED if isinstance(k, str) and self.is_sensitive(k)
                        and v not in (None, "", [], {}) else self.value(v, depth + 1))
                    for k, v in value.items()}
        if isinstance(value, list):
            if (len(value) == 2 and isinstance(value[0], str) and self.is_sensitive(value[0])
                    and value[1] not in (None, "")):
                return [value[0], FILTERED]  # a [name, value] pair: headers, cookies, tags
            return [self.value(v, depth + 1) for v in value]
        return value


# Keys whose values are the server's own bookkeeping, never secrets: left untouched so that
# grouping and ids keep working even if a key name happens to match a pattern.
# ``modules`` (package -> version) and ``debug_meta`` are large and never hold secrets.
_UNTOUCHED = frozenset({"event_id", "timestamp", "platform", "level", "fingerprint", "sdk", "type",
                        "modules", "debug_meta"})


def scrub_event(event: dict[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    return {k: v if k in _UNTOUCHED else scrubber.value(v) for k, v in event.items()}
