"""Properties, over any text a script could put in a bug: every renderer stays within its
service's limits, and parsing any channel URL ends in a channel or a ``ChannelError``."""

from __future__ import annotations

from typing import Any

import orjson
from alert_samples import bug_alert, digest
from hypothesis import given, settings
from hypothesis import strategies as st
from receivers import DISCORD, DISCORD_TOTAL, SLACK_HEADER, SLACK_SECTION, TELEGRAM_TEXT

from shim.alerts.channels import ChannelError, parse_channel
from shim.alerts.model import Message
from shim.alerts.render import HttpRequest, render

CHANNELS = {kind: parse_channel(url) for kind, url in {
    "slack": "slack+http://127.0.0.1:1/services/T/B/x",
    "discord": "discord+http://127.0.0.1:1/api/webhooks/1/x",
    "teams": "teams+http://127.0.0.1:1/workflows/x",
    "telegram": "telegram+http://127.0.0.1:1/bot1:x/sendMessage?chat_id=1",
}.items()}
# Characters that escaping makes longer, line breaks, emoji and other planes.
TEXT = st.text(alphabet=st.sampled_from("&<>*_~`|[]()#@\\\"' \nab\u00e9\u4e2d\U0001f525"),
               max_size=6000) | st.text(max_size=300)


def document(kind: str, message: Message) -> Any:
    request = render(CHANNELS[kind], message, "https://shim.example.org/")
    assert isinstance(request, HttpRequest)
    return orjson.loads(request.body)


@settings(max_examples=60, deadline=None)
@given(title=TEXT, error=TEXT, frame=TEXT, component=TEXT)
def test_every_renderer_stays_within_its_limits(title: str, error: str, frame: str,
                                                component: str) -> None:
    alert = bug_alert(title=title, error_message=error, top_frame=frame, component=component)
    slack = document("slack", alert)
    assert 0 < len(slack["text"]) <= SLACK_SECTION
    for block in slack["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= SLACK_HEADER
        for field in block.get("fields", []):
            assert 0 < len(field["text"]) <= 2000
        if "text" in block and block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= SLACK_SECTION
    [embed] = document("discord", alert)["embeds"]
    assert len(embed["title"]) <= DISCORD["title"]
    assert len(embed["description"]) <= DISCORD["description"]
    assert all(0 < len(f["value"]) <= DISCORD["value"] for f in embed["fields"])
    total = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"]) + sum(
        len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= DISCORD_TOTAL
    telegram = document("telegram", alert)["text"]
    assert 0 < len(telegram) <= TELEGRAM_TEXT
    assert len(orjson.dumps(document("teams", alert))) < 28_000


@settings(max_examples=10, deadline=None)
@given(count=st.integers(2, 600))
def test_digests_stay_within_the_limits(count: int) -> None:
    message = digest(count)
    assert len(document("slack", message)["blocks"]) <= 50
    [embed] = document("discord", message)["embeds"]
    assert len(embed["description"]) <= DISCORD["description"]
    assert len(document("telegram", message)["text"]) <= TELEGRAM_TEXT
    assert len(orjson.dumps(document("teams", message))) < 28_000


@settings(max_examples=300, deadline=None)
@given(url=st.text(max_size=120) | st.builds(
    lambda kind, rest: f"{kind}{rest}",
    st.sampled_from(["slack+https://", "telegram+http://", "smtp://", "smtps://", "https://",
                     "discord+", "webhook+http://[", "http://h:"]),
    st.text(max_size=80)))
def test_any_channel_url_parses_or_is_refused_clearly(url: str) -> None:
    try:
        channel = parse_channel(url)
    except ChannelError as exc:
        assert str(exc)
    else:
        assert channel.kind and channel.masked
