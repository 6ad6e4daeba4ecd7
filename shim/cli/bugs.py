"""The CLI's bug and log commands: read through the store, change status through the journal.

Every command prints a table for a person, or with ``--json`` one JSON document for a script.
Status changes are written to the backup log like events (so ``shim restore`` replays them) and
applied to the store in log order, exactly as the server's writer does; the bugs snapshot is then
rewritten, since the server's exporter only learns of changes made by its own writer.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from shim.cli.format import ago, parse_duration, table
from shim.core.levels import LEVELS, STATUSES
from shim.core.records import GROUPING_KEY, Batch, StatusChange
from shim.settings import Settings
from shim.store import Store, iter_bugs, open_store
from shim.writer.journal import Journal
from shim.writer.log import BackupLog
from shim.writer.snapshot import write_snapshot


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit status 1."""


def _now() -> datetime:
    return datetime.now(UTC)


def _open(settings: Settings) -> Store:
    return open_store(settings.database_url, related_logs=settings.related_logs)


def log_and_apply(settings: Settings, store: Store, batch: Batch) -> None:
    """An operator's change (status, assignee, merge): appended to the backup log, then applied
    to the store, as the server's writer does; the bugs snapshot rewritten after it."""
    journal = Journal(BackupLog(settings.backup_dir / "logs"), store)
    if journal.commit([batch]) is None:
        print("the store is behind its backup log: the change is logged and will apply "
              "when the server catches up", file=sys.stderr)
        return
    try:
        write_snapshot(iter_bugs(store), settings.backup_dir)
    except OSError as exc:
        print(f"shim: the bugs snapshot was not rewritten: {exc}", file=sys.stderr)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def bug_number(text: str) -> str:
    """``BUG-00002``, ``bug-2`` or ``2`` -> ``BUG-00002``."""
    match = re.fullmatch(r"(?:bug-?)?0*(\d+)", text.strip(), flags=re.IGNORECASE)
    if not match:
        raise CommandError(f"{text!r} is not a bug number like BUG-00002")
    return f"BUG-{int(match.group(1)):05d}"


def _status_label(bug: dict[str, Any]) -> str:
    return f"{bug['status']} (regression)" if bug.get("is_regression") else str(bug["status"])


