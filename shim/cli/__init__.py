"""The ``shim`` command: run the server, read and triage bugs, restore and export backups, migrate,
list and test alert channels.

Every command reads its settings from the ``SHIM_*`` variables, like the server, and works while the
server is running.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import ipaddress
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from shim.cli.bugs import (
    CommandError,
    _print_json,
    cmd_assign,
    cmd_bug,
    cmd_bugs,
    cmd_logs,
    cmd_stats,
    cmd_status,
)
from shim.cli.channels import add_commands as add_channel_commands
from shim.cli.format import parse_duration
from shim.cli.keys import KEY_FILE, dsn, load_or_create_key
from shim.cli.merge import cmd_merge, cmd_unmerge
from shim.cli.monitors import add_commands as add_monitor_commands
from shim.cli.replay import MAX_CONCURRENCY, ReplayError, Target, describe, read_inputs, replay
from shim.core.auth import Keys, utc_text
from shim.core.levels import LEVELS, STATUSES
from shim.settings import Settings, SettingsError
from shim.store import MigrationError, UnsupportedStore, apply_migrations, iter_bugs, open_store
from shim.writer.restore import restore
from shim.writer.snapshot import chunks, export

if TYPE_CHECKING:
    from shim.app import Edge

DESCRIPTION = """\
A Sentry-compatible error ingestion server, and the tools to read and triage what it stored.

Every command reads the SHIM_* environment variables, like the server, and works while the server
is running."""


def resolve_keys(settings: Settings, announce: bool) -> Keys:
    """The configured keys, or the generated one kept in the data dir (created on first start)."""
    if settings.public_keys is not None:
        return Keys(settings.public_keys)
    key, created = load_or_create_key(settings.data_dir)
    if created and announce:
        print(f"shim: generated a DSN key in {settings.data_dir / 'public_key'}", file=sys.stderr)
    return Keys(((key, None),))


def base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def print_dsns(settings: Settings, keys: Keys) -> None:
    """``DSN:`` lines, the ones to paste, for keys that never expire; a key that expires gets an
    ``Expiring DSN`` line saying when; one already expired gets only a warning on stderr."""
    now = keys.now()
    for entry in keys.entries:
        link = dsn(entry.key, base_url(settings), entry.project or "1")
        if entry.expires_at is None:
            print(f"DSN: {link}")
        elif not entry.expired(now):
            print(f"Expiring DSN, refused from {utc_text(entry.expires_at)}: {link}")
        else:
            print(f"shim: warning: the DSN key {entry.key} expired at "
                  f"{utc_text(entry.expires_at)} and is refused; remove it from SHIM_PUBLIC_KEYS",
                  file=sys.stderr)
    if not list(keys):
        print("shim: warning: every key in SHIM_PUBLIC_KEYS has expired, so every request will "
              "be refused (401)", file=sys.stderr)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# Python collects its youngest objects every 700 allocations; decoding one event allocates thousands
# of short-lived dicts and lists, so a busy server ran several collections a request (~6% of its
# main thread, measured with gc.callbacks). Every 10,000 gave +8% events/s in alternating runs
# (bench/RESULTS.md, fourth pass); nearly all of them are freed by reference counting anyway.
SERVER_GC_THRESHOLD = 10_000


def tune_gc() -> None:
    """Collect the youngest objects every ``SERVER_GC_THRESHOLD`` allocations, as the server does."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(SERVER_GC_THRESHOLD, older, oldest)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    settings = settings.replace(host=args.host or settings.host, port=args.port or settings.port,
                                workers=args.workers or settings.workers)
    if settings.metrics_tokens:
        # Every process of this server counts in files here (prometheus_client's multiprocess
        # mode, chosen when it is first imported: so before the app is), from zero at each start.
        counted = settings.data_dir / "metrics"
        _reset_metrics(counted)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(counted.resolve())

    import uvicorn

    from shim.app import create_app

    if settings.public_keys is None and not is_loopback(settings.host):
        # A generated key is printed to the console and kept in the data dir; fine for a server
        # only this machine can reach, not for one other machines can send to.
        print(f"shim: refusing to serve on {settings.host}, which is not a loopback address, "
              "without SHIM_PUBLIC_KEYS: set SHIM_PUBLIC_KEYS to the DSN key(s) to accept "
              "(e.g. SHIM_PUBLIC_KEYS=$(python3 -c 'import secrets; print(secrets.token_hex(16))')),"
              " or bind to 127.0.0.1", file=sys.stderr)
        return 2
    looping = settings.forwards_to_itself()
    if looping is not None:
        print(f"shim: SHIM_FORWARD_DSN={looping.masked} names this server itself (port "
              f"{settings.port}): events would go round in a loop; point it at the upstream "
              "Sentry", file=sys.stderr)
        return 2
    keys = resolve_keys(settings, announce=True)
    print_dsns(settings, keys)
    if settings.forward_dsn is not None:
        print("shim: forwarding to " + ", ".join(u.masked for u in settings.forward_dsn.all()),
              file=sys.stderr)
    print(f"shim: storing in {settings.database_url}", file=sys.stderr)
    sys.stdout.flush()
    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, log_level=settings.log_level,
        access_log=settings.log_level == "debug", server_header=False,
        # The client's address (which X-Forwarded-For corrects behind a proxy) is used only by
        # the access log: without it, one middleware less on every request.
        proxy_headers=settings.log_level == "debug")
    if settings.workers == 1:
        tune_gc()
        uvicorn.run(create_app(settings, keys), **options)
    else:
        # The store is created (and migrated) once here, so the workers open an existing one
        # rather than race to create it.
        open_store(settings.database_url, related_logs=settings.related_logs).close()
        # Each worker is a new process that builds its app from the environment: hand it what
        # the command line chose. A generated key is already in the data dir for them to read.
        os.environ.update(SHIM_HOST=settings.host, SHIM_PORT=str(settings.port),
                          SHIM_WORKERS=str(settings.workers))
        uvicorn.run("shim.cli:worker_app", factory=True, workers=settings.workers, **options)
    return 0


