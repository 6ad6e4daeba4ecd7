"""Telegram's Bot API ``sendMessage``: HTML text of at most 4,096 characters.

The limit counts the text after entity parsing; we keep the HTML itself within it, which is
stricter and always safe. User text is HTML-escaped and cut before escaping, so no tag or entity
is ever cut in two. ``message_thread_id`` (a forum topic) comes from the channel URL.
"""

from __future__ import annotations

from typing import Any

from shim.alerts import text
from shim.alerts.channels import Channel
from shim.alerts.render.request import HttpRequest
from shim.alerts.summary import Summary

TEXT_LIMIT = 4096
TITLE_LIMIT = 600


def render(channel: Channel, summary: Summary) -> HttpRequest:
    document: dict[str, Any] = {"chat_id": channel.options["chat_id"],
                                "text": message_text(summary), "parse_mode": "HTML",
                                "link_preview_options": {"is_disabled": True}}
    if "message_thread_id" in channel.options:
        document["message_thread_id"] = channel.options["message_thread_id"]
    return HttpRequest.json(channel.url, document)


def message_text(summary: Summary) -> str:
    """The HTML text: the head (headline, title, facts, link) first, then as much of the detail
    or of the digest's entries as fits."""
    esc = text.telegram
    head = [f"<b>{esc(text.one_line(summary.headline))}</b>",
            text.fitted(summary.title, TITLE_LIMIT, esc)]
    head += [f"<b>{esc(label)}:</b> {text.fitted(value, 300, esc)}"
             for label, value in summary.facts]
    tail = [f'<a href="{esc(summary.link)}">Open in shim</a>'] if summary.link else []
    used = sum(len(p) + 1 for p in [*head, *tail])
    room = TEXT_LIMIT - used
    middle: list[str] = []
    if summary.detail and room > 20:
        middle.append(f"<pre>{text.fitted(summary.detail, room - 12, esc)}</pre>")
    for number, entry in enumerate(summary.entries):
        title = text.fitted(text.one_line(entry.title), 200, esc)
        label = (f'<a href="{esc(entry.link)}">{esc(entry.headline)}</a>' if entry.link
                 else esc(entry.headline))
        line = f"• {label}: {title}"
        more = f"… and {len(summary.entries) - number} more"
        if len(line) + 1 > room - len(more) - 1:
            middle.append(more)
            break
        middle.append(line)
        room -= len(line) + 1
    return "\n".join([*head, *middle, *tail])[:TEXT_LIMIT]