def cmd_bugs(settings: Settings, args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = (_now() - parse_duration(args.since)).isoformat(timespec="microseconds")
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    store = _open(settings)
    try:
        bugs = store.list_bugs(status=args.status, component=args.component,
                               workspace=args.workspace, since=since, sort=args.sort,
                               limit=args.limit)
    finally:
        store.close()
    if args.json:
        _print_json(bugs)
        return 0
    if not bugs:
        print("no bugs match")
        return 0
    now = _now()
    print(table(["NUMBER", "STATUS", "SEVERITY", "COUNT", "LAST SEEN", "TITLE"], [
        [b["bug_number"], _status_label(b), b["severity"], b["occurrence_count"],
         ago(b["last_occurred_at"], now), b["title"]] for b in bugs]))
    return 0


def cmd_bug(settings: Settings, args: argparse.Namespace) -> int:
    number = bug_number(args.number)
    store = _open(settings)
    try:
        bug = store.get_bug(number)
        if bug is None:
            raise CommandError(f"no such bug: {number}")
        if args.grouping:
            return _show_grouping(bug, store.list_logs(bug_id=bug["id"], limit=1),
                                  store.bug_hashes(bug["id"]), args.json)
        logs = store.list_logs(bug_id=bug["id"], limit=args.logs)
        history = store.status_history(bug["id"])
    finally:
        store.close()
    if args.json:
        _print_json({**bug, "recent_logs": logs, "status_history": history})
        return 0
    now = _now()
    fields = [
        ("Bug", f"{bug['bug_number']}  {bug['title']}"),
        ("Status", _status_label(bug)),
        ("Severity", f"{bug['severity']} (priority {bug['priority']})"),
        ("Assignee", bug.get("assignee") or "-"),
        ("Component", bug["component"]),
        ("Workspace", bug.get("workspace_id") or "-"),
        ("Occurrences", bug["occurrence_count"]),
        ("First seen", f"{bug['first_occurred_at']} ({ago(bug['first_occurred_at'], now)})"),
        ("Last seen", f"{bug['last_occurred_at']} ({ago(bug['last_occurred_at'], now)})"),
        ("Error", f"{bug.get('error_type') or '-'}: {bug.get('error_message') or ''}"),
        ("Fingerprint", f"{bug['fingerprint']} (grouping v{bug['grouping_version']})"),
        ("Id", bug["id"]),
    ]
    if not (bug.get("error_type") or bug.get("error_message")):  # a message, not an exception
        fields = [field for field in fields if field[0] != "Error"]
    if bug.get("merged_into"):
        fields.insert(1, ("Merged into", f"{bug['merged_into']} (its events count there)"))
    for name, value in fields:
        print(f"{name + ':':<13}{value}")
    if bug.get("description"):
        print(f"\nDescription:\n{bug['description']}")
    if bug.get("stack_trace"):
        print(f"\nStack trace:\n{bug['stack_trace']}")
    if history:
        print("\nStatus changes:")
        for change in history:
            what = ", ".join(part for part in (
                f"status {change['status']}" if change["status"] else "",
                f"assignee {change['assignee'] or '(none)'}" if change["assignee"] is not None
                else "") if part)
            print(f"  {change['at']}  {what}" + (f"  by {change['changed_by']}"
                                                  if change["changed_by"] else ""))
    print(f"\nRecent logs ({len(logs)}):")
    if logs:
        print(table(["TIME", "LEVEL", "EVENT", "MESSAGE"], [
            [log["created_at"][:19], log["log_level"], log["event_id"][:12], log["message"]]
            for log in logs]))
    return 0


def _show_grouping(bug: dict[str, Any], latest: list[dict[str, Any]],
                   hashes: list[dict[str, Any]], as_json: bool) -> int:
    """Why the bug's latest event grouped where it did: the variant of grouping that decided
    and what contributed (its row's ``context._grouping``), and the hashes the bug is found by."""
    event = latest[-1] if latest else None
    context = event.get("context") if event else None
    grouping = context.get(GROUPING_KEY) if isinstance(context, dict) else None
    if as_json:
        _print_json({"bug_number": bug["bug_number"], "fingerprint": bug["fingerprint"],
                     "merged_into": bug.get("merged_into"), "hashes": hashes,
                     "event_id": event["event_id"] if event else None,
                     "created_at": event["created_at"] if event else None,
                     "grouping": grouping})
        return 0
    print(f"Bug:         {bug['bug_number']}  {bug['title']}")
    if bug.get("merged_into"):
        print(f"Merged into: {bug['merged_into']} (its events go there)")
    if event is None:
        print("No event of this bug is stored (retention may have removed them).")
    elif not isinstance(grouping, dict):
        print(f"Event:       {event['event_id']} at {event['created_at']}")
        print(f"Grouped by:  (stored before grouping version 2) fingerprint {event['fingerprint']}")
    else:
        print(f"Event:       {event['event_id']} at {event['created_at']}")
        print(f"Grouped by:  {grouping.get('variant')} (grouping v{grouping.get('version')})")
        print(f"Hash:        {grouping.get('hash')}")
        print("Components:")
        for line in _tree(grouping.get("components"), "  "):
            print(line)
    print("Hashes of this bug:")
    for found in hashes:
        print(f"  {found['hash']}  v{found['grouping_version']}")
    return 0


def _tree(value: Any, indent: str) -> list[str]:
    """A JSON value as indented lines: ``key: value`` for objects, ``- item`` for lists."""
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines += [f"{indent}{key}:", *_tree(item, indent + "  ")]
            else:
                lines.append(f"{indent}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            nested = _tree(item, indent + "  ") if isinstance(item, dict | list) and item else []
            if nested:
                lines += [f"{indent}- {nested[0].strip()}", *nested[1:]]
            else:
                lines.append(f"{indent}- {_scalar(item)}")
        return lines
    return [f"{indent}{_scalar(value)}"]


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def change_bugs(settings: Settings, numbers: list[str], status: str | None,
                assignee: str | None, by: str | None) -> list[dict[str, Any]]:
    """Log and apply a status/assignee change to each bug; return what each looks like now."""
    wanted = [bug_number(n) for n in numbers]
    store = _open(settings)
    try:
        missing = [n for n in wanted if store.get_bug(n) is None]
        if missing:
            raise CommandError(f"no such bug: {', '.join(missing)}")
        at = _now().isoformat(timespec="microseconds")
        changes = [StatusChange(change_id=uuid.uuid4().hex, bug_number=n, status=status,
                                assignee=assignee, at=at, by=by) for n in wanted]
        log_and_apply(settings, store, Batch(status_changes=changes, received_at=at))
        return [bug for n in wanted if (bug := store.get_bug(n)) is not None]
    finally:
        store.close()


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    bugs = change_bugs(settings, args.numbers, status=args.new_status, assignee=None, by=args.by)
    return _report_changed(bugs, args)


def cmd_assign(settings: Settings, args: argparse.Namespace) -> int:
    bugs = change_bugs(settings, args.numbers, status=None, assignee=args.to, by=args.by)
    return _report_changed(bugs, args)


def _report_changed(bugs: list[dict[str, Any]], args: argparse.Namespace) -> int:
    if args.json:
        _print_json(bugs)
    else:
        for bug in bugs:
            assignee = f", assigned to {bug['assignee']}" if bug.get("assignee") else ""
            print(f"{bug['bug_number']}: {_status_label(bug)}{assignee}  {bug['title']}")
    return 0


def _log_rows(logs: list[dict[str, Any]]) -> list[list[object]]:
    return [[log["created_at"][:19].replace("T", " "), log["log_level"], log["component"],
             log.get("bug_number") or "", (log["message"] or "").splitlines()[0]
             if log["message"] else ""] for log in logs]


LOG_HEADERS = ["TIME (UTC)", "LEVEL", "COMPONENT", "BUG", "MESSAGE"]


def cmd_logs(settings: Settings, args: argparse.Namespace) -> int:
    store = _open(settings)
    try:
        bug_id = None
        if args.bug:
            bug = store.get_bug(bug_number(args.bug))
            if bug is None:
                raise CommandError(f"no such bug: {bug_number(args.bug)}")
            bug_id = bug["id"]
        query = {"level": args.level, "component": args.component, "bug_id": bug_id}
        logs = store.list_logs(**query, limit=args.limit)
        _emit_logs(logs, args, header=True)
        if not args.tail:
            return 0
        cursor = logs[-1]["cursor"] if logs else 0
        try:
            while True:
                time.sleep(args.interval)
                fresh = store.list_logs(**query, after=cursor, limit=1000)
                if fresh:
                    _emit_logs(fresh, args, header=False)
                    cursor = fresh[-1]["cursor"]
        except KeyboardInterrupt:
            return 0
    finally:
        store.close()


def _emit_logs(logs: list[dict[str, Any]], args: argparse.Namespace, header: bool) -> None:
    if args.json:
        if args.tail:  # one JSON object per line, so a pipe can read them as they come
            for log in logs:
                sys.stdout.write(orjson.dumps(log, default=str).decode() + "\n")
        else:
            _print_json(logs)
    elif logs:
        text = table(LOG_HEADERS, _log_rows(logs))
        print(text if header else "\n".join(text.splitlines()[1:]))
    elif header and not args.tail:
        print("no logs match")
    sys.stdout.flush()


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    now = _now()
    store = _open(settings)
    try:
        stats = store.stats(hour_ago=(now - parse_duration("1h")).isoformat(),
                            day_ago=(now - parse_duration("24h")).isoformat())
    finally:
        store.close()
    forward_dir = settings.data_dir / "forward"
    if settings.forward_dsn is not None or forward_dir.is_dir():
        from shim.forward.spool import queue_summary

        stats["forward"] = queue_summary(forward_dir)
    if args.json:
        _print_json(stats)
        return 0
    print("Events by level")
    print(table(["LEVEL", "LAST HOUR", "LAST DAY"], [
        [level, stats["levels"]["hour"].get(level, 0), stats["levels"]["day"].get(level, 0)]
        for level in reversed(LEVELS)]))
    types = sorted(set(stats["items"]["day"]) | set(stats["items"]["hour"]))
    print("\nItems by type")
    print(table(["TYPE", "LAST HOUR", "LAST DAY"], [
        [t, stats["items"]["hour"].get(t, 0), stats["items"]["day"].get(t, 0)] for t in types])
        if types else "none")
    print("\nBugs by status")
    print(table(["STATUS", "BUGS"], [[s, stats["bugs_by_status"].get(s, 0)]
                                      for s in STATUSES]))
    print("\nBusiest bugs (seen in the last day)")
    print(table(["NUMBER", "COUNT", "STATUS", "TITLE"], [
        [b["bug_number"], b["occurrence_count"], b["status"], b["title"]]
        for b in stats["busiest"]]) if stats["busiest"] else "none")
    if "forward" in stats:
        queue = stats["forward"]
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(queue["dropped"].items()))
        print("\nForwarding to the upstream Sentry")
        print(table(["PENDING", "BYTES", "SENT", "DROPPED"], [
            [queue["pending"], queue["pending_bytes"], queue["sent"], dropped or "0"]]))
        if queue["last_error"]:
            print(f"last error: {queue['last_error']}")
    return 0
