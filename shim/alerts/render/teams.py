"""Microsoft Teams Workflows webhooks (the "Post to a channel when a webhook request is
received" workflow): a message with one Adaptive Card attachment.

A card's TextBlocks and FactSet render a subset of Markdown, so user text is Markdown-escaped.
Teams refuses messages over about 28 KB; the detail and the digest are cut well inside that.
"""

from __future__ import annotations

from typing import Any

from shim.alerts import text
from shim.alerts.channels import Channel
from shim.alerts.render.request import HttpRequest
from shim.alerts.summary import Summary

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
TITLE_LIMIT = 500
DETAIL_LIMIT = 3000
MAX_ENTRIES = 40
STYLES = {0xD93025: "attention", 0xF29900: "warning", 0x1E8E3E: "good"}


def render(channel: Channel, summary: Summary) -> HttpRequest:
    body: list[dict[str, Any]] = [
        _block(text.markdown(text.one_line(summary.headline)), weight="Bolder", size="Medium",
               color=STYLES.get(summary.color, "default")),
        _block(text.fitted(summary.title, TITLE_LIMIT, text.markdown)),
    ]
    if summary.facts:
        body.append({"type": "FactSet", "facts": [
            {"title": text.markdown(label), "value": text.fitted(value, TITLE_LIMIT,
                                                                 text.markdown)}
            for label, value in summary.facts]})
    if summary.detail:
        body.append(_block(text.fitted(summary.detail, DETAIL_LIMIT, text.markdown),
                           fontType="Monospace"))
    for entry in summary.entries[:MAX_ENTRIES]:
        line = text.fitted(f"{entry.headline}: {text.one_line(entry.title)}", 300,
                           text.markdown)
        body.append(_block(f"[{line}]({entry.link})" if entry.link else line,
                           spacing="Small"))
    if len(summary.entries) > MAX_ENTRIES:
        body.append(_block(f"… and {len(summary.entries) - MAX_ENTRIES} more", isSubtle=True))
    card: dict[str, Any] = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard",
                            "version": CARD_VERSION, "body": body, "msteams": {"width": "Full"}}
    if summary.link and not summary.is_digest:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in shim",
                            "url": summary.link}]
    return HttpRequest.json(channel.url, {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": card}]})


def _block(value: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": value, "wrap": True, **style}
