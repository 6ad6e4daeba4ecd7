"""The server's Prometheus metrics (``GET /metrics``), defined once, with prometheus_client.

Off unless a token is set (``SHIM_METRICS_TOKEN``): then ``Metrics`` counts, and every place
that counts is handed one (``None`` when off, so an unmonitored server pays nothing). Names follow
Prometheus's conventions: base units, ``_total`` for counters, and no label that grows with the
data (no bug, event, key or user ids).

With ``--workers N`` each server process counts in files of its own under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode; ``shim serve`` points it at
``<SHIM_DATA_DIR>/metrics`` and empties it at start, before anything imports prometheus_client),
and a scrape of any worker adds them all up, so one scrape reports the whole server. Gauges are
set by each process every few seconds and at each scrape: the queue depths add up across
processes, the store's lag is the largest seen.

May import the core and prometheus_client; the app and the forwarder count through it, the
writer through a callback (``Writer.on_commit``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

from shim.core.records import Batch, Stored

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess() -> bool:
    """Whether this process counts in prometheus_client's shared files (``--workers`` and
    ``shim serve``), rather than in its own memory (tests that build an app in-process)."""
    return bool(os.environ.get(MULTIPROCESS_DIR))


class Metrics:
    """Every metric the server exports. One per process; its registry is private, so two apps
    built in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), registry=registry)

        self.envelopes = counter(
            "shim_envelopes_total", "Envelope and store requests answered, by result and status.",
            ("result", "status"))
        self.items = counter("shim_items_total", "Items received in stored envelopes, by type.",
                             ("type",))
        self.events_stored = counter(
            "shim_events_stored_total", "error_logs rows stored (not duplicates), by level.",
            ("level",))
        self.duplicates = counter("shim_events_duplicate_total",
                                  "Events received again and not stored twice.")
        self.events_trimmed = counter("shim_events_trimmed_total",
                                      "Events over SHIM_MAX_EVENT_BYTES stored trimmed.")
        self.events_slimmed = counter(
            "shim_events_slimmed_total", "Repeats stored slim during an error storm.")
        self.check_ins = counter("shim_check_ins_total", "Check-ins stored, by status.",
                                 ("status",))
        self.forwarded = counter(
            "shim_forwarded_total",
            "Envelopes forwarded to the upstream Sentry, by result (sent, or the reason dropped).",
            ("result",))
        self.retention_deleted = counter(
            "shim_retention_deleted_total", "Rows deleted by retention, by table.", ("table",))
        self.request_seconds = Histogram(
            "shim_request_duration_seconds",
            "Time to answer an envelope or store request, from its first byte read.",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.commit_batches = Histogram(
            "shim_write_batch_requests", "Requests committed together in one write.",
            registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.commit_seconds = Histogram(
            "shim_write_duration_seconds",
            "Time of one write: the backup log's append and fsync, then the store's transaction.",
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0))
        self.writer_queue = Gauge(
            "shim_writer_queue_requests", "Requests waiting for the writer.",
            registry=registry, multiprocess_mode="livesum")
        self.store_lag = Gauge(
            "shim_store_lag_bytes", "Bytes of the backup log the store has not applied yet.",
            registry=registry, multiprocess_mode="max")
        self._by_status: dict[int, Counter] = {}
        self._by_type: dict[str, Counter] = {}
        self._by_level: dict[str, Counter] = {}
        self._by_check_in: dict[str, Counter] = {}
        self.forward_queue = Gauge(
            "shim_forward_queue_envelopes", "Envelopes waiting to be forwarded upstream.",
            registry=registry, multiprocess_mode="livesum")

    # What the routes count.

    def answered(self, status: int) -> None:
        child = self._by_status.get(status)
        if child is None:  # a labelled child is looked up once (labels() costs microseconds)
            result = "accepted" if status < 400 else "rejected"
            child = self._by_status[status] = self.envelopes.labels(result, str(status))
        child.inc()

    def committed(self, batch: Batch, stored: list[Stored]) -> None:
        """One request's batch, as the store took it."""
        for item_type, count in batch.item_counts.items():
            _child(self._by_type, self.items, item_type).inc(count)
        duplicates = 0
        for row, outcome in zip(batch.error_logs, stored, strict=False):
            if outcome.duplicate:
                duplicates += 1
            else:
                _child(self._by_level, self.events_stored, row.log_level).inc()
        if duplicates:
            self.duplicates.inc(duplicates)
        for check_in in batch.check_ins:
            _child(self._by_check_in, self.check_ins, check_in.status).inc()

    def observe_commit(self, requests: int, seconds: float) -> None:
        """One write of the writer (``Writer.on_commit``)."""
        self.commit_batches.observe(requests)
        self.commit_seconds.observe(seconds)

    def exposition(self) -> bytes:
        """The text a scrape gets: every process's counts when in multiprocess mode."""
        if multiprocess():
            registry = CollectorRegistry()
            _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def _child(children: dict[str, Counter], counter: Counter, label: str) -> Counter:
    """``counter.labels(label)``, looked up once per label value."""
    child = children.get(label)
    if child is None:
        child = children[label] = counter.labels(label)
    return child