def _reset_metrics(directory: Path) -> None:
    """Counts start from zero at each start, as Prometheus expects of a restarted target."""
    directory.mkdir(parents=True, exist_ok=True)
    for counts in directory.glob("*.db"):
        counts.unlink()


def worker_app() -> Edge:
    """The app of one of the processes of ``shim serve --workers N``. They share the backup log
    (its lock orders their writes) and the store; each has its own writer and limits."""
    from shim.app import create_app

    tune_gc()
    settings = Settings.from_env()
    _log_like_the_server(settings)  # a new process: the parent's logging setup is not inherited
    return create_app(settings, resolve_keys(settings, announce=False))


def cmd_dsn(settings: Settings, args: argparse.Namespace) -> int:
    keys = resolve_keys(settings, announce=True)
    if not args.json:
        print_dsns(settings, keys)
        return 0
    now = keys.now()
    print(orjson.dumps([{
        "dsn": dsn(entry.key, base_url(settings), entry.project or "1"),
        "project": entry.project,
        "expires_at": utc_text(entry.expires_at) if entry.expires_at else None,
        "expired": entry.expired(now),
    } for entry in keys.entries], option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    source = Path(args.source) if args.source else settings.backup_dir / "logs"
    store = open_store(args.database or settings.database_url,
                       related_logs=settings.related_logs)
    try:
        report = restore(source, store)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    if args.json:
        print(orjson.dumps(dataclasses.asdict(report), option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"read {report.lines} lines: {report.events} events stored, {report.duplicates} "
              f"already present, {report.check_ins} check-ins, {report.status_changes} status "
              f"changes, {report.merges} merges")
        for problem in report.unreadable:
            print(f"skipped unreadable line: {problem}", file=sys.stderr)
        for torn in report.torn:
            print(f"left out a torn last line (a write cut short by a crash, or still being "
                  f"written): {torn}", file=sys.stderr)
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings.database_url, related_logs=settings.related_logs)
    try:
        if args.out == "-":
            for chunk in chunks(iter_bugs(store), args.format):
                sys.stdout.buffer.write(chunk)
            return 0
        if args.background and not store.bugs_after("", 1) and not (
                settings.backup_dir / "bugs.csv").exists():
            return 0  # the server's exporter: no bugs yet, no empty snapshot
        written = export(store, settings.backup_dir, args.format,
                         Path(args.out) if args.out else None)
    finally:
        store.close()
    if args.json:
        print(orjson.dumps({"wrote": [str(path) for path in written]},
                           option=orjson.OPT_INDENT_2).decode())
    elif not args.background:
        for path in written:
            print(f"wrote {path}")
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    if args.dsn:
        try:
            target = Target.from_dsn(args.dsn)
        except ReplayError as exc:
            raise CommandError(str(exc)) from None
    else:
        key, project = args.key, None
        if not key:
            if settings.public_keys is None and not (settings.data_dir / KEY_FILE).exists():
                raise CommandError("no DSN key to send with: pass --key or --dsn (or set "
                                   "SHIM_PUBLIC_KEYS, or SHIM_DATA_DIR to the server's data dir)")
            live = next(iter(resolve_keys(settings, announce=False)), None)
            if live is None:
                raise CommandError("every key in SHIM_PUBLIC_KEYS has expired: pass --key or "
                                   "--dsn")
            key, project = live
        target = Target((args.url or base_url(settings)).rstrip("/"), key, project or "1")
    if args.project:
        if not args.project.isdigit():
            raise CommandError(f"--project {args.project!r} must be a number")
        target = dataclasses.replace(target, project=args.project)
    if args.key:  # also over a --dsn's key
        target = dataclasses.replace(target, key=args.key)
    inputs = read_inputs([Path(p) for p in args.paths])
    if not inputs.requests and not inputs.unreadable:
        raise CommandError(f"nothing to replay in {', '.join(args.paths)}")
    try:
        summary = replay(inputs, target, concurrency=args.concurrency, repeat=args.repeat,
                         new_ids=args.new_ids, timeout=args.timeout)
    except ReplayError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(orjson.dumps({"url": target.url, "project": target.project, **summary.as_json()},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        for line in describe(summary):
            print(line)
    return 0 if summary.ok else 1


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.sql:
        from shim.store.migrate import script

        sys.stdout.write(script())
        return 0
    url = args.database or settings.database_url
    try:
        applied, version = apply_migrations(url)
    except (MigrationError, UnsupportedStore) as exc:
        raise CommandError(str(exc)) from None
    if url.startswith(("postgresql://", "postgres://")):
        from shim.store.postgres import redacted

        url = redacted(url)
    if args.json:
        print(orjson.dumps({"database": url, "applied": applied, "version": version},
                           option=orjson.OPT_INDENT_2).decode())
    elif applied:
        for name in applied:
            print(f"applied {name}")
        print(f"{url}: schema at version {version}")
    else:
        print(f"nothing to do: {url} is at schema version {version}")
    return 0


def cmd_prune(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from shim.writer.log import BackupLog
    from shim.writer.retention import prune

    if args.older_than:
        try:
            days: float | None = parse_duration(args.older_than).total_seconds() / 86400
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    else:
        days = settings.retention_days or None
    backup_days = settings.backup_retention_days or None
    if days is None and backup_days is None:
        raise CommandError("retention is off (SHIM_RETENTION_DAYS=0 and no "
                           "SHIM_BACKUP_RETENTION_DAYS): give --older-than, e.g. 90d")
    store = open_store(settings.database_url)
    try:
        done = prune(store, datetime.now(UTC), days, BackupLog(settings.backup_dir / "logs"),
                     backup_days, dry_run=args.dry_run)
        shrinks = getattr(store, "incremental_vacuum", lambda: True)()
    finally:
        store.close()
    if args.json:
        _print_json({**done.as_json(), "file_shrinks": shrinks})
        return 0
    print(f"shim: {done}")
    if not shrinks:
        print("shim: this SQLite database was made before incremental auto-vacuum, so its file "
              "keeps the freed pages for reuse rather than shrinking: `shim migrate` converts it "
              "(it rewrites the file once, needing as much free disk again)", file=sys.stderr)
    return 0


def _json_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="print JSON for scripts")


def _by_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument("--by", default=os.environ.get("USER"),
                         help="who made the change (default: $USER)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="shim", description=DESCRIPTION,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, summary: str, run: Callable[[Settings, argparse.Namespace], int]
            ) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=summary, description=summary + ".")
        command.set_defaults(run=run)
        return command

    serve = add("serve", "run the ingestion server", cmd_serve)
    serve.add_argument("--host", help="address to bind (default SHIM_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SHIM_PORT or 8000)")
    serve.add_argument("--workers", type=int, choices=range(1, 65), metavar="N",
                       help="server processes sharing the port (default SHIM_WORKERS or 1)")
    _json_flag(add("dsn", "print the DSN(s) to paste into sentry_sdk.init", cmd_dsn))

    bugs = add("bugs", "list bugs, most recently seen first", cmd_bugs)
    bugs.add_argument("--status", choices=STATUSES)
    bugs.add_argument("--component")
    bugs.add_argument("--workspace")
    bugs.add_argument("--since", help="only bugs seen within this long, e.g. 30m, 24h, 7d")
    bugs.add_argument("--sort", choices=("last", "count"), default="last",
                      help="last seen (default) or occurrence count")
    bugs.add_argument("--limit", type=int, default=50)
    _json_flag(bugs)

    bug = add("bug", "show one bug: every field, the stack trace, recent logs", cmd_bug)
    bug.add_argument("number", help="BUG-00002 (or just 2)")
    bug.add_argument("--logs", type=int, default=10, help="how many recent logs to show")
    bug.add_argument("--grouping", action="store_true",
                     help="why its latest event grouped here: the variant and components that "
                          "decided, and the hashes the bug is found by")
    _json_flag(bug)

    for name, status, summary in (("resolve", "resolved", "mark bugs resolved"),
                                  ("reopen", "open", "reopen bugs"),
                                  ("close", "closed", "close bugs (won't fix)"),
                                  ("start", "in_progress", "mark bugs in progress")):
        change = add(name, summary, cmd_status)
        change.add_argument("numbers", nargs="+", metavar="BUG")
        change.set_defaults(new_status=status)
        _by_flag(change)
        _json_flag(change)
    assign = add("assign", "assign bugs to someone", cmd_assign)
    assign.add_argument("numbers", nargs="+", metavar="BUG")
    assign.add_argument("--to", required=True, help="name to assign to ('' to unassign)")
    _by_flag(assign)
    _json_flag(assign)

    merge = add("merge", "fold bugs into the first: counts, times, logs and hashes; later "
                "events of any of them count on it", cmd_merge)
    merge.add_argument("numbers", nargs="+", metavar="BUG", help="the bug to keep, then others")
    _by_flag(merge)
    _json_flag(merge)
    unmerge = add("unmerge", "split hashes (see `shim bug N --grouping`) out of a bug, with "
                  "their logs, into the bug they came from or a new one", cmd_unmerge)
    unmerge.add_argument("number", metavar="BUG")
    unmerge.add_argument("hashes", nargs="+", metavar="HASH")
    _by_flag(unmerge)
    _json_flag(unmerge)

    logs = add("logs", "show recent error_logs, oldest first", cmd_logs)
    logs.add_argument("--level", choices=LEVELS, help="this level and above")
    logs.add_argument("--component")
    logs.add_argument("--bug", help="only logs of this bug")
    logs.add_argument("--limit", type=int, default=50)
    logs.add_argument("--tail", action="store_true", help="keep printing new logs (Ctrl-C stops)")
    logs.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    _json_flag(logs)

    stats = add("stats", "events per level and item type, bugs by status, busiest bugs",
                cmd_stats)
    _json_flag(stats)

    export_cmd = add("export", "write the bugs snapshot (bugs.csv and bugs.json) now", cmd_export)
    export_cmd.add_argument("--format", choices=("csv", "json"))
    export_cmd.add_argument("--out", help="file to write (- for standard output)")
    export_cmd.add_argument("--background", action="store_true", help=argparse.SUPPRESS)
    _json_flag(export_cmd)

    restore_cmd = add("restore", "rebuild a database from the backup log", cmd_restore)
    restore_cmd.add_argument("--from", dest="source",
                             help="directory of day files (default SHIM_DATA_DIR/bugs/logs)")
    restore_cmd.add_argument("--database", help="store URL to fill (default SHIM_DATABASE_URL)")
    _json_flag(restore_cmd)

    migrate_cmd = add("migrate", "create or upgrade the database's tables (SQLite or Postgres)",
                      cmd_migrate)
    migrate_cmd.add_argument("--database", help="store URL to migrate (default SHIM_DATABASE_URL)")
    migrate_cmd.add_argument("--sql", action="store_true",
                             help="print the Postgres schema as SQL (for Supabase's SQL editor) "
                             "instead of applying it")
    _json_flag(migrate_cmd)

    prune_cmd = add("prune", "delete error_logs rows and check-ins older than the retention "
                    "window now (and backup day files past theirs)", cmd_prune)
    prune_cmd.add_argument("--older-than", help="instead of SHIM_RETENTION_DAYS, e.g. 30d")
    prune_cmd.add_argument("--dry-run", action="store_true",
                           help="count what would be deleted; delete nothing")
    _json_flag(prune_cmd)

    replay_cmd = add("replay", "send recorded requests, envelope files or backup log day files "
                     "to a server again", cmd_replay)
    replay_cmd.add_argument("paths", nargs="+", metavar="PATH",
                            help="files or directories: NAME.bin + NAME.json recorded requests, "
                            "envelopes, JSON events, YYYY-MM-DD.jsonl backup logs")
    where = replay_cmd.add_mutually_exclusive_group()
    where.add_argument("--url", help="server to send to (default SHIM_PUBLIC_URL or "
                       "http://127.0.0.1:SHIM_PORT)")
    where.add_argument("--dsn", help="send with this DSN's server, key and project instead")
    replay_cmd.add_argument("--key", help="DSN key to send with (default: the --dsn's, else the "
                            "first of SHIM_PUBLIC_KEYS, else the key in SHIM_DATA_DIR)")
    replay_cmd.add_argument("--project", help="project id (default: the key's, or 1)")
    replay_cmd.add_argument("--concurrency", type=int, default=1,
                            help=f"requests in flight at once, up to {MAX_CONCURRENCY} "
                            "(default 1: in order)")
    replay_cmd.add_argument("--repeat", type=int, default=1, help="send everything N times")
    replay_cmd.add_argument("--new-ids", action="store_true",
                            help="give every event a fresh event_id (else repeats are "
                            "deduplicated)")
    replay_cmd.add_argument("--timeout", type=float, default=30.0,
                            help="seconds to wait for each answer")
    _json_flag(replay_cmd)

    add_monitor_commands(add)
    add_channel_commands(commands)
    return top


def _log_like_the_server(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"shim: bad setting: {exc}", file=sys.stderr)
        return 2
    _log_like_the_server(settings)
    try:
        result: int = args.run(settings, args)
    except CommandError as exc:
        print(f"shim: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `shim bugs | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
