"""Where a server is put together: its settings and keys, the writer over the journal (the backup
log and the store), the exporter, the limits and counters the routes share (``State``), and the
order they start and stop in (``running``).

``shim.app`` holds only the routes; it receives a ``State`` from ``running`` through Starlette's
lifespan. May import every layer (core, writer, store, settings); nothing imports it but the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from shim.core.auth import Keys
from shim.core.items import Limits
from shim.core.scrub import Scrubber
from shim.core.storm import StormGuard
from shim.forward import Forwarder
from shim.metrics import Metrics
from shim.ratelimit import RateLimiter
from shim.refusals import Refusals
from shim.settings import Settings, SettingsError
from shim.store import Store, open_store
from shim.writer import retention
from shim.writer.exporter import Exporter
from shim.writer.group import Writer
from shim.writer.journal import Journal, Journaling
from shim.writer.log import BackupLog
from shim.writer.process import Config, JournalProcess

log = logging.getLogger("shim.assembly")


class State:
    """What the routes share: settings, keys, the writer, and counters since start."""

    def __init__(self, settings: Settings, keys: Keys, journal: Journaling,
                 grouping_v1_until: datetime | None = None) -> None:
        self.settings = settings
        self.keys = keys
        self.store_summary = journal.summary()
        # Counted only when someone can read them (SHIM_METRICS_TOKEN): else None, at no cost.
        self.metrics = Metrics() if settings.metrics_tokens else None
        self.writer = Writer(journal, on_commit=self.metrics.observe_commit
                             if self.metrics is not None else None)
        self.exporter = Exporter(settings, lambda: self.writer.bugs_changed)
        self.limits = Limits(bug_level=settings.bug_level,
                             max_event_bytes=settings.max_event_bytes,
                             scrubber=Scrubber(settings.scrub_keys or ()),
                             grouping_v1_until=grouping_v1_until)
        # With several worker processes each takes its share of the limits (connections are
        # spread between them), so the whole server keeps to the configured numbers.
        self.limiter = RateLimiter(share(settings.rate_limit_per_key, settings.workers),
                                   share(settings.rate_limit, settings.workers))
        self.storm = StormGuard(share(settings.storm_threshold, settings.workers))
        self.items: Counter[str] = Counter()
        self.stored = 0
        self.duplicates = 0
        self.refusals = Refusals()
        self.trimmed = 0  # events over SHIM_MAX_EVENT_BYTES stored trimmed (shim.core.trim)
        self.started = time.time()
        # What is stored also goes upstream (SHIM_FORWARD_DSN), queued once committed.
        self.forwarder = Forwarder.from_settings(settings, self.metrics)


def open_journal(settings: Settings, store: Store | None = None) -> Journaling:
    """The backup log and the store, as the writer drives them. A server storing in SQLite gets
    them in a process of its own (``shim.writer.process``; off with ``SHIM_JOURNAL_PROCESS=0``),
    so that its commits do not take turns with request handling for the GIL."""
    log_dir = settings.backup_dir / "logs"
    if store is None and settings.journal_process and settings.database_url.startswith("sqlite://"):
        return JournalProcess(Config(
            log_dir=str(log_dir), database_url=settings.database_url,
            related_logs=settings.related_logs, processes=settings.workers,
            log_level=settings.log_level))
    return Journal(BackupLog(log_dir), store or open_store(
        settings.database_url, related_logs=settings.related_logs, server=True,
        processes=settings.workers))


GAUGE_EVERY = 5.0  # seconds between updates of this process's gauges (and at each scrape)


async def update_gauges(state: State) -> None:
    """Set this process's gauges: its writer's queue, the store's lag, its forward queue."""
    metrics = state.metrics
    assert metrics is not None
    metrics.writer_queue.set(state.writer.waiting)
    _, lag_bytes = await state.writer.run_in_thread(state.writer.journal.lag)
    metrics.store_lag.set(lag_bytes)
    if state.forwarder is not None:
        metrics.forward_queue.set(state.forwarder.spool.pending)


