"""Real local receivers for the alert tests: one Starlette app on a free loopback port (uvicorn in
a thread) playing Slack, Discord, Teams, Telegram and a webhook, and aiosmtpd as an SMTP server.

Each service's path checks the payload the way the service documents it (shape and limits) and
answers as the service does: 200 ``ok`` from Slack, Discord's message for ``?wait=true``, 202 from
Teams, ``{"ok": true}`` from Telegram; a payload it would refuse gets the service's 400. A test
can queue other answers for a path first (429 with a wait, 404 for good, 500...).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import free_port

SLACK_SECTION = 3000
SLACK_HEADER = 150
DISCORD = {"title": 256, "description": 4096, "name": 256, "value": 1024, "footer": 2048}
DISCORD_TOTAL = 6000
TELEGRAM_TEXT = 4096


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Receivers:
    """What was received, by path, and the answers queued for each path."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.queued: dict[str, list[Answer]] = {}
        self.url = ""

    def queue(self, path: str, *answers: Answer) -> None:
        self.queued.setdefault(path, []).extend(answers)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        self.received.append(Received(path, dict(request.query_params),
                                      {k.lower(): v for k, v in request.headers.items()}, body))
        if self.queued.get(path):
            answer = self.queued[path].pop(0)
            return Response(answer.body, answer.status, answer.headers)
        document = orjson.loads(body)
        if path.startswith("/slack/"):
            return _slack(document)
        if path.startswith("/api/webhooks/"):
            return _discord(document, request.query_params.get("wait") == "true")
        if path.startswith("/teams/"):
            return _teams(document)
        if re.fullmatch(r"/bot[^/]+/sendMessage", path):
            return _telegram(document)
        return Response(b'{"received": true}', 200, media_type="application/json")


def _slack(document: Any) -> Response:
    def refuse(reason: str) -> Response:  # Slack answers invalid_blocks for a bad block
        return Response(f"invalid_blocks: {reason}".encode(), 400)

    if not isinstance(document.get("text"), str) or not document["text"]:
        return Response(b"no_text", 400)
    blocks = document.get("blocks", [])
    if len(blocks) > 50:
        return refuse("more than 50 blocks")
    for block in blocks:
        if block["type"] == "header" and len(block["text"]["text"]) > SLACK_HEADER:
            return refuse("header over 150")
        if block["type"] == "section":
            if "text" in block and not 0 < len(block["text"]["text"]) <= SLACK_SECTION:
                return refuse("section text not 1..3000")
            if len(block.get("fields", [])) > 10 or any(
                    len(f["text"]) > 2000 for f in block.get("fields", [])):
                return refuse("fields")
    return Response(b"ok", 200, media_type="text/plain")


def _discord(document: Any, wait: bool) -> Response:
    total = 0
    for embed in document.get("embeds", []):
        for name in ("title", "description"):
            if len(embed.get(name, "")) > DISCORD[name]:
                return _discord_refusal(f"embeds.{name}")
            total += len(embed.get(name, ""))
        if len(embed.get("fields", [])) > 25:
            return _discord_refusal("embeds.fields")
        for one in embed.get("fields", []):
            if len(one["name"]) > DISCORD["name"] or len(one["value"]) > DISCORD["value"]:
                return _discord_refusal("embeds.fields.value")
            total += len(one["name"]) + len(one["value"])
        total += len(embed.get("footer", {}).get("text", ""))
    if total > DISCORD_TOTAL:
        return _discord_refusal("embeds (6000 in total)")
    if not wait:
        return Response(b"", 204)
    return Response(orjson.dumps({"id": "1", "type": 0, "embeds": document.get("embeds")}), 200,
                    media_type="application/json")


def _discord_refusal(where: str) -> Response:
    return Response(orjson.dumps({"code": 50035, "message": f"Invalid Form Body ({where})"}), 400,
                    media_type="application/json")


def _teams(document: Any) -> Response:
    attachment = document["attachments"][0]
    ok = (document["type"] == "message"
          and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
          and attachment["content"]["type"] == "AdaptiveCard")
    return Response(b"", 202) if ok else Response(b"bad card", 400)


def _telegram(document: Any) -> Response:
    if len(document.get("text", "")) > TELEGRAM_TEXT or not document.get("text"):
        return Response(orjson.dumps({"ok": False, "error_code": 400,
                                      "description": "Bad Request: message is too long"}), 400,
                        media_type="application/json")
    return Response(orjson.dumps({"ok": True, "result": {"message_id": 1, "text": "..."}}), 200,
                    media_type="application/json")


@contextlib.contextmanager
def running_receivers() -> Iterator[Receivers]:
    """The receivers' app served by uvicorn in a thread on a free port; stopped afterwards."""
    receivers = Receivers()
    app = Starlette(routes=[Route("/{path:path}", receivers.handle, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the receivers did not start")
        time.sleep(0.01)
    receivers.url = f"http://127.0.0.1:{port}"
    try:
        yield receivers
    finally:
        server.should_exit = True
        thread.join(timeout=10)
