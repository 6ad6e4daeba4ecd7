"""Forwarding ("tee") to an upstream Sentry while moving to it: every stored envelope's chosen
items also go upstream, so both hold the same events until the scripts' DSN changes.

The SDK's answer never waits on the upstream: after an envelope is committed locally, the route
hands it to ``Forwarder.offer``, which queues it on disk (``shim.forward.spool``) and wakes the
sender task. The sender posts queue entries oldest first with the upstream's key, honouring its
rate limits per category (an entry waits while any of its categories is held back; later entries
of other categories go meanwhile), backing off on 5xx, timeouts and connection errors (1 s
doubling to 60 s, with jitter), and dropping an entry the upstream refuses for good (400, 403,
413 and other 4xx) with its reason logged and counted.

May import the core, the settings and httpx; never the app, the assembly, the CLI or a store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import isal.igzip

from shim import __version__
from shim.core.envelope import Envelope
from shim.core.upstream import RateLimits, Targets, Upstream, forwarded, store_envelope
from shim.forward.spool import Entry, Spool
from shim.metrics import Metrics
from shim.settings import Settings

log = logging.getLogger("shim.forward")

_TIMEOUT = 10.0
_BACKOFF_FIRST = 1.0
_BACKOFF_MAX = 60.0
_STATE_EVERY = 5.0  # seconds between saves of the counters while they change
_AGENT = f"shim-forward/{__version__}"


class Forwarder:
    """One server process's forward queue and its sender task."""

    def __init__(self, targets: Targets, item_types: frozenset[str] | None, sample_rate: float,
                 directory: Path, max_bytes: int, max_age: float,
                 clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None,
                 metrics: Metrics | None = None) -> None:
        self.targets = targets
        self.metrics = metrics
        self.item_types = item_types
        self.sample_rate = sample_rate
        self._clock = clock
        self.spool = Spool(directory, max_bytes=max_bytes, max_age=max_age, clock=clock,
                           count=self._counted if metrics is not None else None)
        self.limits = RateLimits()
        self.backoff_until = 0.0
        self._failures = 0
        self._wake = asyncio.Event()
        # What the sender waits for: "offer" (the queue is empty), "limit" (all that is queued is
        # held back by the upstream's rate limits) or "backoff" (the upstream failed). An offer
        # wakes it only when it could go now: not for every request during an outage.
        self._waiting_for = "offer"
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=_TIMEOUT, transport=transport,
                                         headers={"User-Agent": _AGENT})
        self._saved_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None
                      ) -> Forwarder | None:
        if settings.forward_dsn is None:
            return None
        return cls(settings.forward_dsn, settings.forward_item_types,
                   settings.forward_sample_rate, settings.data_dir / "forward",
                   max_bytes=settings.forward_max_bytes, max_age=settings.forward_max_age,
                   metrics=metrics)

    # Offering (the routes, after a commit).

    def offer(self, project_id: str, envelope: Envelope) -> None:
        """Queue what of a stored envelope goes upstream (nothing when its project has none,
        none of its items is forwarded, or the sample says no)."""
        upstream = self.targets.of(project_id)
        if upstream is None or not self._sampled():
            return
        made = forwarded(envelope, upstream, self.item_types)
        if made is not None:
            self._queue(made[0], project_id, made[1])

    def offer_store(self, project_id: str, event_json: bytes) -> None:
        """Queue a legacy store body's event (forwarded as an envelope of one event item)."""
        upstream = self.targets.of(project_id)
        if upstream is None or not self._sampled():
            return
        if self.item_types is None or "event" in self.item_types:
            self._queue(store_envelope(event_json, upstream), project_id, frozenset({"error"}))

    def _counted(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.forwarded.labels(result).inc()

    def _sampled(self) -> bool:
        return self.sample_rate >= 1.0 or random.random() < self.sample_rate

    def _queue(self, body: bytes, project_id: str, categories: frozenset[str]) -> None:
        try:
            self.spool.put(body, project_id, categories)
        except OSError as exc:  # the local copy is kept; only the forward is lost
            self.spool.dropped["queue_error"] += 1
            self._counted("queue_error")
            self.spool.last_error = f"could not queue an envelope: {exc}"
            log.warning("forward: %s", self.spool.last_error)
            return
        waiting = self._waiting_for
        if waiting == "offer" or (waiting == "limit"
                                  and self.limits.wait(categories, self._clock()) <= 0):
            self._waiting_for = "sending"
            self._wake.set()

    # The sender.

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shim-forward")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()
        self.spool.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._waiting_for = "sending"
            delay = await self.send_due()
            self._waiting_for = ("offer" if delay is None else
                                 "backoff" if self.backoff_until > self._clock() else "limit")
            self._save_state()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def send_due(self) -> float | None:
        """Send every entry that may go now; the seconds until one may go next (``None``: the
        queue is empty, wait for an offer)."""
        while True:
            now = self._clock()
            if self.backoff_until > now:
                return self.backoff_until - now
            entry, wait = self._next_due(now)
            if entry is None:
                return wait
            await self._send(entry)

    def _next_due(self, now: float) -> tuple[Entry | None, float | None]:
        """The oldest entry none of whose categories is held back, else how long until one is."""
        soonest: float | None = None
        due: Entry | None = None
        orphans = []
        for entry in self.spool.entries():
            if self.targets.of(entry.project_id) is None:
                orphans.append(entry)  # its project has no upstream since the setting changed
                continue
            wait = self.limits.wait(entry.categories, now)
            if wait <= 0:
                due = entry
                break
            soonest = wait if soonest is None else min(soonest, wait)
        for entry in orphans:
            self.spool.remove(entry, dropped="no_upstream")
        return (due, None) if due is not None else (None, soonest)

    async def _send(self, entry: Entry) -> None:
        upstream = self.targets.of(entry.project_id)
        body = self.spool.read(entry)
        if upstream is None or body is None:
            return
        try:
            response = await self._client.post(
                upstream.envelope_url, content=isal.igzip.compress(body, 1),
                headers=_headers(upstream))
        except httpx.HTTPError as exc:
            self._failed(f"{upstream.masked}: {type(exc).__name__}: {exc}".rstrip(": "))
            return
        now = self._clock()
        self.limits.note(response.status_code, response.headers.get("x-sentry-rate-limits"),
                         response.headers.get("retry-after"), now)
        status = response.status_code
        if 200 <= status < 300:
            self._failures = 0
            self.spool.remove(entry)
        elif status == 429:
            if self.limits.wait(entry.categories, now) <= 0:  # limits for other categories only
                self.limits.note(429, None, response.headers.get("retry-after"), now)
            self.spool.last_error = f"{upstream.masked}: 429 rate limited"
        elif status >= 500 or status == 408:
            self._failed(f"{upstream.masked}: {status} {_reason(response)}")
        else:  # the upstream will never take it: dropped, said once per entry
            reason = f"rejected_{status}"
            self.spool.last_error = f"{upstream.masked}: {status} {_reason(response)}"
            log.warning("forward: dropped an envelope: %s", self.spool.last_error)
            self.spool.remove(entry, dropped=reason)

    def _failed(self, error: str) -> None:
        """The upstream could not be reached or failed: wait before the next try."""
        self._failures += 1
        delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (self._failures - 1))
        self.backoff_until = self._clock() + delay * random.uniform(0.8, 1.0)
        if self.spool.last_error != error or self._failures == 1:
            log.warning("forward: %s; retrying in %.0f s", error, delay)
        self.spool.last_error = error

    def _save_state(self) -> None:
        now = self._clock()
        if now - self._saved_at >= _STATE_EVERY:
            self._saved_at = now
            with contextlib.suppress(OSError):
                self.spool.save_state()

    # What /healthz shows.

    def summary(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "upstreams": [u.masked for u in self.targets.all()],
            "pending": self.spool.pending,
            "pending_bytes": self.spool.pending_bytes,
            "sent": self.spool.sent,
            "dropped": dict(self.spool.dropped),
            "last_error": self.spool.last_error,
            "rate_limited": self.limits.as_json(now),
            "backoff_seconds": round(max(0.0, self.backoff_until - now), 1),
        }


def _headers(upstream: Upstream) -> dict[str, str]:
    return {
        "Content-Type": "application/x-sentry-envelope",
        "Content-Encoding": "gzip",
        "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={upstream.key}, "
                         f"sentry_client={_AGENT}",
    }


def _reason(response: httpx.Response) -> str:
    detail = response.headers.get("x-sentry-error") or response.text[:200]
    return " ".join(detail.split()) or response.reason_phrase
