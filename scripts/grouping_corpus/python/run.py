"""Scenarios of the Python part of the grouping corpus, run by scripts/record_grouping_corpus.py.

    python run.py all | attach | unhandled GROUP N

Each captured event carries its expected group in the tag ``expect`` (the recorder moves it out of
the event); ``before_send`` appends the event, as the SDK would send it, to $GROUPING_OUT and drops
it. The code is written the way a scanner would be: the failures are real exceptions raised by
real frames, captured by sentry_sdk.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sentry_sdk
from scanner import batch, db, ocr, parse, storage, tree
from sentry_sdk.integrations.logging import LoggingIntegration
from vendorlib import client


def keep(event: dict[str, Any], hint: dict[str, Any]) -> None:
    with open(os.environ["GROUPING_OUT"], "a", encoding="utf-8") as out:
        out.write(json.dumps(event, default=str) + "\n")


def init(**options: Any) -> None:
    sentry_sdk.init(dsn="http://5ec0de0f1c7e5ec0de0f1c7e5ec0de0f@127.0.0.1:9/1",
                    before_send=keep, in_app_exclude=["vendorlib"],
                    # 3.x no longer turns error logs into events by default; 2.x did
                    integrations=[LoggingIntegration(event_level=logging.ERROR)], **options)


@contextmanager
def expect(group: str, **tags: str) -> Iterator[Any]:
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("expect", group)
        for name, value in tags.items():
            scope.set_tag(name, value)
        yield scope


def capture(group: str, action: Callable[..., object], *args: Any,
            fingerprint: list[str] | None = None, **tags: str) -> None:
    """Run ``action(*args)`` and capture what it raises, as a job handler would."""
    with expect(group, **tags) as scope:
        if fingerprint is not None:
            scope.fingerprint = fingerprint
        try:
            action(*args)
        except BaseException:  # ExceptionGroup and RecursionError too
            sentry_sdk.capture_exception()


def exceptions() -> None:
    for document, number in (("scan-7.pdf", 3), ("invoice 42.pdf", 9), ("a.pdf", 120)):
        capture("py-read-page", ocr.read_page, document, number)
    for document in ("scan-7.pdf", "report.pdf"):
        capture("py-parse-header", ocr.parse_header, document)
    for key in ("page", "user_1234"):
        capture("py-lookup-keyerror", ocr.lookup, {"other": 1}, key)
    for host in ("10.0.0.7", "db-3.internal"):
        capture("py-chained-runtime", db.fetch_with_retry, host)
        capture("py-runtime-no-cause", db.fetch_plain, host)
    for text in ("", "{bad", "[1, 2"):
        capture("py-json-config", parse.load_config, text)
    capture("py-json-manifest", parse.load_manifest, "{bad")
    for text in ("abc", "12a", "seven"):
        capture("py-int-page-number", parse.page_number, text)
    for dpi in (300, 600):
        capture("py-scanner-zero-division", ocr.Scanner(dpi).scan, [1, 0])
        capture("py-lambda-zero-division", ocr.Scanner(dpi).ratios, [2, 0])
    # Captured inside the library: no frame is in app, so every frame counts.
    for payload in (b"abc", b"abcdefgh"):
        with expect("py-library-send"):
            client.guarded(client.retry, payload)
    for port in (5432, 6543):
        with expect("py-library-connect"):
            client.guarded(client.connect, port)


def recursion() -> None:
    for limit in (90, 200):
        sys.setrecursionlimit(limit)
        capture("py-recursion-walk", tree.walk, 0)
        capture("py-recursion-mutual", tree.walk_even, 0)
    sys.setrecursionlimit(1000)


def exception_groups() -> None:
    for pages in ([3, 4], [5, 6, 7], [9]):
        capture("py-group-same-members", batch.read_all, "scan.pdf", pages)
    for pages, keys in (([3], ["a"]), ([4, 5], ["b"]), ([], ["c", "d"]), ([8], [])):
        # the last two have members of one kind only: they group as that member would
        group = "py-group-mixed" if pages and keys else (
            "py-group-only-keyerror" if keys else "py-group-only-read-page")
        capture(group, batch.read_and_index, "scan.pdf", pages, keys)


def fingerprints() -> None:
    capture("py-custom-database", db.query, "10.0.0.1", "select 1",
            fingerprint=["database-unavailable"])
    capture("py-custom-database", db.fetch_plain, "10.0.0.2",
            fingerprint=["database-unavailable"])
    for shard, number in (("a", 3), ("a", 4), ("b", 3)):
        capture(f"py-custom-default-shard-{shard}", ocr.read_page, "x.pdf", number,
                fingerprint=["{{ default }}", "{{ tags.shard }}"], shard=shard)
    capture("py-read-page", ocr.read_page, "x.pdf", 5, fingerprint=["{{ default }}"])


def messages() -> None:
    log = logging.getLogger("scanner.worker")
    for number, document in ((3, "a.pdf"), (17, "b.pdf"), (250, "scan 9.pdf")):
        with expect("py-log-scan-failed"):
            log.error("failed to scan page %d of %s", number, document)
    with expect("py-log-upload-failed"):
        log.error("failed to upload page %d of %s", 3, "a.pdf")
    for count in (5000, 12, 731):
        with expect("py-message-queue-jobs"):
            sentry_sdk.capture_message(f"Queue is {count} jobs behind")
    with expect("py-message-queue-workers"):
        sentry_sdk.capture_message("Queue is 5 workers short")
    for seconds in (30, 95):
        with expect("py-message-job-stuck"):
            sentry_sdk.capture_message(
                f"job {uuid.uuid4()} stuck for {seconds}s since 2026-12-0{seconds % 7 + 1}T10:00:00Z"
                f" on 10.1.{seconds}.4 (owner ops{seconds}@example.com)")


def attached_stacks() -> None:
    for percent in (91, 97):
        with expect("py-attached-disk"):
            storage.check_disk(percent)
    with expect("py-attached-quota"):
        storage.check_quota(512)


def main() -> None:
    what = sys.argv[1]
    if what == "attach":
        init(attach_stacktrace=True)
        attached_stacks()
    elif what == "unhandled":
        init()
        sentry_sdk.set_tag("expect", sys.argv[2])
        ocr.read_page("night-batch.pdf", int(sys.argv[3]))  # escapes: the excepthook reports it
    else:
        init()
        exceptions()
        recursion()
        exception_groups()
        fingerprints()
        messages()
    sentry_sdk.flush()


if __name__ == "__main__":
    main()
