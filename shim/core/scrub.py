"""Server-side scrubbing of secrets, before an event reaches the database or the backup log. Pure.

Values under sensitive keys (password, secret, token, api_key, authorization, cookie, session...,
plus any configured with ``SHIM_SCRUB_KEYS``) become ``[Filtered]`` wherever they appear: request
headers and cookies, extra, contexts, breadcrumbs, frame variables, log attributes. In free text
(messages, exception values, source lines, URLs) bearer tokens, ``key=value`` secrets and card
numbers that pass the Luhn check are filtered too. The SDK scrubs some of this already; the server
does not rely on it.

Almost no part of an event holds a secret, so before walking a part string by string the scrubber
asks one question of its JSON text: could anything in here match? One linear-time RE2 pass looks
for a key word where the walk could act on it (in a key, in a ``[name, value]`` pair, before a
``:`` or ``=`` in the same string), ``bearer``/``basic``/``token`` before something token-like,
any run of 13 digits, and the few non-ASCII characters that Python's case-insensitive matching or
``\\d`` would treat as a letter or digit of interest. A part with none of them is returned as it
is; the walk would have returned an equal copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson
import re2  # type: ignore[import-untyped]

FILTERED = "[Filtered]"
DEFAULT_KEYS = (
    "password", "passwd", "passphrase", "pwd", "secret", "token", "api_key", "apikey", "api-key",
    "authorization", "auth_token", "cookie", "set-cookie", "session", "sessionid", "csrf", "xsrf",
    "private_key", "credit_card", "card_number", "cvv", "cvc", "access_key", "signature", "dsn",
)
_MAX_DEPTH = 64
# Containers this deep or shallower get the one-pass test first (an event's parts, a breadcrumb's
# list, each breadcrumb and its data; each exception and its stack trace): a part that could hold a
# secret is walked, its clean siblings are not. A word in an exception's message ("unexpected
# token") then leaves its frames unwalked: 15% less time for such an event than with depth 2.
_PRETEST_DEPTH = 3
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


_COMMON_PIECES = frozenset({"number", "key", "id", "name"})


def _stem(word: str) -> str:
    pieces = sorted(re.split(r"[-_]", word), key=len, reverse=True)
    return next((p for p in pieces if p not in _COMMON_PIECES), pieces[0])


class Scrubber:
    """Scrubs with regular expressions, but only after a cheap test says a string could match:
    an event carries thousands of strings (frame variables, source lines, breadcrumbs) and almost
    none holds a secret."""

    def __init__(self, extra_keys: Iterable[str] = (), pretest: bool = True) -> None:
        words = sorted({k.lower() for k in (*DEFAULT_KEYS, *extra_keys) if k}, key=len,
                       reverse=True)
        alternation = "|".join(_pattern(w) for w in words)
        self._key = re.compile(f"(?i)(?:{alternation})")
        # Any match contains every separator-free piece of its word: a safe prefilter. The piece
        # taken is the longest, unless it is a common word of attribute names ("code.line.number").
        stems = sorted({_stem(w) for w in words}, key=len, reverse=True)
        self._stems = re.compile("|".join(re.escape(stem) for stem in stems))
        # key=value / key: value / key = "value" in text (query strings, source lines, messages).
        self._assignment = re.compile(
            rf"(?i)\b([\w-]*?(?:{alternation})[\w-]*)(\s*[:=]\s*)([\"']?)"
            rf"(?!(?:bearer|basic|token)\s)[^\"'\s&,;)]+")
        self._sensitive: dict[str, bool] = {}
        self._suspect = _suspect_pattern(stems)
        self._suspect_or: dict[bytes, Any] = {}
        self._pretest_depth = _PRETEST_DEPTH if pretest else -1  # -1: always walk (for tests)

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
        # An assignment has a key word before its ":" or "=" (its costly pattern is tried only
        # then: "unexpected token at offset 12" names a key word, and assigns nothing).
        stem = self._stems.search(lower)
        if stem and stem.start() < max(lower.rfind(":"), lower.rfind("=")):
            value = self._assignment.sub(
                lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{FILTERED}", value)
        if _FOUR_DIGITS.search(value):
            value = _CARD.sub(_card, value)
        return value

    def could_hold_secrets(self, value: dict[Any, Any] | list[Any]) -> bool:
        """False only when scrubbing ``value`` is sure to change nothing (see the module doc)."""
        try:
            text = orjson.dumps(value)
        except (orjson.JSONEncodeError, TypeError):  # nesting deeper than orjson writes
            return True
        return self.suspect_text(text) is not None

    def suspect_text(self, text: bytes) -> object:
        """The first thing in this JSON text that scrubbing could act on (None: nothing)."""
        return self._suspect.search(text)

    def suspect_or(self, alternatives: bytes) -> Any:
        """One RE2 pattern finding what ``suspect_text`` finds or any of ``alternatives``: a
        caller's own test of the same text in the same pass."""
        pattern = self._suspect_or.get(alternatives)
        if pattern is None:
            pattern = re2.compile(self._suspect.pattern + b"|" + alternatives)
            self._suspect_or[alternatives] = pattern
        return pattern

    def value(self, value: Any, depth: int = 0) -> Any:
        """A scrubbed copy of any JSON value (the value itself when nothing in it can change)."""
        if isinstance(value, str):
            return self.text(value)
        if depth > _MAX_DEPTH:
            return value
        if (depth <= self._pretest_depth and isinstance(value, dict | list)
                and not self.could_hold_secrets(value)):
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


