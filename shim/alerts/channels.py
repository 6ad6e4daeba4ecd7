"""Channel URLs: ``SHIM_NOTIFY``'s comma-separated list parsed into ``Channel`` objects. Pure.

A channel URL is ``KIND+URL`` (``slack+``, ``discord+``, ``teams+``, ``telegram+``, ``webhook+``
before an http(s) URL; ``KIND+http://127.0.0.1:PORT/...`` works for every kind, for tests and
local relays), an e-mail server (``smtp://user:pass@host:587/?from=a@x&to=b@y``, STARTTLS when
the server offers it; ``smtps://`` for implicit TLS), or a plain http(s) URL recognised by its
host (``hooks.slack.com``, ``discord.com/api/webhooks``, ``api.telegram.org``, the Power Automate
hosts of Teams Workflows); any other http(s) URL is a webhook that receives our JSON document.

Our own query parameters are taken out of the URL before it is used, and the rest is sent as
given: ``name`` (what ``shim channels test NAME`` calls the channel; default the kind, then
``slack-2``...), and the filters ``level`` (minimum level), ``component``, ``workspace`` and
``environment`` (each may repeat or list values with commas; ``*`` globs, as ``ocr*``).

Channel URLs carry secrets (webhook paths, bot tokens, passwords): ``Channel.masked`` is the form
for logs, ``/healthz`` and the CLI, a channel's ``repr`` is masked, and parse errors name a
channel by its masked form only.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import (
    SplitResult,
    parse_qsl,
    unquote,
    unquote_plus,
    urlencode,
    urlsplit,
    urlunsplit,
)

from shim.core.levels import LEVEL_RANK, LEVELS, normalize_level

KINDS = ("slack", "discord", "teams", "telegram", "email", "webhook")
FILTER_PARAMETERS = ("level", "component", "workspace", "environment")
OWN_PARAMETERS = ("name", *FILTER_PARAMETERS)
# Query parameters of a receiver's URL that say where, not who: shown as they are when masked.
PUBLIC_PARAMETERS = frozenset({"chat_id", "message_thread_id", "wait", "thread_id", "from", "to"})
MASK = "***"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_TELEGRAM_PATH = re.compile(r"(?P<before>.*/)bot(?P<token>[^/]+)/sendMessage/?")
_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+")


class ChannelError(ValueError):
    """A channel URL we cannot use; the message names the channel by its masked form."""


@dataclass(frozen=True)
class Filters:
    """Which alerts a channel receives: all of them unless a filter says otherwise."""

    min_level: str | None = None
    components: tuple[str, ...] = ()
    workspaces: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()

    def matches(self, level: str | None, component: str | None, workspace: str | None,
                environment: str | None) -> bool:
        """Whether an alert with these facts passes. An alert without a level (a cron monitor's)
        passes a level filter; one without a component, workspace or environment does not pass
        a filter on it."""
        if self.min_level and level and LEVEL_RANK.get(level, 0) < LEVEL_RANK[self.min_level]:
            return False
        return all(_matches(patterns, value) for patterns, value in (
            (self.components, component), (self.workspaces, workspace),
            (self.environments, environment)))

    def as_text(self) -> str:
        """``level>=critical component=ocr*``, or ``""`` when there is no filter."""
        parts = [f"level>={self.min_level}"] if self.min_level else []
        for label, values in (("component", self.components), ("workspace", self.workspaces),
                              ("environment", self.environments)):
            if values:
                parts.append(f"{label}={','.join(values)}")
        return " ".join(parts)


def _matches(patterns: tuple[str, ...], value: str | None) -> bool:
    if not patterns:
        return True
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True)
class Channel:
    """One configured channel: its kind, the URL messages go to, and its filters.

    ``url`` is the receiver's URL without our parameters (for ``email``, the ``smtp(s)://`` URL);
    ``options`` are the kind's own settings read from it (Telegram's ``chat_id`` and
    ``message_thread_id``; e-mail's host, port, credentials, sender and recipients).
    """

    name: str
    kind: str
    url: str = field(repr=False)
    filters: Filters = Filters()
    options: Mapping[str, object] = field(default_factory=dict, repr=False)
    masked: str = ""

    def __repr__(self) -> str:
        return f"Channel(name={self.name!r}, kind={self.kind!r}, url={self.masked!r})"

    def secrets(self) -> tuple[str, ...]:
        """The secret parts of the URL, to strip from any text shown about this channel (a
        receiver's error message may quote them)."""
        parts = urlsplit(self.url)
        found = [parts.password or "", unquote(parts.password or ""),
                 *_secret_path_parts(self.kind, parts.path)]
        found += [v for k, v in parse_qsl(parts.query) if k not in PUBLIC_PARAMETERS]
        return tuple(s for s in found if len(s) >= 4)

    def redact(self, text: str) -> str:
        """``text`` with this channel's secrets replaced by ``***``."""
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


def parse_channels(raw: str) -> tuple[Channel, ...]:
    """``SHIM_NOTIFY``: comma-separated channel URLs (a comma inside a URL's query, as in
    ``to=a@x,b@y``, is written ``%2C``, or the parameter repeated). Names are made unique."""
    channels: list[Channel] = []
    for part in raw.split(","):
        if part.strip():
            channels.append(parse_channel(part.strip(), taken=[c.name for c in channels]))
    return tuple(channels)


def parse_channel(url: str, taken: Iterable[str] = ()) -> Channel:
    """One channel URL; raises ``ChannelError`` saying what is wrong (never quoting secrets)."""
    kind, target = _kind_and_target(url)
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ChannelError(f"{_masked_text(url)}: not a URL ({exc})") from None
    own, rest = _split_query(parts.query)
    parts = parts._replace(query=rest)
    filters = _filters(own, url)
    if kind == "email":
        options = _email_options(parts, url)
    else:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChannelError(f"{_masked_text(url)}: a {kind} channel needs an http(s) URL "
                               "with a host")
        options = _telegram_options(parts, url) if kind == "telegram" else {}
    clean = urlunsplit(parts)
    name = _name(own.get("name", []), kind, set(taken), url)
    return Channel(name=name, kind=kind, url=clean, filters=filters, options=options,
                   masked=_mask(kind, clean))


def _kind_and_target(url: str) -> tuple[str, str]:
    prefix, plus, rest = url.partition("+")
    if plus and prefix.lower() in KINDS and "://" in rest and "/" not in prefix:
        kind = prefix.lower()
        if kind == "email":
            raise ChannelError(f"{_masked_text(url)}: e-mail channels are smtp:// or smtps:// "
                               "URLs")
        return kind, rest
    scheme = url.partition("://")[0].lower()
    if scheme in ("smtp", "smtps"):
        return "email", url
    if scheme not in ("http", "https"):
        raise ChannelError(f"{_masked_text(url)}: not a channel URL: use KIND+https://... "
                           f"(KIND: {', '.join(k for k in KINDS if k != 'email')}), "
                           "smtp(s)://... or an http(s) URL")
    return _kind_by_host(url), url


def _kind_by_host(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "webhook"
    host, path = (parts.hostname or "").lower(), parts.path
    if host in ("hooks.slack.com", "hooks.slack-gov.com"):
        return "slack"
    if host.removeprefix("ptb.").removeprefix("canary.") in ("discord.com", "discordapp.com") \
            and path.startswith("/api/webhooks/"):
        return "discord"
    if host == "api.telegram.org":
        return "telegram"
    if (host.endswith(".logic.azure.com") and "/workflows/" in path) or host.endswith(
            ".api.powerplatform.com"):
        return "teams"  # the hosts of Teams Workflows (Power Automate) webhooks
    return "webhook"


def _split_query(query: str) -> tuple[dict[str, list[str]], str]:
    """Our parameters, decoded, and the rest of the query exactly as written (a receiver's
    signature must reach it byte for byte)."""
    own: dict[str, list[str]] = {}
    kept: list[str] = []
    for piece in query.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        name = unquote_plus(key)
        if name in OWN_PARAMETERS:
            values = unquote_plus(value).split(",")
            own.setdefault(name, []).extend(v.strip() for v in values if v.strip())
        else:
            kept.append(piece)
    return own, "&".join(kept)


def _filters(own: Mapping[str, list[str]], url: str) -> Filters:
    levels = own.get("level", [])
    if len(levels) > 1:
        raise ChannelError(f"{_masked_text(url)}: give one minimum level=, not {len(levels)}")
    level = None
    if levels:
        level = normalize_level(levels[0], default="")
        if not level:
            raise ChannelError(f"{_masked_text(url)}: level={levels[0]!r} is not one of "
                               f"{', '.join(LEVELS)}")
    return Filters(min_level=level, components=tuple(own.get("component", [])),
                   workspaces=tuple(own.get("workspace", [])),
                   environments=tuple(own.get("environment", [])))


def _name(given: list[str], kind: str, taken: set[str], url: str) -> str:
    if given:
        name = given[-1]
        if not _NAME.fullmatch(name):
            raise ChannelError(f"{_masked_text(url)}: name={name!r} must be letters, digits, "
                               "'.', '-' and '_'")
        if name in taken:
            raise ChannelError(f"{_masked_text(url)}: two channels are named {name!r}")
        return name
    name, number = kind, 1
    while name in taken:
        number += 1
        name = f"{kind}-{number}"
    return name


def _telegram_options(parts: SplitResult, url: str) -> dict[str, object]:
    if not _TELEGRAM_PATH.fullmatch(parts.path):
        raise ChannelError(f"{_masked_text(url)}: a Telegram channel is "
                           "https://api.telegram.org/bot<token>/sendMessage?chat_id=<id>")
    query = dict(parse_qsl(parts.query))
    chat_id = query.get("chat_id", "").strip()
    if not chat_id:
        raise ChannelError(f"{_masked_text(url)}: a Telegram channel needs ?chat_id=<id>")
    options: dict[str, object] = {"chat_id": int(chat_id) if _integer(chat_id) else chat_id}
    thread = query.get("message_thread_id", "").strip()
    if thread:
        if not _integer(thread):
            raise ChannelError(f"{_masked_text(url)}: message_thread_id={thread!r} must be a "
                               "number")
        options["message_thread_id"] = int(thread)
    return options


def _integer(text: str) -> bool:
    return text.removeprefix("-").isascii() and text.removeprefix("-").isdigit()


def _email_options(parts: SplitResult, url: str) -> dict[str, object]:
    implicit_tls = parts.scheme.lower() == "smtps"
    if not parts.hostname:
        raise ChannelError(f"{_masked_text(url)}: an e-mail channel needs the server's host")
    query = parse_qsl(parts.query)
    unknown = sorted({k for k, _ in query} - {"from", "to"})
    if unknown:
        raise ChannelError(f"{_masked_text(url)}: unknown e-mail parameter(s) "
                           f"{', '.join(unknown)} (from=, to=)")
    recipients = [a.strip() for k, v in query if k == "to" for a in v.split(",") if a.strip()]
    username = unquote(parts.username) if parts.username else None
    senders = [v.strip() for k, v in query if k == "from" and v.strip()]
    sender = senders[-1] if senders else (username if username and "@" in username else None)
    if not recipients:
        raise ChannelError(f"{_masked_text(url)}: an e-mail channel needs at least one to=")
    if not sender:
        raise ChannelError(f"{_masked_text(url)}: an e-mail channel needs from= (or a user "
                           "name that is an address)")
    bad = [a for a in [*recipients, sender] if not _ADDRESS.fullmatch(a)]
    if bad:
        raise ChannelError(f"{_masked_text(url)}: not an e-mail address: {', '.join(bad)}")
    return {"host": parts.hostname, "port": parts.port or (465 if implicit_tls else 587),
            "implicit_tls": implicit_tls, "username": username,
            "password": unquote(parts.password) if parts.password else None,
            "sender": sender, "recipients": tuple(recipients)}


def _secret_path_parts(kind: str, path: str) -> list[str]:
    if kind == "email":
        return []
    telegram = _TELEGRAM_PATH.fullmatch(path)
    if telegram:
        return [telegram["token"]]
    hidden = path.split("/")[2:]
    # The hidden remainder as a whole, and its token-like segments on their own.
    return ["/".join(hidden), *(s for s in hidden if len(s) >= 12)]


def _mask(kind: str, url: str) -> str:
    """``kind+`` and the URL with its password, path beyond the first segment (webhook paths are
    the webhook's secret; a Telegram bot's token) and query values other than addressing ones
    replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}{':' + MASK if parts.password else ''}@{netloc}"
    path = parts.path
    telegram = _TELEGRAM_PATH.fullmatch(path) if kind == "telegram" else None
    if telegram:
        path = f"{telegram['before']}bot{MASK}/sendMessage"
    elif kind != "email":
        segments = path.split("/")
        if len(segments) > 2 and any(segments[2:]):
            path = "/".join([*segments[:2], MASK])
        elif len(segments) == 2 and segments[1] and len(segments[1]) >= 16:
            path = f"/{MASK}"  # a long single segment is a token, not a name
    query = urlencode([(k, v if k in PUBLIC_PARAMETERS else MASK)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="@*")
    shown = urlunsplit((parts.scheme, netloc, path, query, ""))
    return shown if kind == "email" else f"{kind}+{shown}"


def _masked_text(url: str) -> str:
    """A configured URL as it may be shown in an error, before we know it parses: scheme, host
    and port only."""
    prefix, plus, rest = url.partition("+")
    kind = f"{prefix}+" if plus and prefix.lower() in KINDS else ""
    target = rest if kind else url
    try:
        parts = urlsplit(target)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"{kind}{target.partition('://')[0] or '?'}://?"
    return f"{kind}{parts.scheme}://{host}{port}/..."
