"""``shim monitors``: the cron monitors the stored check-ins describe, and one monitor's recent
check-ins (``shim monitors show SLUG``)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from shim.cli.bugs import CommandError, _open, _print_json
from shim.cli.format import ago, table
from shim.monitors.summary import summarise
from shim.settings import Settings

READ = 10_000  # the newest check-ins read: a week of a job that checks in every minute


def cmd_monitors(settings: Settings, args: argparse.Namespace) -> int:
    if args.what and args.what[0] != "show":
        raise CommandError(f"unknown monitors action {args.what[0]!r}: use `shim monitors` or "
                           "`shim monitors show SLUG`")
    if args.what and len(args.what) != 2:
        raise CommandError("name one monitor: shim monitors show SLUG")
    store = _open(settings)
    try:
        check_ins: list[dict[str, Any]] = store.recent_check_ins(READ)
    finally:
        store.close()
    now = datetime.now(UTC)
    if args.what:
        return _show(args.what[1], check_ins, args)
    monitors = summarise(check_ins, now)
    if args.json:
        _print_json([m.as_json() for m in monitors])
        return 0
    if not monitors:
        print("no monitors: no check-in is stored yet (an SDK's @monitor or capture_checkin, or "
              "GET /api/<project>/cron/<slug>/<key>/)")
        return 0
    print(table(["SLUG", "ENVIRONMENT", "SCHEDULE", "STATE", "LAST CHECK-IN", "NEXT EXPECTED"], [
        [m.slug, m.environment or "-", m.schedule or "(none sent)", m.state,
         f"{m.last_status}, {ago(m.last_check_in, now)}",
         _when(m.next_expected, now)] for m in monitors]))
    return 0


def _when(moment: str | None, now: datetime) -> str:
    if moment is None:
        return "-"
    then = datetime.fromisoformat(moment)
    if then <= now:
        return f"{ago(moment, now)} (overdue)"
    minutes = int((then - now).total_seconds() // 60)
    return f"in {minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"in {minutes}m"


def _show(slug: str, check_ins: list[dict[str, Any]], args: argparse.Namespace) -> int:
    mine = [c for c in check_ins if c["monitor_slug"] == slug][:args.limit]  # newest first
    if not mine:
        raise CommandError(f"no such monitor: {slug}")
    if args.json:
        _print_json(mine)
        return 0
    now = datetime.now(UTC)
    print(table(["WHEN", "STATUS", "DURATION", "ENVIRONMENT", "CHECK-IN ID"], [
        [f"{ago(str(c['created_at']), now)} ({str(c['created_at'])[:19]})", c["status"],
         "-" if c.get("duration") is None else f"{float(c['duration']):.1f}s",
         c.get("environment") or "-", c["check_in_id"]] for c in mine]))
    return 0


def add_commands(add: Any) -> None:
    monitors = add("monitors", "cron monitors: schedule, state, last check-in, next expected run "
                   "(`shim monitors show SLUG`: its recent check-ins)", cmd_monitors)
    monitors.add_argument("what", nargs="*", metavar="show SLUG",
                          help="show one monitor's recent check-ins")
    monitors.add_argument("--limit", type=int, default=50, help="check-ins shown by `show`")
    monitors.add_argument("--json", action="store_true", help="print JSON for scripts")
