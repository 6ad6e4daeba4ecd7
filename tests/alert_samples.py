"""Alerts for the alert tests, and one delivery through a real ``Sender``."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from typing import Any

import httpx

from shim.alerts.channels import Channel, parse_channel
from shim.alerts.model import Alert, BugFacts, Digest, EventFacts, Message, MonitorFacts
from shim.alerts.outcome import Outcome
from shim.alerts.send import Sender

HOSTILE = "<script>alert(1)</script> *bold* _it_ & `code` [x](http://evil) @everyone"


def bug_alert(trigger: str = "new_bug", title: str = "Critical: ocr - ValueError",
              number: str = "BUG-00012", **bug: Any) -> Alert:
    facts = BugFacts(number=number, title=title, level="critical", component="ocr-worker",
                     workspace="ws-7", status="open", occurrence_count=3,
                     first_seen="2026-12-07T10:00:00+00:00", last_seen="2026-12-07T11:00:00+00:00",
                     error_type="ValueError", error_message="page 3 is empty",
                     top_frame='File "scan.py", line 12, in run')
    return Alert(trigger=trigger, project_id="1", at="2026-12-07T11:00:01+00:00",
                 alert_id="a-1", bug=replace(facts, **bug),
                 event=EventFacts("0" * 32, environment="production", release="scanner@2.1"))


def monitor_alert(trigger: str = "monitor_missed", slug: str = "nightly-scan") -> Alert:
    return Alert(trigger=trigger, project_id="1", at="2026-12-07T03:05:00+00:00",
                 monitor=MonitorFacts(slug=slug, environment="production",
                                      schedule="0 3 * * *", reason="missed the 03:00 run",
                                      failures=1, next_expected="2026-12-08T03:00:00+00:00"))


def digest(count: int) -> Digest:
    return Digest(tuple(bug_alert(number=f"BUG-{n:05d}", title=f"Critical: part{n} - E{n}")
                        for n in range(1, count + 1)))


def deliver(channel: Channel | str, message: Message, tls: ssl.SSLContext | None = None,
            **options: Any) -> Outcome:
    """One delivery with a fresh client, as the sender task would make it."""
    target = parse_channel(channel) if isinstance(channel, str) else channel

    async def run() -> Outcome:
        async with httpx.AsyncClient() as client:
            return await Sender(client, tls_context=tls, **options).deliver(target, message)

    return asyncio.run(run())
