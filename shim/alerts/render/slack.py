"""Slack incoming webhooks: ``text`` (the notification's fallback) plus Block Kit ``blocks``.

Limits from Slack's Block Kit reference: a header's plain text 150 characters, a section's text
3,000, each of a section's at most 10 fields 2,000, a button's URL 3,000, 50 blocks a message.
User text goes in ``plain_text`` objects, where nothing is markup, or in a code block; the
fallback ``text`` is escaped for mrkdwn (``&``, ``<``, ``>``).
"""

from __future__ import annotations

from typing import Any

from shim.alerts import text
from shim.alerts.channels import Channel
from shim.alerts.render.request import HttpRequest
from shim.alerts.summary import Summary

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
URL_LIMIT = 3000
FALLBACK_LIMIT = 3000  # Slack truncates `text` far later (40,000); a notification shows little


def render(channel: Channel, summary: Summary) -> HttpRequest:
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(
        text.cut(text.one_line(summary.headline), HEADER_LIMIT))}]
    if summary.is_digest:
        blocks.append(_section(summary.title, None))
        room = MAX_BLOCKS - len(blocks) - 1
        shown = summary.entries[:room]
        blocks += [_section(f"{e.headline}: {text.one_line(e.title)}", e.link) for e in shown]
        if len(summary.entries) > len(shown):
            blocks.append({"type": "context", "elements": [_plain(
                f"… and {len(summary.entries) - len(shown)} more")]})
    else:
        blocks.append(_section(summary.title, summary.link))
        if summary.facts:
            blocks.append({"type": "section", "fields": [
                _plain(text.cut(f"{label}: {value}", FIELD_LIMIT))
                for label, value in summary.facts[:MAX_FIELDS]]})
        if summary.detail:
            fence = len("```\n\n```")
            body = text.fitted(summary.detail, SECTION_LIMIT - fence, text.slack_code)
            blocks.append({"type": "section", "text": {
                "type": "mrkdwn", "text": f"```\n{body}\n```"}})
    fallback = text.fitted(f"{summary.headline}: {text.one_line(summary.title)}",
                           FALLBACK_LIMIT, text.slack)
    return HttpRequest.json(channel.url, {"text": fallback, "blocks": blocks})


def _plain(value: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": value or " ", "emoji": False}


def _section(value: str, link: str | None) -> dict[str, Any]:
    section: dict[str, Any] = {"type": "section",
                               "text": _plain(text.cut(value, SECTION_LIMIT))}
    if link and len(link) <= URL_LIMIT:
        section["accessory"] = {"type": "button", "text": _plain("Open"), "url": link}
    return section
