"""Scanner scripts using ``sdk_config``, shared by the shim tests (test_sdk_config.py) and the
wire check against a strict Sentry-like server (test_wire_compat.py): the same scripts, so what
shim stores is exactly what hosted Sentry would have been sent.

Each is a real script run with ``python -c`` and ``SENTRY_DSN`` set, as on a scanner machine: by
the Python of an SDK environment (``.venvs/sdk2`` or ``sdk3``, with sdk_config installed there),
from a directory outside the checkout and without it on PYTHONPATH, so it is the installed
sdk_config that runs. ``SENTRY_DEBUG=1`` (read by the SDK itself) lets ``conftest.sdk_problems``
see any refused or lost send.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from conftest import SCRIPTS, run_script, script, sdk_python


@dataclass(frozen=True)
class Scenario:
    """A script, how it exits, and what it sends: ``events`` event items, ``logs`` log records."""

    name: str
    code: str
    returncode: int = 0
    events: int = 0
    logs: int = 0
    env: dict[str, str] = field(default_factory=dict)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The children's extra environment: only ``tests/scripts`` importable besides the SDK
    environment's own packages (never the checkout, whatever the parent's PYTHONPATH), the SDK's
    debug output on."""
    return {"PYTHONPATH": str(SCRIPTS), "SENTRY_DEBUG": "1", **(extra or {})}


def run_scenario(scenario: Scenario, dsn: str, major: str, cwd: Path,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``scenario`` with sentry-sdk ``major``.x and the sdk_config installed beside it, in
    ``cwd`` (a directory outside the checkout)."""
    return run_script(scenario.code, dsn, env=child_env({**scenario.env, **(env or {})}),
                      python=sdk_python(major), cwd=cwd)


UNHANDLED = Scenario("unhandled", script("""
    import sdk_config

    sdk_config.init("ocr-scanner", workspace_id="ws-7")

    def read_page(number):
        raise ValueError(f"page {number} is empty")

    def scan_document():
        read_page(3)

    print("scanning")
    scan_document()
"""), returncode=1, events=1)

# A legacy script: no init call, only the in-house API (BugTracker() initialises the SDK).
TRACKER = Scenario("tracker", script("""
    from sdk_config import BugTracker

    tracker = BugTracker()
    for level in ("debug", "info", "warning", "error", "critical"):
        tracker.log(level, f"{level}: page 7 unreadable", "ocr-analyser",
                    details={"page": 7, "level": level}, workspace_id=f"ws-{level}")
        try:
            {}["page"]
        except KeyError as error:
            tracker.log(level, f"{level}: lookup failed", "ocr-analyser", error=error)
    print("logged")
"""), events=10)

DECORATOR_SYNC = Scenario("decorator_sync", script("""
    import sdk_config
    from sdk_config import track_errors

    sdk_config.init("billing")

    @track_errors("billing", workspace_id="ws-2")
    def total(prices):
        return sum(prices)

    @track_errors("billing", workspace_id="ws-2")
    def charge(amount):
        return 100 / amount

    print("total", total([1, 2]))
    charge(0)
"""), returncode=1, events=1)

DECORATOR_ASYNC = Scenario("decorator_async", script("""
    import asyncio
    import sdk_config
    from sdk_config import track_errors

    sdk_config.init("telegram-bot")

    @track_errors("telegram-bot", workspace_id="ws-3")
    async def reply(update):
        await asyncio.sleep(0)
        return update["chat"]

    async def main():
        print("chat", await reply({"chat": 42}))
        try:
            await reply({})
        except KeyError:
            print("re-raised KeyError")

    asyncio.run(main())
"""), events=1)

LOGGING = Scenario("logging", script("""
    import logging
    import sdk_config

    sdk_config.init("cron-cleanup")
    log = logging.getLogger("cleanup")
    log.warning("slow disk")  # a breadcrumb only
    log.error("could not delete %s", "/tmp/x")
    log.critical("database unreachable")
    print("done")
"""), events=2)

SENTRY_LOGS = Scenario("sentry_logs", script("""
    import logging
    import sdk_config
    import sentry_sdk

    sdk_config.init("cron-cleanup", workspace_id="ws-9")
    sentry_sdk.set_user({"id": "operator-7"})  # on events; never on logs (no PII)
    logging.getLogger().setLevel(logging.INFO)  # Python's default, WARNING, would drop INFO
    log = logging.getLogger("cleanup")
    log.debug("below INFO: not sent")
    log.info("scanned %d files", 12)
    log.error("could not delete %s", "/tmp/x")
"""), events=1, logs=2, env={"SHIM_SEND_LOGS": "1"})

# An exception Python cannot raise (in __del__) is printed and ignored, as on 2.x: 3.x alone would
# send it as an unhandled error.
UNRAISABLE = Scenario("unraisable", script("""
    import logging
    import sdk_config

    sdk_config.init("pdf-reader")

    class Handle:
        def __del__(self):
            raise OSError("close failed")

    Handle()
    logging.getLogger("pdf").error("page %d skipped", 4)
    print("read")
"""), events=1)

ALL = [UNHANDLED, TRACKER, DECORATOR_SYNC, DECORATOR_ASYNC, LOGGING, SENTRY_LOGS, UNRAISABLE]