async def _keep_gauges(state: State) -> None:
    while True:
        with contextlib.suppress(Exception):  # a gauge a moment old is better than none
            await update_gauges(state)
        await asyncio.sleep(GAUGE_EVERY)


async def _keep_pruning(state: State) -> None:
    """Retention, hourly, by whichever process of the server (or of the servers sharing the
    store) holds the lease."""
    settings = state.settings
    holder = f"{socket.gethostname()}:{os.getpid()}"
    await asyncio.sleep(retention.FIRST_RUN)
    while True:
        try:
            done = await asyncio.to_thread(
                retention.run_once,
                lambda: open_store(settings.database_url, related_logs=settings.related_logs),
                holder, datetime.now(UTC), settings.retention_days or None,
                BackupLog(settings.backup_dir / "logs"), settings.backup_retention_days or None)
            if done is not None:
                retention.log.info("retention: %s", done)
                if state.metrics is not None:
                    state.metrics.retention_deleted.labels("error_logs").inc(done.error_logs)
                    state.metrics.retention_deleted.labels("check_ins").inc(done.check_ins)
        except Exception as exc:  # the store down, say: the next hour tries again
            retention.log.warning("retention could not run (%s: %s); trying again in an hour",
                        type(exc).__name__, exc)
        await asyncio.sleep(retention.EVERY)


def grouping_v1_until(settings: Settings, journal: Journaling, store: Store | None = None
                      ) -> datetime | None:
    """Until when events also compute grouping version 1's hash: the store's start of the
    transition (``Store.grouping_since``) plus ``SHIM_GROUPING_TRANSITION_DAYS``. A store that
    cannot tell now (down at start) gets the whole period from now, which never splits a bug."""
    days = timedelta(days=settings.grouping_transition_days)
    if not days:
        return None
    try:
        since = _grouping_since(settings, journal, store)
    except Exception as exc:  # any store's failure: grouping must not stop the server
        log.warning("could not read when the grouping transition started (%s): computing "
                    "version 1 hashes for %s days from now", exc, days.days)
        return datetime.now(UTC) + days
    return None if since is None else datetime.fromisoformat(since) + days


def _grouping_since(settings: Settings, journal: Journaling, store: Store | None) -> str | None:
    if store is None and isinstance(journal, Journal):
        store = journal.store
    if store is not None:
        return store.grouping_since()
    # The store lives in the journal process: ask the database through a connection of our own.
    probe = open_store(settings.database_url, related_logs=settings.related_logs)
    try:
        return probe.grouping_since()
    finally:
        probe.close()


def share(limit: int, workers: int) -> int:
    """One worker's part of a limit (0, no limit, stays 0)."""
    return -(-limit // workers)


@contextlib.asynccontextmanager
async def running(settings: Settings, keys: Keys, store: Store | None = None
                  ) -> AsyncIterator[State]:
    """A started server's ``State``: the writer and the exporter running until the block ends,
    then stopped in turn and the journal closed."""
    looping = settings.forwards_to_itself()
    if looping is not None:
        raise SettingsError(f"SHIM_FORWARD_DSN={looping.masked!r} names this server itself "
                            f"(port {settings.port}): events would go round in a loop")
    journal = open_journal(settings, store)
    state = State(settings, keys, journal, grouping_v1_until(settings, journal, store))
    await state.writer.start()
    await state.exporter.start()
    if state.forwarder is not None:
        await state.forwarder.start()
    tasks = []
    if state.metrics is not None:
        tasks.append(asyncio.create_task(_keep_gauges(state)))
    if settings.retention_days or settings.backup_retention_days:
        tasks.append(asyncio.create_task(_keep_pruning(state)))
    try:
        yield state
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await state.writer.stop()
        await state.exporter.stop()
        if state.forwarder is not None:
            await state.forwarder.stop()
        state.writer.journal.close()