# Characters outside ASCII that matter to the walk: those Python's case-insensitive matching
# equates with an ASCII letter (U+0130, U+0131, U+017F, U+212A; tests/test_scrub.py checks the
# list is complete), and the decimal digits of other scripts, which ``\\d`` matches.
_UNICODE_LOOKALIKES = r"[\x{130}\x{131}\x{17f}\x{212a}]|[^\P{Nd}0-9]"


# The rest of the JSON string a word was found in (escapes taken whole), and JSON's whitespace.
_REST = r'(?:[^"\\]|\\.)*?'
_SPACE = r"[ \t\n\r]*"


def _literal(words: Iterable[str]) -> str:
    """RE2 alternatives for ``words`` as JSON writes them, longest first."""
    escaped = (orjson.dumps(word)[1:-1].decode()
               for word in sorted(set(words), key=len, reverse=True))
    return "|".join("".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in word)
                    for word in escaped)


def _suspect_pattern(stems: Iterable[str]) -> Any:
    """Anything that a key, bearer, assignment or card match must contain, as one RE2 pattern
    over UTF-8 JSON text:

    - a key word in a key (``"...word...":``) or in the first string of a list (a
      ``[name, value]`` pair);
    - a key word followed, in the same string, by ``:`` or ``=`` (an assignment);
    - ``bearer``, ``basic`` or ``token`` followed, in the same string, by 8 characters of a token;
    - 13 digits in a row (with spaces or dashes between), a card number's least;
    - a character outside ASCII that Python's matching takes for one inside it.

    A key word in prose ("unexpected token at offset 12") is none of these. Words are looked for
    as JSON writes them (a configured key could hold a quote or a control character). Case-
    insensitive matching of non-ASCII letters is not the same in RE2 and Python, so a configured
    word outside ASCII sends every non-ASCII text to the walk."""
    stems = list(stems)
    keys, bearer = _literal(stems), _literal(["bearer", "basic", "token"])
    words = [*stems, "bearer", "basic", "token"]
    lookalikes = "[^\\x00-\\x7f]" if not all(w.isascii() for w in words) else _UNICODE_LOOKALIKES
    return re2.compile("|".join((
        f'(?i:{keys}){_REST}(?:[:=]|"{_SPACE}:)',
        f'\\[{_SPACE}"{_REST}(?i:{keys})',
        f"(?i:{bearer}){_REST}[A-Za-z0-9._~+/=-]{{8}}",
        lookalikes,
        "[0-9](?:[ -]?[0-9]){12}",
    )).encode())


# Keys whose values are the server's own bookkeeping, never secrets: left untouched so that
# grouping and ids keep working even if a key name happens to match a pattern.
# ``modules`` (package -> version) and ``debug_meta`` are large and never hold secrets.
_UNTOUCHED = frozenset({"event_id", "timestamp", "platform", "level", "fingerprint", "sdk", "type",
                        "modules", "debug_meta"})


DEFAULT_SCRUBBER = Scrubber()
"""The scrubber with the default key words only (no ``SHIM_SCRUB_KEYS``)."""


def scrub_event(event: dict[str, Any], scrubber: Scrubber,
                dumped: bytes | None = None) -> dict[str, Any]:
    """The event with every part but the bookkeeping scrubbed (the event itself when clean).

    ``dumped``, when given, is the whole event as JSON: testing it (bookkeeping included, so
    more than the parts) answers the one-pass test without serialising the parts again."""
    if dumped is not None:
        clean = scrubber.suspect_text(dumped) is None
    else:
        clean = not scrubber.could_hold_secrets({k: v for k, v in event.items()
                                                 if k not in _UNTOUCHED})
    if clean:  # the common case: one test for the whole event
        return event
    return {k: v if k in _UNTOUCHED else scrubber.value(v) for k, v in event.items()}
