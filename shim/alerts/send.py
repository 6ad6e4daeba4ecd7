"""Delivering one message to one channel, once: ``Sender.deliver`` renders it for the channel's
kind, sends it (``httpx`` for the HTTP kinds, ``aiosmtplib`` for e-mail) and returns the
classified ``Outcome``. Retrying is the caller's (``shim.alerts.retry.next_attempt``).

httpx: one ``AsyncClient`` with a connection pool and timeouts, shared by every delivery of a
server (the sender task owns it). aiosmtplib: STARTTLS when the server offers it on
``smtp://``, implicit TLS on ``smtps://``, certificates verified (``tls_context`` lets a test
trust its own CA). Nothing the sender reports or logs carries a channel's secrets.
"""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
import httpx

from shim import __version__
from shim.alerts.channels import Channel
from shim.alerts.model import Message
from shim.alerts.outcome import DELIVERED, FAILED, RETRY, Outcome, from_http, network_failure
from shim.alerts.render import HttpRequest, render

log = logging.getLogger("shim.alerts")
TIMEOUT = 15.0
# httpx logs every request's full URL at INFO (and httpcore its steps at DEBUG); a channel's URL
# holds its secret, so they stay quiet below warnings and our own line says what happened.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class Sender:
    """Sends messages with a shared HTTP client; ``public_url`` and ``webhook_secret`` are the
    settings of the same names."""

    def __init__(self, client: httpx.AsyncClient, public_url: str | None = None,
                 webhook_secret: str | None = None, tls_context: ssl.SSLContext | None = None,
                 timeout: float = TIMEOUT) -> None:
        self.client = client
        self.public_url = public_url
        self.webhook_secret = webhook_secret
        self.tls_context = tls_context
        self.timeout = timeout

    async def deliver(self, channel: Channel, message: Message) -> Outcome:
        rendered = render(channel, message, self.public_url, self.webhook_secret)
        if isinstance(rendered, EmailMessage):
            outcome = await self._mail(channel, rendered)
        else:
            outcome = await self._post(channel, rendered)
        outcome = Outcome(outcome.state, channel.redact(outcome.detail), outcome.status,
                          outcome.retry_after)
        log.info("alert to %s (%s): %s %s", channel.name, channel.masked, outcome.state,
                 outcome.detail)
        return outcome

    async def _post(self, channel: Channel, request: HttpRequest) -> Outcome:
        headers = {"User-Agent": f"shim/{__version__}", **request.headers}
        try:
            answer = await self.client.post(request.url, content=request.body, headers=headers,
                                            timeout=self.timeout)
        except httpx.TimeoutException:
            return network_failure(f"no answer within {self.timeout:g} s")
        except httpx.TransportError as exc:
            return network_failure(f"could not connect: {type(exc).__name__} {exc}")
        return from_http(answer.status_code, answer.headers, answer.content, datetime.now(UTC))

    async def _mail(self, channel: Channel, message: EmailMessage) -> Outcome:
        options = channel.options
        implicit = bool(options["implicit_tls"])
        try:
            answers, reply = await aiosmtplib.send(
                message, hostname=str(options["host"]), port=int(str(options["port"])),
                username=_text(options.get("username")), password=_text(options.get("password")),
                use_tls=implicit, start_tls=False if implicit else None,
                tls_context=self.tls_context, timeout=self.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            return Outcome(FAILED, f"recipients refused: {refused}")
        except aiosmtplib.SMTPAuthenticationError as exc:
            return Outcome(FAILED, f"authentication refused: {exc.code} {exc.message}", exc.code)
        except aiosmtplib.SMTPResponseException as exc:
            state = RETRY if 400 <= exc.code < 500 else FAILED
            return Outcome(state, f"{exc.code} {exc.message}", exc.code)
        except (aiosmtplib.SMTPException, OSError) as exc:
            if _tls_problem(exc):
                return Outcome(FAILED, f"TLS: {_cause(exc)}")
            return network_failure(f"could not deliver: {_cause(exc)}")
        detail = reply or "accepted"
        if answers:  # some recipients refused, others took it: delivered, and say who not
            detail += "; refused: " + ", ".join(f"{k} {v.code}" for k, v in answers.items())
        return Outcome(DELIVERED, detail)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _tls_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cause(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())
