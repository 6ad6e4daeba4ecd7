"""What a receiver's answer means: delivered, try again (after how long), or failed for good.
Pure.

Read from the services' documentation: Slack's incoming webhooks answer ``200 ok`` or an HTTP
error whose body names it (``invalid_token`` 403, ``channel_not_found`` and ``no_service`` 404,
``channel_is_archived`` 410, ``invalid_payload`` 400); Discord answers 429 with ``retry_after``
(seconds) in its JSON body and a ``Retry-After`` header; Telegram answers ``{"ok": false,
"error_code": 429, "parameters": {"retry_after": N}}``, 400 for a chat it cannot find and 401
for a bad token; Teams Workflows answer 202. Any 2xx is delivered; 408, 429 and 5xx are
retried; every other 4xx is permanent (the URL, token or payload is wrong: retrying cannot help).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

DELIVERED, RETRY, FAILED = "delivered", "retry", "failed"
DETAIL_LIMIT = 300
RETRIED_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Outcome:
    """``state`` is ``delivered``, ``retry`` or ``failed``; ``detail`` is the receiver's answer
    as shown to an operator (status and body, one line, secrets removed by the sender);
    ``retry_after`` is the wait, in seconds, the receiver asked for, when it asked."""

    state: str
    detail: str
    status: int | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.state == DELIVERED


def from_http(status: int, headers: Mapping[str, str], body: bytes, now: datetime) -> Outcome:
    """The outcome of an HTTP answer (``headers`` looked up in lower case)."""
    document = _json(body)
    detail = _detail(status, body, document)
    if 200 <= status < 300 and not _telegram_refused(document):
        return Outcome(DELIVERED, detail, status)
    if isinstance(document, dict) and isinstance(document.get("error_code"), int):
        status = document["error_code"]  # Telegram's own code, should a proxy answer 200
    if status in RETRIED_STATUSES or status >= 500:
        return Outcome(RETRY, detail, status, _retry_after(headers, document, now))
    return Outcome(FAILED, detail, status)


def network_failure(description: str) -> Outcome:
    """No answer at all (timeout, refused connection, reset): try again later."""
    return Outcome(RETRY, description)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body[:1] in (b"{", b"[") else None
    except orjson.JSONDecodeError:
        return None


def _telegram_refused(document: Any) -> bool:
    return isinstance(document, dict) and document.get("ok") is False


def _detail(status: int, body: bytes, document: Any) -> str:
    text = body.decode("utf-8", "replace")
    if isinstance(document, dict):
        # Telegram's `description`, Discord's `message`, Slack Web API's `error`.
        named = document.get("description") or document.get("message") or document.get("error")
        if isinstance(named, str):
            text = named
    text = " ".join(text.split())
    if len(text) > DETAIL_LIMIT:
        text = text[:DETAIL_LIMIT - 1] + "…"
    return f"{status} {text}".strip()


def _retry_after(headers: Mapping[str, str], document: Any, now: datetime) -> float | None:
    """The longest wait the answer asks for: ``Retry-After`` (seconds or an HTTP date), and
    ``retry_after`` in the body (Discord at the top, Telegram under ``parameters``)."""
    waits: list[float] = []
    header = headers.get("retry-after", "").strip()
    if header:
        try:
            waits.append(float(header))
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                waits.append((parsedate_to_datetime(header) - now).total_seconds())
    if isinstance(document, dict):
        parameters = document.get("parameters")
        for value in (document.get("retry_after"),
                      parameters.get("retry_after") if isinstance(parameters, dict) else None):
            if isinstance(value, int | float) and not isinstance(value, bool):
                waits.append(float(value))
    waits = [w for w in waits if w == w and w >= 0]  # (NaN is not a wait)
    return max(waits) if waits else None
