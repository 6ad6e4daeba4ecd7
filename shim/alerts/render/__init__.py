"""One renderer per kind of channel: a ``Message`` (an alert or a digest) as the request that
kind's receiver expects. Pure: nothing here sends anything (``shim.alerts.send`` does).

``render(channel, message, public_url, webhook_secret)`` returns an ``HttpRequest`` for the HTTP
kinds and an ``email.message.EmailMessage`` for e-mail.
"""

from __future__ import annotations

from email.message import EmailMessage

from shim.alerts.channels import Channel
from shim.alerts.model import Message
from shim.alerts.render import discord, email, slack, teams, telegram, webhook
from shim.alerts.render.request import HttpRequest
from shim.alerts.summary import summarize

__all__ = ["HttpRequest", "render"]


def render(channel: Channel, message: Message, public_url: str | None = None,
           webhook_secret: str | None = None) -> HttpRequest | EmailMessage:
    if channel.kind == "webhook":
        return webhook.render(channel, message, public_url, webhook_secret)
    summary = summarize(message, public_url)
    if channel.kind == "email":
        return email.render(channel, summary)
    kinds = {"slack": slack.render, "discord": discord.render, "teams": teams.render,
             "telegram": telegram.render}
    return kinds[channel.kind](channel, summary)
