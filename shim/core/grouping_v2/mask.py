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

from shim.core.grouping import MASKS

MASKED_PREFIX = 4096
"""How many characters of a text are masked and grouped on; the rest never counts."""

# The same placeholders as version 1 (``shim.core.grouping.MASKS``, each pattern linear on its
# input): version 2 changes what is masked (a bounded prefix), not how.
_PATTERNS = MASKS


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
