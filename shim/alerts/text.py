"""User text made safe for each message format, and cut to a length. Pure.

Titles, messages and stack frames come from the events scripts send: anything may be in them.
Each format gets its own escaping, so ``<script>``, ``*bold*`` or ``&`` show as written and never
as markup, a link or a mention.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

ELLIPSIS = "…"
_MARKDOWN = re.compile(r"([\\`*_~|>#\[\]()!+\-.{}])")
_MENTION = re.compile(r"@(?=(everyone|here)\b)")


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending in ``…`` when it was cut."""
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[:limit - 1] + ELLIPSIS


def one_line(text: str) -> str:
    """Line breaks and runs of white space as single spaces (for titles and headings)."""
    return " ".join(text.split())


def slack(text: str) -> str:
    """Slack mrkdwn: ``&``, ``<`` and ``>`` are the characters Slack's docs ask to escape (``<``
    starts links and mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_code(text: str) -> str:
    """Text for a Slack code block: escaped, and unable to close the block early."""
    return slack(text).replace("```", "`\u200b``")


def markdown(text: str) -> str:
    """Discord's and Teams' Markdown: every marker character backslash-escaped, and
    ``@everyone``/``@here`` broken with a zero-width space so they never notify anyone."""
    return _MENTION.sub("@\u200b", _MARKDOWN.sub(r"\\\1", text))


def code_block(text: str) -> str:
    """A fenced Markdown code block of ``text`` that its content cannot close."""
    return "```\n" + text.replace("```", "`\u200b``") + "\n```"


def telegram(text: str) -> str:
    """Telegram's HTML parse mode: ``&``, ``<``, ``>`` and ``"`` as entities."""
    return html.escape(text, quote=True)


def email_html(text: str) -> str:
    return html.escape(text, quote=True)


def fitted(text: str, limit: int, escape: Callable[[str], str]) -> str:
    """``escape(text)`` in at most ``limit`` characters: the raw text is cut (never the escaped
    one, which could end inside an entity or an escape) until its escaped form fits."""
    keep = limit
    escaped = escape(cut(text, keep))
    while len(escaped) > limit and keep > 0:
        keep = min(keep - 1, keep * limit // len(escaped))
        escaped = escape(cut(text, keep))
    return escaped
