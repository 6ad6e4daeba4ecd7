"""``shim channels list`` and ``shim channels test NAME|URL``: the configured alert channels
(masked: a channel URL's secrets are never printed) and a test message to one of them.

``add`` and ``remove`` come with the outbox and its channel state; until then channels are the
``SHIM_NOTIFY`` setting.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

import httpx
import orjson

from shim.alerts.channels import Channel, ChannelError, parse_channel
from shim.alerts.model import Alert
from shim.alerts.outcome import Outcome
from shim.alerts.send import Sender
from shim.cli.bugs import CommandError
from shim.cli.format import table
from shim.settings import Settings


def cmd_channels_list(settings: Settings, args: argparse.Namespace) -> int:
    channels = settings.notify
    if args.json:
        print(orjson.dumps([_as_json(c) for c in channels], option=orjson.OPT_INDENT_2).decode())
        return 0
    if not channels:
        print("no channels: set SHIM_NOTIFY (see the README's Alerts section)")
        return 0
    print(table(("NAME", "KIND", "FILTERS", "URL"),
                [(c.name, c.kind, c.filters.as_text() or "-", c.masked) for c in channels]))
    return 0


def cmd_channels_test(settings: Settings, args: argparse.Namespace) -> int:
    channel = find_channel(settings.notify, args.channel)
    outcome = asyncio.run(send_test(settings, channel))
    if args.json:
        print(orjson.dumps({**_as_json(channel), "state": outcome.state, "status": outcome.status,
                            "answer": outcome.detail, "retry_after": outcome.retry_after},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        wait = f" (asked to retry after {outcome.retry_after:g} s)" if outcome.retry_after else ""
        print(f"{channel.name} ({channel.masked}): {outcome.state}{wait}")
        print(f"answer: {outcome.detail}")
    return 0 if outcome.delivered else 1


def find_channel(channels: tuple[Channel, ...], wanted: str) -> Channel:
    """A configured channel by name, or a channel URL given on the command line."""
    for channel in channels:
        if channel.name == wanted:
            return channel
    if "://" not in wanted:
        names = ", ".join(c.name for c in channels) or "none (SHIM_NOTIFY is unset)"
        raise CommandError(f"no channel named {wanted!r}; configured: {names}")
    try:
        return parse_channel(wanted)
    except ChannelError as exc:
        raise CommandError(str(exc)) from None


async def send_test(settings: Settings, channel: Channel) -> Outcome:
    alert = Alert(trigger="test", project_id="-", at=datetime.now(UTC).isoformat())
    async with httpx.AsyncClient() as client:
        sender = Sender(client, public_url=settings.public_url,
                        webhook_secret=settings.webhook_secret)
        return await sender.deliver(channel, alert)


def _as_json(channel: Channel) -> dict[str, object]:
    filters = channel.filters
    return {"name": channel.name, "kind": channel.kind, "url": channel.masked,
            "filters": {"level": filters.min_level, "component": list(filters.components),
                        "workspace": list(filters.workspaces),
                        "environment": list(filters.environments)}}


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``shim channels list|test`` under ``commands`` (the top parser's subcommands)."""
    summary = "list alert channels (masked) or send one a test message"
    channels = commands.add_parser("channels", help=summary, description=summary + ".")
    actions = channels.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the channels of SHIM_NOTIFY, secrets masked")
    listing.set_defaults(run=cmd_channels_list)
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    test = actions.add_parser("test", help="send a test message and print the receiver's answer")
    test.add_argument("channel", metavar="NAME|URL",
                      help="a channel's name (see `shim channels list`) or a channel URL")
    test.add_argument("--json", action="store_true", help="print JSON for scripts")
    test.set_defaults(run=cmd_channels_test)
