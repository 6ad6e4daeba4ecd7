"""Discord webhooks: one embed, sent with ``?wait=true`` so Discord answers with the message it
created (200) or an error, instead of an empty 204 either way.

Limits from Discord's embed reference: title 256 characters, description 4,096, at most 25
fields of name 256 and value 1,024, footer 2,048, and 6,000 in all. User text is Markdown-escaped
and ``allowed_mentions`` is empty, so no title can ping anyone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shim.alerts import text
from shim.alerts.channels import Channel
from shim.alerts.render.request import HttpRequest
from shim.alerts.summary import Summary

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
MAX_FIELDS = 25
FOOTER_LIMIT = 2048
TOTAL_LIMIT = 6000


def render(channel: Channel, summary: Summary) -> HttpRequest:
    title = text.fitted(text.one_line(f"{summary.headline}: {summary.title}"), TITLE_LIMIT,
                        text.markdown)
    fields = [(text.fitted(label, FIELD_NAME_LIMIT, text.markdown),
               text.fitted(value, FIELD_VALUE_LIMIT, text.markdown) or "-")
              for label, value in summary.facts[:MAX_FIELDS]]
    footer = "shim"
    used = len(title) + len(footer) + sum(len(name) + len(value) for name, value in fields)
    room = min(DESCRIPTION_LIMIT, TOTAL_LIMIT - used)
    embed: dict[str, Any] = {"title": title, "description": _description(summary, room),
                             "color": summary.color,
                             "fields": [{"name": name, "value": value, "inline": len(value) < 40}
                                        for name, value in fields],
                             "footer": {"text": footer}}
    if summary.link and not summary.is_digest:
        embed["url"] = summary.link
    return HttpRequest.json(_waiting(channel.url), {
        "embeds": [embed], "allowed_mentions": {"parse": []}})


def _description(summary: Summary, room: int) -> str:
    if summary.is_digest:
        lines: list[str] = []
        used = 0
        for number, entry in enumerate(summary.entries):
            headline = text.markdown(entry.headline)
            label = f"[{headline}]({entry.link})" if entry.link else headline
            line = f"• {label}: {text.fitted(text.one_line(entry.title), 200, text.markdown)}"
            more = f"… and {len(summary.entries) - number} more"
            if used + len(line) + 1 > room - len(more) - 1:
                lines.append(more)
                break
            lines.append(line)
            used += len(line) + 1
        return "\n".join(lines)
    if not summary.detail:
        return ""
    fence = len(text.code_block(""))
    return text.code_block(text.fitted(summary.detail, room - fence, lambda s: s.replace(
        "```", "`\u200b``")))


def _waiting(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("wait", "true")])))
