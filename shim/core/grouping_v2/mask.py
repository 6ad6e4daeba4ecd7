"""Masking the variable parts of a message or an exception value. Pure.

Numbers, UUIDs, hashes, hex, IPs, e-mails, URLs, dates and times are replaced by placeholders, so
two occurrences of one problem that differ only in such values read the same. Only the first
``MASKED_PREFIX`` characters of a text take part: two texts that agree on their first 4,096
characters (after masking) are the same problem. That bounds the cost of a 1 MB message to that of a
4 kB one (version 1 masks every character, 0.4 s per MB), and Sentry itself trims a message to a
few kB before grouping, so a difference beyond that point never decided a group there either.
"""

from __future__ import annotations

import functools
import re

MASKED_PREFIX = 4096
"""How many characters of a text are masked and grouped on; the rest never counts."""

# Each pattern is linear on its input: the scheme and the e-mail local part are bounded, as in
# version 1, so no start position rescans an unbounded run. They are version 1's patterns, kept
# here rather than imported: each version's hashing code stands alone (tests/test_layers.py), so
# neither can change the other's hashes.
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


def mask(text: str) -> str:
    """``text``'s first ``MASKED_PREFIX`` characters with their variable parts replaced and their
    whitespace collapsed: what a message or an exception value contributes to a group."""
    return _mask_prefix(text[:MASKED_PREFIX])


@functools.lru_cache(maxsize=4096)  # log templates repeat: each is masked once (at most ~16 MB)
def _mask_prefix(text: str) -> str:
    for pattern, placeholder in _PATTERNS:
        # Without an @ there is no e-mail address to find: skip the pattern's scan.
        if placeholder != "<email>" or "@" in text:
            text = pattern.sub(placeholder, text)
    return " ".join(text.split())
